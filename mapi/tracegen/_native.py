"""Loads the trace generator's C core: mapi.tracegen._gentrace as installed (built by setup.py
with the engine), or, when that is missing or older than the sources beside it, a copy built
with cffi at first use into a cache directory.

The cached module's name carries the source digest, so an edited source gets a fresh build and
a stale one is never loaded.  Builds are serialised with a file lock (tests and the benchmark may
start at once).  Cache: $SCAMPI_CACHE_DIR, else build/gentrace in the repository, else
~/.cache/scampi.
"""
import glob
import importlib.machinery
import importlib.util
import os
import sys
import sysconfig

from ._build import HEADER, HERE, SOURCES, source_digest


def _sources_present():
    return all(os.path.exists(p) for p in [HEADER] + SOURCES)


def _installed():
    """The installed module if it was built from the sources beside it (or they are absent)."""
    try:
        import mapi.tracegen._gentrace as _gentrace   # the compiled module, not the package
    except ImportError:
        return None
    if not _sources_present():
        return _gentrace
    built = _gentrace.ffi.string(_gentrace.lib.gt_source_digest()).decode()
    return _gentrace if built == source_digest() else None


def _cache_dirs():
    env = os.environ.get("SCAMPI_CACHE_DIR")
    if env:
        yield os.path.join(env, "gentrace")
    yield os.path.join(os.path.dirname(os.path.dirname(HERE)), "build", "gentrace")
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
    import tempfile
    from ._build import make_ffibuilder
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        built = make_ffibuilder(modname).compile(tmpdir=tmp, verbose=False)
        target = os.path.join(cache, os.path.basename(built))
        os.replace(built, target)
    return target


def _cached():
    import fcntl
    import hashlib
    tag = hashlib.sha256((source_digest() + sys.version).encode()).hexdigest()[:12]
    modname = "_gentrace_" + tag
    suffix = (sysconfig.get_config_var("EXT_SUFFIX") or ".so")[-3:]
    for d in _cache_dirs():
        for path in glob.glob(os.path.join(d, modname + "*" + suffix)):
            try:
                return _import(modname, path)
            except ImportError:
                pass
    cache = _writable_cache()
    with open(os.path.join(cache, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        found = glob.glob(os.path.join(cache, modname + "*" + suffix))
        path = found[0] if found else _build(modname, cache)
    return _import(modname, path)


def load():
    """(ffi, lib) of the compiled generator."""
    mod = _installed()
    if mod is None and not _sources_present():
        raise ImportError("the trace generator's C module %s is not built and its sources are "
                          "not in %s: reinstall scampi" % ("mapi.tracegen._gentrace", HERE))
    mod = mod or _cached()
    return mod.ffi, mod.lib
