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
    """(builder file, FFI variable) of every cffi module setup.py builds: setup.py run with
    setuptools.setup() replaced by a recorder, so a list it computes (backends/*/_build.py) is
    the one built here too."""
    import setuptools
    seen, real, cwd = {}, setuptools.setup, os.getcwd()
    setuptools.setup = lambda **kw: seen.update(kw)
    try:
        runpy.run_path(os.path.join(ROOT, "setup.py"), run_name="__main__")
    finally:
        setuptools.setup = real
        os.chdir(cwd)
    return [tuple(m.split(":")) for m in seen.get("cffi_modules", [])]


def _package_dir(module):
    """The source folder of `module`'s package (scampi.X.y lives in X/y)."""
    parts = module.split(".")[:-1]
    if parts and parts[0] == "scampi":
        parts = parts[1:]
    return os.path.join(ROOT, *parts), os.path.join(PY, *module.split(".")[:-1])


def _mirror(src, dst):
    """dst: a real folder of symlinks to src's entries except extension modules (each is
    rebuilt and copied in; one that is not fails to import, loudly).  A symlink that stands
    where dst goes (its parent was mirrored first) is replaced, so nothing built here is ever
    written through it into the work tree."""
    if os.path.islink(dst):
        os.unlink(dst)
    os.makedirs(dst, exist_ok=True)
    for name in os.listdir(src):
        if name == "__pycache__" or name.endswith(".so"):
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
        # run as cffi's setuptools hook runs it (a builder may define its FFI only then)
        ffi = runpy.run_path(os.path.join(ROOT, builder), run_name="__cffi__")[var]
        module = ffi._assigned_source[0]
        # the module's package and its parents: real folders under build/asan/py
        parts = module.split(".")[:-1]
        for i in range(1 if parts[0] == "scampi" else 0, len(parts)):
            _mirror(*_package_dir(".".join(parts[:i + 1]) + ".x"))
        src, dst = _package_dir(module)
        tmp = os.path.join(OUT, "obj", module)
        os.makedirs(tmp, exist_ok=True)
        # the builders name their sources relative to the root; cffi compiles inside tmp
        name, source, ext, kwds = ffi._assigned_source
        kwds = dict(kwds, sources=[os.path.join(ROOT, s) for s in kwds.get("sources", [])])
        ffi._assigned_source = (name, source, ext, kwds)
        so = ffi.compile(tmpdir=tmp)
        target = os.path.join(dst, os.path.basename(so))
        assert os.path.realpath(target).startswith(OUT + os.sep), target
        shutil.copy2(so, target)
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
               ASAN_OPTIONS=asan,
               # use_tls=0: clang 14's LeakSanitizer misreads glibc 2.36's dynamic TLS and its
               # tracer dies (SIGSEGV) in a process with a thread holding some; without TLS as a
               # root it can only report more, never less (the one extra, glibc's loader, is in
               # the suppressions)
               LSAN_OPTIONS="suppressions=%s:print_suppressions=1:use_tls=0" % SUPP,
               MAPI_PCAP_SHIM_LIBRARY=shim, MAPI_ASAN_PY=PY,
               # tools with the drop-in: errors fatal; no leak report (the tool's own and those of
               # the never-finalised interpreter); no memcmp range checks in the tools' own code
               # (p0f compares past its own buffers)
               MAPI_ASAN_CHILD_OPTIONS="detect_leaks=0:halt_on_error=1:exitcode=86:"
                                       "intercept_memcmp=0")
    # every sanitized module must be the one the tests import, or they would test the plain build
    code = "import importlib, sys\nfor m in sys.argv[1:]: print(importlib.import_module(m).__file__)"
    loaded = subprocess.run([sys.executable, "-c", code] + [m for m, _ in built], cwd=ROOT, env=env,
                            capture_output=True, text=True)
    wrong = [(m, f) for (m, want), f in zip(built, loaded.stdout.split())
             if os.path.realpath(f) != os.path.realpath(want)]
    if loaded.returncode or wrong or len(loaded.stdout.split()) != len(built):
        print("asan: the tests would not load the sanitized modules: %s%s"
              % (wrong, loaded.stderr[-2000:]))
        return 1
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
