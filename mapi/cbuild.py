"""Building C against the engine: the helpers a plugin's cffi build script uses.

A plugin with C of its own (a backend's collector or card emulator, a third-party function's
kernel) is its own cffi module, compiled against the engine's headers (``get_include()``) and
never linked against the engine: what it needs of the engine it calls through the engine API
table (``mapi_plugin.h``), bound at import by :func:`mapi.native.bind_engine`.

    # mypkg/_build.py -- listed in setup.py: cffi_modules=["mypkg/_build.py:ffibuilder"]
    import os
    from mapi.cbuild import plugin_ffibuilder
    ffibuilder = plugin_ffibuilder("mypkg._native", os.path.dirname(os.path.abspath(__file__)),
                                   headers=["mything.h"], sources=["mything.c"])

The headers are both compiled in and read for the cffi declarations (preprocessor lines dropped,
integer #defines kept), so every declaration is written once; keep inline code out of them.

This module imports nothing from the rest of ``mapi``: scampi's own setup.py loads it before
the engine exists, to build the engine and the built-in backends in one run.
"""
import os
import re

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
COMPILE_ARGS = ["-O2", "-std=gnu11", "-Wall", "-Wno-unused-function"]

# What every plugin module declares of the engine: the batch (opaque: a plugin's Python reads
# batches through the engine's own cffi types) and the kernel signature.
ENGINE_CDEF = """
typedef struct mapi_batch mapi_batch;
typedef uint32_t (*mapi_kernel_fn)(void *state, const mapi_batch *b, const uint32_t *sel,
                                   uint32_t nsel, uint32_t *out);
int mapi_plugin_bind(const void *table);
"""


def get_include():
    """Directory of the engine's C headers: engine.h (batches, kernels), mapi_plugin.h and
    engine_api.h (the engine API table), flowrec.h, byteorder.h and rng.h (inline helpers),
    fn/*.h."""
    return os.path.join(HERE, "csrc")


def cdef_from_header(path):
    """The cffi declarations of a C header: its text without preprocessor lines, keeping
    #defines of integer constants (the only macros cffi understands)."""
    out = []
    for line in open(path, encoding="utf-8"):
        s = line.strip()
        if s.startswith(("#include", "#ifndef", "#ifdef", "#endif", "#if ", "#else")):
            continue
        m = re.match(r"#define\s+(\w+)(\s+(.*))?$", s)
        if m:
            value = (m.group(3) or "").split("/*")[0].strip()
            if re.fullmatch(r"\(?-?(0x[0-9a-fA-F]+|\d+)\)?[uU]?", value):
                out.append("#define %s %s" % (m.group(1), value.strip("()").rstrip("uU")))
            continue
        out.append(line.rstrip("\n"))
    return "\n".join(out)


def plugin_ffibuilder(module, base, headers, sources=(), engine_types=(), cdef="",
                      include_dirs=(), libraries=(), define_macros=()):
    """An FFI builder for the plugin module `module` (its dotted import name).

    base: the directory `headers` and `sources` are relative to (the build script's own).
    headers: the plugin's headers, compiled in and declared to cffi.  engine_types: engine
    struct names the plugin's declarations use besides mapi_batch (declared opaque; e.g.
    "mapi_flowrec", "mapi_bpf_insn").  cdef: extra declarations.
    """
    ffi = FFI()
    opaque = "".join("typedef struct %s %s;\n" % (t, t) for t in engine_types)
    ffi.cdef(ENGINE_CDEF + opaque + "\n".join(cdef_from_header(os.path.join(base, h))
                                              for h in headers) + "\n" + cdef)
    preamble = "#define MAPI_PLUGIN_MAIN\n#include \"mapi_plugin.h\"\n" + \
        "".join('#include "%s"\n' % h for h in headers)
    ffi.set_source(module, preamble,
                   sources=[_relative(os.path.join(base, s)) for s in sources],
                   include_dirs=[get_include(), base] + list(include_dirs),
                   libraries=list(libraries), define_macros=list(define_macros),
                   extra_compile_args=COMPILE_ARGS)
    return ffi


def _relative(path):
    """setuptools wants source paths relative to the project (the directory setup.py runs in)."""
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel
