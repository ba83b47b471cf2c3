"""`python -m mapi.tracegen ...`: write a generated trace (see mapi.tracegen)."""
import sys

from . import main

sys.exit(main(prog="python -m mapi.tracegen"))
