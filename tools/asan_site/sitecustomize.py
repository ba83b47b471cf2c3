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
    return exe == sys.executable or name.startswith("python") or \
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
