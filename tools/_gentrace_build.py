"""Builds the trace generator's C core with cffi (API mode) at first use, into a cache directory.

The module name carries a hash of the C sources, so an edited source gets a fresh build and a stale
one is never loaded.  Builds are serialised with a file lock (tests and the benchmark may start
at once).  Cache: $SCAMPI_CACHE_DIR, else build/gentrace in the repository, else ~/.cache/scampi.
"""
import fcntl
import glob
import hashlib
import importlib.machinery
import importlib.util
import os
import re
import sys
import sysconfig
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
CSRC = os.path.join(HERE, "csrc")
HEADER = os.path.join(CSRC, "gentrace.h")
SOURCES = [os.path.join(CSRC, "gentrace.c")]


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
    return "\n".join(lines)


def _digest():
    h = hashlib.sha256()
    for path in [HEADER, __file__] + SOURCES:
        with open(path, "rb") as f:
            h.update(f.read())
    h.update(sys.version.encode())
    return h.hexdigest()[:12]


def _cache_dirs():
    env = os.environ.get("SCAMPI_CACHE_DIR")
    if env:
        yield os.path.join(env, "gentrace")
    yield os.path.join(os.path.dirname(HERE), "build", "gentrace")
    yield os.path.join(os.path.expanduser("~"), ".cache", "scampi", "gentrace")


def _writable_cache():
    for d in _cache_dirs():
        try:
            os.makedirs(d, exist_ok=True)
            if os.access(d, os.W_OK):
                return d
        except OSError:
            continue
    raise OSError("no writable cache directory for the trace generator's C module "
                  "(set SCAMPI_CACHE_DIR)")


def _import(modname, path):
    loader = importlib.machinery.ExtensionFileLoader(modname, path)
    spec = importlib.util.spec_from_file_location(modname, path, loader=loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


def _build(modname, cache):
    from cffi import FFI
    ffi = FFI()
    ffi.cdef(_cdef())
    ffi.set_source(modname, '#include "gentrace.h"', sources=SOURCES, include_dirs=[CSRC],
                   libraries=["m"], extra_compile_args=["-O2", "-std=gnu11", "-Wall"])
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        built = ffi.compile(tmpdir=tmp, verbose=False)
        target = os.path.join(cache, os.path.basename(built))
        os.replace(built, target)
    return target


def load():
    """(ffi, lib) of the compiled generator, building it if needed."""
    modname = "_gentrace_" + _digest()
    suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
    for d in _cache_dirs():
        for path in glob.glob(os.path.join(d, modname + "*" + suffix[-3:])):
            try:
                mod = _import(modname, path)
                return mod.ffi, mod.lib
            except ImportError:
                pass
    cache = _writable_cache()
    with open(os.path.join(cache, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        found = glob.glob(os.path.join(cache, modname + "*" + suffix[-3:]))
        path = found[0] if found else _build(modname, cache)
    mod = _import(modname, path)
    return mod.ffi, mod.lib
