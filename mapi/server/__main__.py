"""python -m mapi.server: run mapid in the foreground (see mapi.server.main)."""
import sys

from .main import main

sys.exit(main())
