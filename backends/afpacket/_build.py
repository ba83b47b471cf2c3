"""Builds scampi.backends.afpacket._capture (the AF_PACKET socket and rings in C) against the
engine's headers, as any plugin's C is built (listed in setup.py's cffi_modules)."""
import os

from mapi.cbuild import plugin_ffibuilder

ffibuilder = plugin_ffibuilder("scampi.backends.afpacket._capture",
                               os.path.dirname(os.path.abspath(__file__)),
                               headers=["capture.h"], sources=["capture.c"],
                               engine_types=["mapi_bpf_insn"])
