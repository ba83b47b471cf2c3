"""The plugin's own C kernel, built against the engine's headers (mapi.get_include())."""
import os

from mapi.cbuild import plugin_ffibuilder

ffibuilder = plugin_ffibuilder("scampi_example._kernel", os.path.dirname(os.path.abspath(__file__)),
                               headers=["len_range.h"], sources=["len_range.c"])
