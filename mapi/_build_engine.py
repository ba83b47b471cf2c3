"""Builds mapi._engine, the C batch engine, with cffi (API mode, out of line).

Every header under csrc/ (and csrc/fn/) is both compiled in and read for the cffi declarations,
with its preprocessor guards and includes stripped, so a declaration is written once.  A new
kernel is one csrc/fn/NAME.c plus its csrc/fn/NAME.h; nothing else needs editing.
"""
import glob
import os
import re

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
CSRC = os.path.join(HERE, "csrc")
CORE_HEADERS = ["engine.h", "bpf.h", "bpf_x86_64.h", "ring.h", "reader.h"]   # then card_*.h, live_*.h, fn/*.h


def _cdef_text(path):
    out = []
    for line in open(path, encoding="utf-8"):
        s = line.strip()
        if s.startswith(("#include", "#ifndef", "#endif", "#if ", "#else")):
            continue
        m = re.match(r"#define\s+(\w+)(\s+(.*))?$", s)
        if m:
            value = (m.group(3) or "").split("/*")[0].strip()
            # cffi understands integer constants only; guards and macros are dropped
            if re.fullmatch(r"\(?-?(0x[0-9a-fA-F]+|\d+)\)?[uU]?", value):
                out.append("#define %s %s" % (m.group(1), value.strip("()").rstrip("uU")))
            continue
        out.append(line.rstrip("\n"))
    return "\n".join(out)


def _headers():
    core = [os.path.join(CSRC, h) for h in CORE_HEADERS]
    cards = sorted(glob.glob(os.path.join(CSRC, "card_*.h")))
    live = sorted(glob.glob(os.path.join(CSRC, "live_*.h")))
    fns = sorted(glob.glob(os.path.join(CSRC, "fn", "*.h")))
    return core + cards + live + fns


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
ffibuilder.cdef("\n".join(_cdef_text(h) for h in _headers()))
_libraries, _macros = _libs()
ffibuilder.set_source(
    "mapi._engine",
    "\n".join('#include "%s"' % os.path.relpath(h, CSRC) for h in _headers()),
    sources=[os.path.relpath(s, os.path.dirname(HERE)) for s in _sources()],
    include_dirs=[CSRC, os.path.join(CSRC, "fn")],
    libraries=_libraries + ["dl", "pthread"],
    define_macros=_macros,
    extra_compile_args=["-O2", "-std=gnu11", "-Wall", "-Wno-unused-function"],
)

if __name__ == "__main__":
    os.chdir(os.path.dirname(HERE))
    ffibuilder.compile(verbose=False)
