"""cffi build of mapi.jobcontrol.wasm._batchpack (setup.py's cffi_modules): the host side of the
sandboxed-code ABI, built against the engine's headers like a plugin's C."""
import os

from mapi.cbuild import plugin_ffibuilder

ffibuilder = plugin_ffibuilder("mapi.jobcontrol.wasm._batchpack",
                               os.path.dirname(os.path.abspath(__file__)),
                               headers=["batchpack.h"], sources=["batchpack.c"])
