#!/usr/bin/env python3
"""The trace generator's command line for developers and tools/bench.py; the generator itself is
mapi.tracegen (installed with the package, so mapi.demo does not need tools/).

    python tools/gentrace.py --packets 10000000 --seed 1 -o traces/big.pcap
    from tools.gentrace import write_trace, SIGNATURES      # the same names as mapi.tracegen
"""
import os
import sys

try:
    import mapi.tracegen  # noqa: F401
except ImportError:            # a clone without `pip install -e .`: mapi/ lives beside tools/
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mapi.tracegen import *  # noqa: E402,F401,F403  (every name of its __all__)
from mapi.tracegen import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
