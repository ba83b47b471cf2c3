"""Builds scampi.backends.router._mirror (the router's ACL and counters over batches, in C)
against the engine's headers, as any plugin's C is built (listed in setup.py's cffi_modules)."""
import os

from mapi.cbuild import plugin_ffibuilder

ffibuilder = plugin_ffibuilder("scampi.backends.router._mirror",
                               os.path.dirname(os.path.abspath(__file__)),
                               headers=["mirror.h"], sources=["mirror.c"])
