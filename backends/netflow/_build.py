"""Builds scampi.backends.netflow._collector (the NetFlow/IPFIX decoder in C) against the
engine's headers, as any plugin's C is built (listed in setup.py's cffi_modules)."""
import os

from mapi.cbuild import plugin_ffibuilder

ffibuilder = plugin_ffibuilder("scampi.backends.netflow._collector",
                               os.path.dirname(os.path.abspath(__file__)),
                               headers=["collector.h"],
                               sources=["state.c", "records.c", "messages.c", "transport.c"],
                               engine_types=["mapi_flowrec"])
