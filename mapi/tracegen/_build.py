"""Builds mapi.tracegen._gentrace, the trace generator's C core, with cffi (API mode).

setup.py lists `ffibuilder` in cffi_modules, so `pip install` and `make engine` compile it with
the engine.  The module carries SOURCE_DIGEST, a hash of the sources it was built from: the
loader (_native.py) uses it only if it matches the sources beside it, and otherwise builds
make_ffibuilder(another name) into a cache (a developer who edited the C sources).
"""
import hashlib
import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))
CSRC = os.path.join(HERE, "csrc")
HEADER = os.path.join(CSRC, "gentrace.h")
SOURCES = [os.path.join(CSRC, "generator.c"), os.path.join(CSRC, "packets.c")]
PRIVATE_HEADERS = [os.path.join(CSRC, "gt_private.h")]     # shared by the sources only
MODULE = "mapi.tracegen._gentrace"


def source_digest():
    """12 hex digits of the header, the sources and this script."""
    h = hashlib.sha256()
    for path in [HEADER, os.path.join(HERE, "_build.py")] + PRIVATE_HEADERS + SOURCES:
        with open(path, "rb") as f:
            h.update(f.read())
    return h.hexdigest()[:12]


def _cdef():
    lines = []
    for line in open(HEADER, encoding="utf-8"):
        s = line.strip()
        if s.startswith("#include"):
            continue
        m = re.match(r"#define\s+(\w+)\s+(\S+)", s)
        if m:
            lines.append("#define %s %s" % (m.group(1), m.group(2)))
            continue
        lines.append(line.rstrip("\n"))
    return "\n".join(lines) + "\nconst char *gt_source_digest(void);\n"


def make_ffibuilder(module=MODULE, relative_to=None):
    """The FFI builder of the generator as extension `module`; source paths relative to
    `relative_to` (setuptools wants them relative to the project root), else absolute."""
    from cffi import FFI
    ffi = FFI()
    ffi.cdef(_cdef())
    src = SOURCES if relative_to is None else [os.path.relpath(s, relative_to) for s in SOURCES]
    ffi.set_source(module, '#include "gentrace.h"\n'
                   'const char *gt_source_digest(void) { return "%s"; }\n' % source_digest(),
                   sources=src, include_dirs=[CSRC], libraries=["m"],
                   extra_compile_args=["-O2", "-std=gnu11", "-Wall"])
    return ffi


if __name__ in ("__cffi__", "__main__"):
    # setup.py's cffi_modules runs this file and takes `ffibuilder`; the loader imports it for
    # source_digest() and make_ffibuilder() only, without paying for cffi
    ffibuilder = make_ffibuilder(relative_to=os.path.dirname(os.path.dirname(HERE)))
