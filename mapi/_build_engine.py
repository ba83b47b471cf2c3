"""Builds mapi._engine, the C batch engine, with cffi (API mode, out of line).

The engine is csrc/ and csrc/fn/: batches and plans, the BPF interpreter, rings, the savefile
readers and the standard functions' kernels.  Every header listed below (and every csrc/fn/*.h)
is both compiled in and read for the cffi declarations, so a declaration is written once.  A new
kernel is one csrc/fn/NAME.c plus its csrc/fn/NAME.h; nothing else needs editing.  Backends'
C is not here: each backend builds its own module against these headers (mapi/cbuild.py).
"""
import glob
import os

from cffi import FFI
from mapi.cbuild import COMPILE_ARGS, cdef_from_header, get_include

CSRC = get_include()
ROOT = os.path.dirname(os.path.dirname(CSRC))
CORE_HEADERS = ["engine.h", "flowrec.h", "bpf.h", "bpf_x86_64.h", "ring.h", "reader.h"]   # then fn/*.h
LAST_HEADERS = ["engine_api.h"]                                         # uses fn/hdr_parse.h


def _headers():
    core = [os.path.join(CSRC, h) for h in CORE_HEADERS]
    fns = sorted(glob.glob(os.path.join(CSRC, "fn", "*.h")))
    return core + fns + [os.path.join(CSRC, h) for h in LAST_HEADERS]


def _sources():
    return sorted(glob.glob(os.path.join(CSRC, "*.c")) + glob.glob(os.path.join(CSRC, "fn", "*.c")))


def _libs():
    """Optional system libraries: the kernels that need them are compiled only if present."""
    libs, macros = [], []
    if os.path.exists("/usr/include/hs/hs.h"):
        libs.append("hs")
        macros.append(("MAPI_HAVE_HYPERSCAN", "1"))
    if os.path.exists("/usr/include/pcre2.h"):
        libs.append("pcre2-8")
        macros.append(("MAPI_HAVE_PCRE2", "1"))
    if os.path.exists("/usr/include/openssl/evp.h"):
        libs.append("crypto")                  # AES for ANONYMIZE's Crypto-PAn
        macros.append(("MAPI_HAVE_OPENSSL", "1"))
    return libs, macros


ffibuilder = FFI()
ffibuilder.cdef("\n".join(cdef_from_header(h) for h in _headers()))
_libraries, _macros = _libs()
ffibuilder.set_source(
    "mapi._engine",
    "\n".join('#include "%s"' % os.path.relpath(h, CSRC) for h in _headers()),
    sources=[os.path.relpath(s, ROOT) for s in _sources()],
    include_dirs=[CSRC, os.path.join(CSRC, "fn")],
    libraries=_libraries + ["dl", "pthread"],
    define_macros=_macros,
    extra_compile_args=COMPILE_ARGS,
)
