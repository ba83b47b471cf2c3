"""Builds scampi.backends._template._source (the template backend's C) against the engine's
headers, as any plugin's C is built.  setup.py lists every backends/*/_build.py in
cffi_modules, so a copied backend builds with `make engine` without editing anything."""
import os

from mapi.cbuild import plugin_ffibuilder

ffibuilder = plugin_ffibuilder("scampi.backends._template._source",
                               os.path.dirname(os.path.abspath(__file__)),
                               headers=["source.h"], sources=["source.c"])
