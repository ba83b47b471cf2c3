"""`python -m mapi.cli ...` is the `mapi` command."""
import sys

from .main import main

sys.exit(main())
