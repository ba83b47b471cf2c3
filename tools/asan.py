"""make test-asan: the C engine and the libpcap drop-in under AddressSanitizer + LeakSanitizer.

    python tools/asan.py [pytest args...]

1. Every cffi module setup.py declares (mapi._engine, and any other the tree gains) is rebuilt
   with clang -fsanitize=address into build/asan/py, beside symlinks to the rest of its package,
   and the libpcap drop-in into build/asan/lib/libpcap.so.0.8.
2. The engine's and the shim's tests run in a Python whose allocations go through malloc
   (PYTHONMALLOC=malloc) with the ASan runtime preloaded, so LeakSanitizer follows every pointer
   from Python objects to our memory; build/asan/py comes first on the path.
3. Every ASan error is fatal; at exit LeakSanitizer reports what was never freed.  The only
   suppressions (tools/asan.supp) are Python's own allocator entry points: memory the
   interpreter keeps until the process ends.  Our code is never suppressed.
Processes that embed the shim's interpreter (preloaded tools) run with ASan errors fatal and
leak detection off: that interpreter is never finalised by design, and the tools' own
allocations at exit are not ours.  The result: tests passed, ASan errors, leaks; exit status 0
only when the tests pass with 0 errors and 0 leaks.
"""
import glob
import os
import re
import runpy
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "build", "asan")
PY = os.path.join(OUT, "py")
SUPP = os.path.join(ROOT, "tools", "asan.supp")
SITE = os.path.join(ROOT, "tools", "asan_site")      # sitecustomize: children's environment
TESTS = ["tests/test_api.py", "tests/test_savefile.py", "tests/test_corpus_badinput.py",
         "tests/test_corpus_filters.py", "tests/test_bpf_native.py", "tests/test_events.py",
         "tests/test_pythonic.py", "tests/test_netflow.py", "tests/test_mapper.py",
         "tests/test_explain.py"] + sorted(glob.glob(os.path.join(ROOT, "tests", "test_fn_*.py"))) \
    + sorted(glob.glob(os.path.join(ROOT, "tests", "test_shim_*.py"))) \
    + sorted(glob.glob(os.path.join(ROOT, "tests", "test_regress*.py")))
CFLAGS = ["-fsanitize=address", "-fno-omit-frame-pointer", "-g", "-O1",
          "-Wno-unknown-warning-option"]


def runtime():
    path = subprocess.run(["clang", "-print-file-name=libclang_rt.asan-x86_64.so"],
                          capture_output=True, text=True, check=True).stdout.strip()
    if not os.path.exists(path):
        raise SystemExit("asan: %s is missing (make test-asan installs libclang-rt-14-dev)" % path)
    return path


def cffi_modules():
    """(builder file, FFI variable) of every cffi module setup.py builds."""
    text = open(os.path.join(ROOT, "setup.py")).read()
    block = re.search(r"cffi_modules\s*=\s*\[([^\]]*)\]", text)
    return re.findall(r"[\"']([^\"':]+\.py):(\w+)[\"']", block.group(1)) if block else []


def _package_dir(module):
    """The source folder of `module`'s package (scampi.X.y lives in X/y)."""
    parts = module.split(".")[:-1]
    if parts and parts[0] == "scampi":
        parts = parts[1:]
    return os.path.join(ROOT, *parts), os.path.join(PY, *module.split(".")[:-1])


def _mirror(src, dst, keep_out):
    """dst: a folder of symlinks to src's entries, except the extension modules we rebuild."""
    os.makedirs(dst, exist_ok=True)
    for name in os.listdir(src):
        if name == "__pycache__" or name in keep_out:
            continue
        link = os.path.join(dst, name)
        if not os.path.lexists(link):
            os.symlink(os.path.join(src, name), link)


def build_cffi(env):
    saved = dict(os.environ)
    os.environ.update(env)             # cffi's compiler reads them; restored below
    try:
        return _build_cffi()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _build_cffi():
    built = []
    for builder, var in cffi_modules():
        ffi = runpy.run_path(os.path.join(ROOT, builder))[var]
        module = ffi._assigned_source[0]
        src, dst = _package_dir(module)
        base = module.rsplit(".", 1)[-1]
        stale = [n for n in os.listdir(src) if n.startswith(base + ".") and n.endswith(".so")]
        _mirror(src, dst, stale)
        tmp = os.path.join(OUT, "obj", module)
        os.makedirs(tmp, exist_ok=True)
        # the builders name their sources relative to the root; cffi compiles inside tmp
        name, source, ext, kwds = ffi._assigned_source
        kwds = dict(kwds, sources=[os.path.join(ROOT, s) for s in kwds.get("sources", [])])
        ffi._assigned_source = (name, source, ext, kwds)
        so = ffi.compile(tmpdir=tmp)
        target = os.path.join(dst, os.path.basename(so))
        shutil.copy2(so, target)
        # parent packages of a nested module: mirrored too, so the import finds this copy
        parts = module.split(".")[:-1]
        for i in range(1, len(parts)):
            psrc, pdst = _package_dir(".".join(parts[:i + 1]) + ".x")
            if not os.path.isdir(pdst):
                _mirror(psrc, pdst, ())
        built.append((module, target))
    return built


def build_shim(rt, env):
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        return _build_shim(rt)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _build_shim(rt):
    sys.path.insert(0, ROOT)
    from libpcap_shim import build
    target = os.path.join(OUT, "lib", "libpcap.so.0.8")
    return build.build(target=target, tmpdir=os.path.join(OUT, "obj", "shim"),
                       extra_compile_args=CFLAGS,
                       extra_link_args=["-shared-libasan", "-Wl,-rpath," + os.path.dirname(rt)])


def main(argv):
    rt = runtime()
    if os.path.isdir(PY):
        shutil.rmtree(PY)
    cc_env = {"CC": "clang", "LDSHARED": "clang -shared", "CFLAGS": " ".join(CFLAGS),
              "LDFLAGS": "-shared-libasan -Wl,-rpath," + os.path.dirname(rt)}
    built = build_cffi(cc_env)
    shim = build_shim(rt, cc_env)
    for module, path in built:
        print("asan: %s -> %s" % (module, os.path.relpath(path, ROOT)))
    print("asan: libpcap shim -> %s" % os.path.relpath(shim, ROOT))
    # malloc_context_size=2: an allocation's stack is the allocator and its direct caller, so a
    # suppression (a caller inside the interpreter) can never match memory our code allocated
    # the tests' own builds (gentrace's helper, BPF native code) stay ordinary: CC, CFLAGS,
    # LDSHARED and LDFLAGS were set for the builds above only
    asan = ("detect_leaks=1:halt_on_error=1:exitcode=86:allocator_may_return_null=1:"
            "malloc_context_size=2")
    env = dict(os.environ, LD_PRELOAD=rt, PYTHONMALLOC="malloc",
               PYTHONPATH=os.pathsep.join([PY, SITE, os.environ.get("PYTHONPATH", "")]),
               ASAN_OPTIONS=asan, LSAN_OPTIONS="suppressions=%s:print_suppressions=1" % SUPP,
               MAPI_PCAP_SHIM_LIBRARY=shim,
               # tools with the drop-in: errors fatal; no leak report (the tool's own and those of
               # the never-finalised interpreter); no memcmp range checks in the tools' own code
               # (p0f compares past its own buffers)
               MAPI_ASAN_CHILD_OPTIONS="detect_leaks=0:halt_on_error=1:exitcode=86:"
                                       "intercept_memcmp=0")
    tests = [t for t in TESTS if os.path.exists(os.path.join(ROOT, t))]
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"] + (argv or tests)
    proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, errors="replace")
    log = os.path.join(OUT, "test-asan.log")
    with open(log, "w") as f:
        f.write(proc.stdout)
    errors = len(re.findall(r"ERROR: AddressSanitizer", proc.stdout))
    leaks = re.findall(r"SUMMARY: AddressSanitizer: (\d+) byte\(s\) leaked in (\d+) allocation",
                       proc.stdout)
    summary = [l for l in proc.stdout.splitlines() if re.search(r"\d+ (passed|failed)", l)]
    suppressed = re.findall(r"^\s*(\d+)\s+(\d+)\s+(\S+)$", proc.stdout, re.M)
    print(proc.stdout[-4000:] if proc.returncode else "")
    print("asan: tests: %s" % (summary[-1].strip("= ") if summary else "no summary (see %s)" % log))
    print("asan: ASan errors: %d" % errors)
    print("asan: leaks: %s" % (", ".join("%s bytes in %s allocations" % l for l in leaks) or "0"))
    if suppressed:
        print("asan: suppressed (Python's own, at exit): %s" % ", ".join(
            "%s: %s allocations" % (s[2], s[0]) for s in suppressed))
    print("asan: log in %s" % os.path.relpath(log, ROOT))
    return 0 if proc.returncode == 0 and errors == 0 and not leaks else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
