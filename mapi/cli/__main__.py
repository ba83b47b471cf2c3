"""`python -m mapi.cli ...` is the `mapi` command."""
import sys

from .entry import main

sys.exit(main())
