"""Builds scampi.backends.pcap._records (pcapy-ng's packet records into batches, in C) against
the engine's headers, as any plugin's C is built (listed in setup.py's cffi_modules)."""
import os

from mapi.cbuild import plugin_ffibuilder

ffibuilder = plugin_ffibuilder("scampi.backends.pcap._records",
                               os.path.dirname(os.path.abspath(__file__)),
                               headers=["records.h"], sources=["records.c"])
