"""Builds libpcap_shim/lib/libpcap.so.0.8, the libpcap drop-in, and beside it its Python half.

libpcap.so.0.8 is C only (csrc/*.c: every libpcap 1.10 export, the per-packet paths, the client
of mapid with the message code protoc-c generates here from mapi/proto/mapi.proto into
build/libpcap_shim/proto).  Its soname is libpcap.so.0.8, so when it is preloaded the dynamic
linker takes it for the application's libpcap and the real one is never loaded.

libpcap_shim_python.so (cffi's embedding API: pysrc/embed.c and runtime.py) is the in-process
engine's way in: an interpreter that runs libpcap_shim/runtime.py for what is not per packet
(opening MAPI devices and flows, compiling filters).  libpcap.so.0.8 loads it at the first call
that needs it; with a server configured (MAPI_SERVER) it is never loaded.

    .venv/bin/python -m scampi.libpcap_shim.build        (or: python libpcap_shim/build.py)

Rebuilds only when a source changed; prints the library path.
"""
import glob
import os
import re
import sys
import sysconfig

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CSRC = os.path.join(HERE, "csrc")
MAPI_DIR = os.path.join(ROOT, "mapi")
if not os.path.isdir(MAPI_DIR):             # installed: scampi/libpcap_shim beside mapi/
    MAPI_DIR = os.path.join(os.path.dirname(ROOT), "mapi")
ENGINE_CSRC = os.path.join(MAPI_DIR, "csrc")
LIBDIR = os.path.join(HERE, "lib")
# intermediate files: the checkout's build/ folder, or (installed) one beside the library
BUILD_DIR = (os.path.join(ROOT, "build", "libpcap_shim") if os.path.exists(os.path.join(ROOT, "setup.py"))
             else os.path.join(LIBDIR, "build"))
TARGET = os.path.join(LIBDIR, "libpcap.so.0.8")
SONAME = "libpcap.so.0.8"
PYTHON_HALF = "libpcap_shim_python.so"          # csrc/python.c loads it from TARGET's folder
PYSRC = os.path.join(HERE, "pysrc")

INIT_CODE = r'''
from _mapi_pcap_shim import ffi, lib
import os, sys
# MAPI_PCAP_PYTHONPATH: directories searched before the virtualenv (another checkout, plugins)
sys.path[:0] = [d for d in os.environ.get("MAPI_PCAP_PYTHONPATH", "").split(":") if d]
try:
    from scampi.libpcap_shim import runtime as _runtime
    _runtime.bind(ffi, lib)
except BaseException as _exc:
    import traceback
    traceback.print_exc()
    _failure = ("MAPI libpcap shim: its Python runtime failed to load (%s: %s)"
                % (type(_exc).__name__, _exc)).encode()[:255]

    @ffi.def_extern()
    def shim_py_init(errbuf):
        ffi.memmove(errbuf, _failure + b"\0", len(_failure) + 1)
        return 0
'''

# Functions of the C half that the Python half calls.
C_FOR_PYTHON = """
void shim_set_engine(uintptr_t next_many, uintptr_t interrupt, uintptr_t clear_interrupt,
                     uintptr_t ring_fd);
int shim_savefile_compile(int linktype, int snaplen, int swapped, const char *expr, int optimize,
                          uint32_t netmask, uintptr_t *insns, uint32_t *len, char *errbuf);
uintptr_t shim_copy_program(const char *insns, uint32_t n);
"""


def _pyapi_decls():
    out = []
    for line in open(os.path.join(CSRC, "pyapi.h"), encoding="utf-8"):
        if line.startswith("#"):
            continue
        out.append(line.rstrip("\n"))
    return "\n".join(out)


# Engine C compiled in: the savefile readers (the shim checks pcapng interface blocks with them)
# and the BPF interpreter and validator (libpcap's bpf_filter and bpf_validate).
# The shared ring's reader (ring.c) too: a client of mapid maps the rings it is passed.
ENGINE_SOURCES = [os.path.join(ENGINE_CSRC, f) for f in ("pcap.c", "pcapng.c", "erf.c", "bpf.c",
                                                          "ring.c")]
SCHEMA = os.path.join(MAPI_DIR, "proto", "mapi.proto")
PROTO_OUT = os.path.join(BUILD_DIR, "proto")
PROTO_C = os.path.join(PROTO_OUT, "mapi.pb-c.c")


def generate_proto():
    """mapi.pb-c.c/.h from the schema with protoc-c (Debian's protobuf-c-compiler)."""
    if os.path.exists(PROTO_C) and os.path.getmtime(PROTO_C) >= os.path.getmtime(SCHEMA):
        return PROTO_C
    import shutil
    import subprocess
    protoc = shutil.which("protoc-c")
    if protoc is None:
        raise SystemExit("protoc-c is missing: apt-get install protobuf-c-compiler libprotobuf-c-dev "
                         "(make deps installs them)")
    os.makedirs(PROTO_OUT, exist_ok=True)
    subprocess.run([protoc, "-I" + os.path.dirname(SCHEMA), "--c_out=" + PROTO_OUT, SCHEMA],
                   check=True)
    _rename_base_fields()
    return PROTO_C


def _rename_base_fields():
    """protoc-c names a field `base` as the member every message starts with (Record.base):
    the C member becomes base_value.  The wire stays the schema's (field 4, named "base")."""
    h_path, c_path = PROTO_C[:-1] + "h", PROTO_C
    h, c = open(h_path).read(), open(c_path).read()
    h, n = re.subn(r"(\n  Scampi__Mapi__V1__\w+ \*)base;", r"\1base_value;", h)
    c, m = re.subn(r"offsetof\((Scampi__Mapi__V1__\w+), base\)", r"offsetof(\1, base_value)", c)
    if n != m:
        raise SystemExit("build.py: protoc-c's output changed shape (%d/%d base fields)" % (n, m))
    open(h_path, "w").write(h)
    open(c_path, "w").write(c)


def _sources():
    return sorted(glob.glob(os.path.join(CSRC, "*.c"))) + ENGINE_SOURCES + [PROTO_C]


def _inputs():
    return [s for s in _sources() if s != PROTO_C] + [SCHEMA] + glob.glob(os.path.join(PYSRC, "*.c")) + \
        glob.glob(os.path.join(CSRC, "*.h")) + glob.glob(os.path.join(CSRC, "*.inc")) + \
        [os.path.join(ENGINE_CSRC, h) for h in ("ring.h", "reader.h", "reader_formats.h",
                                                 "byteorder.h", "bpf.h", "engine.h")] + \
        [os.path.abspath(__file__)]


def up_to_date():
    half = os.path.join(LIBDIR, PYTHON_HALF)
    if not os.path.exists(TARGET) or not os.path.exists(half):
        return False
    built = min(os.path.getmtime(TARGET), os.path.getmtime(half))
    return all(os.path.getmtime(f) <= built for f in _inputs())


def venv_python():
    """The interpreter the library embeds: this one (the project's virtualenv)."""
    exe = sys.executable
    if not os.path.exists(exe):
        raise SystemExit("cannot find the running interpreter %r" % exe)
    return os.path.abspath(exe)


CFLAGS = ["-O2", "-std=gnu11", "-Wall", "-fvisibility=hidden", "-Wno-unused-function",
          "-Wno-format-truncation"]


def build(verbose=False, target=TARGET, tmpdir=None, extra_compile_args=(), extra_link_args=()):
    """Build both libraries (libpcap.so.0.8 at `target`, its Python half beside it;
    tools/asan.py builds sanitized ones elsewhere, with the compiler that $CC/$LDSHARED name and
    its own flags)."""
    generate_proto()
    tmp = tmpdir or BUILD_DIR
    os.makedirs(tmp, exist_ok=True)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    _build_python_half(os.path.join(os.path.dirname(target), PYTHON_HALF), tmp, verbose,
                       extra_compile_args, extra_link_args)
    _build_c_library(target, os.path.join(tmp, "c"), verbose, extra_compile_args, extra_link_args)
    return target


def _build_c_library(target, tmp, verbose, extra_compile_args, extra_link_args):
    """libpcap.so.0.8: plain C, linked with neither libpython nor the interpreter."""
    try:
        from setuptools._distutils import ccompiler, sysconfig as dsysconfig
    except ImportError:                    # an older setuptools: the standard library's
        from distutils import ccompiler, sysconfig as dsysconfig
    cc = ccompiler.new_compiler(verbose=verbose)
    dsysconfig.customize_compiler(cc)      # $CC, $LDSHARED, $CFLAGS as cffi's builds honour them
    objects = cc.compile(_sources(), output_dir=tmp, include_dirs=[CSRC, ENGINE_CSRC, PROTO_OUT],
                         extra_postargs=CFLAGS + list(extra_compile_args))
    out = os.path.join(tmp, SONAME)
    cc.link_shared_object(objects, out, libraries=["pthread", "protobuf-c", "dl"],
                          extra_postargs=["-Wl,-soname," + SONAME, "-Wl,--no-undefined"] +
                          list(extra_link_args))
    os.replace(out, target)


def _build_python_half(target, tmp, verbose, extra_compile_args, extra_link_args):
    """libpcap_shim_python.so: the interpreter and runtime.py's entry points (cffi embedding);
    what it calls in libpcap.so.0.8 is resolved when it is loaded into the application."""
    from cffi import FFI
    ffi = FFI()
    ffi.embedding_api(_pyapi_decls())
    ffi.cdef(C_FOR_PYTHON)
    ffi.embedding_init_code(INIT_CODE)
    libdir = sysconfig.get_config_var("LIBDIR")
    ffi.set_source(
        "_mapi_pcap_shim",
        '#include <stdint.h>\n#include "pyapi.h"\n' + C_FOR_PYTHON,
        sources=glob.glob(os.path.join(PYSRC, "*.c")),
        include_dirs=[CSRC],
        define_macros=[("SHIM_VENV_PYTHON", '"%s"' % venv_python())],
        extra_compile_args=CFLAGS + list(extra_compile_args),
        extra_link_args=["-Wl,-rpath," + libdir, "-L" + libdir] + list(extra_link_args),
        libraries=["pthread"],
    )
    out = os.path.abspath(ffi.compile(tmpdir=tmp, target=PYTHON_HALF, verbose=verbose))
    if out != target:
        os.replace(out, target)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    force = "--force" in argv
    if force or not up_to_date():
        build(verbose="-v" in argv)
    print(TARGET)


if __name__ == "__main__":
    main()
