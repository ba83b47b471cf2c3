"""Builds scampi.backends.cards._emu (the emulated cards' units over batches, in C) against the
engine's headers, as any plugin's C is built (listed in setup.py's cffi_modules)."""
import os

from mapi.cbuild import plugin_ffibuilder

ffibuilder = plugin_ffibuilder("scampi.backends.cards._emu",
                               os.path.dirname(os.path.abspath(__file__)),
                               headers=["emu.h"], sources=["emu.c"])
