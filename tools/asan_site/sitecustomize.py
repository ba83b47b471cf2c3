"""Loaded by every Python of a make test-asan run (tools/asan.py puts this folder on PYTHONPATH).

The ASan runtime is preloaded into the test Python so that our sanitized C loads; the stock
reference tools the tests run (tcpdump, capinfos, tshark...) are not ours and must run as
usual (some deadlock in glibc's locale code under the runtime).  So a child keeps the runtime
only when it is a Python (it may load the sanitized engine) or a tool the libpcap drop-in is
preloaded into (the sanitized shim needs it; such a tool runs with MAPI_ASAN_CHILD_OPTIONS)."""
import os
import subprocess
import sys

_ASAN_VARS = ("ASAN_OPTIONS", "LSAN_OPTIONS", "PYTHONMALLOC")
_Popen_init = subprocess.Popen.__init__


def _keeps_runtime(args, env):
    exe = args if isinstance(args, (str, bytes)) else (args[0] if args else "")
    exe = os.fsdecode(exe).split()[0] if exe else ""
    name = os.path.basename(exe)
    # a wrapper (setpriv, ip netns exec) that runs this Python loads the sanitized modules too
    wrapped = not isinstance(args, (str, bytes)) and sys.executable in [os.fsdecode(a) for a in args]
    return exe == sys.executable or name.startswith("python") or wrapped or \
        "libpcap.so.0.8" in env.get("LD_PRELOAD", "")


def _init(self, args, *a, **kw):
    env = kw.get("env")
    base = dict(os.environ if env is None else env)
    preload = base.get("LD_PRELOAD", "")
    if "libpcap.so.0.8" in preload and "MAPI_ASAN_CHILD_OPTIONS" in base:
        # a tool with the drop-in: ASan errors count, the tool's own leaks and those of the
        # shim's interpreter (never finalised by design) do not
        base["ASAN_OPTIONS"] = base["MAPI_ASAN_CHILD_OPTIONS"]
        kw["env"] = base
    elif "libclang_rt.asan" in preload and not _keeps_runtime(args, base):
        rest = " ".join(p for p in preload.split() if "libclang_rt.asan" not in p)
        if rest:
            base["LD_PRELOAD"] = rest
        else:
            base.pop("LD_PRELOAD", None)
        for k in _ASAN_VARS:
            base.pop(k, None)
        kw["env"] = base
    _Popen_init(self, args, *a, **kw)


subprocess.Popen.__init__ = _init

# The sanitized builds sit in build/asan/py (MAPI_ASAN_PY): `mapi` there, and the modules under
# the project namespace in build/asan/py/scampi.  Both must win over the work tree, which comes
# first otherwise: Python puts the current directory (the repository root, for pytest and
# `python -c`) before PYTHONPATH after this file has run, and the development install's
# `scampi` (made by a .pth line) looks only in the work tree.
_ASAN_PY = os.environ.get("MAPI_ASAN_PY")


class _SanitizedMapiFirst:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name != "mapi":
            return None
        from importlib.machinery import PathFinder
        return PathFinder.find_spec(name, [_ASAN_PY])


if _ASAN_PY:
    sys.meta_path.insert(0, _SanitizedMapiFirst)
    if os.path.isdir(os.path.join(_ASAN_PY, "scampi")) and "scampi" in sys.modules:
        sys.modules["scampi"].__path__.insert(0, os.path.join(_ASAN_PY, "scampi"))
