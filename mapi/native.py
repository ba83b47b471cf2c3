"""Run-time glue between a plugin's own cffi module (built with :mod:`mapi.cbuild`) and the
engine's (``mapi._engine``).

Two cffi modules have distinct type objects even for the same C struct, so pointers cross
between them explicitly, through the helpers below:

    from mapi import native
    from ._native import ffi, lib
    native.bind_engine(ffi, lib, __name__)         # once, at import: the engine API table

    class MyFilter(FunctionInstance):
        def __init__(self):
            self.st = ffi.new("my_state *")
            self.kernel = native.kernel_pointer(ffi, lib, "my_kernel")   # for the plan
            self.state = native.state_pointer(ffi, self.st)

    lib.my_process(native.plugin_pointer(ffi, batch.c))     # an engine batch into my C
"""
from .errors import MapiError, EPLUGIN


def engine():
    """The engine's cffi (ffi, lib): to allocate engine types a plugin hands to the engine or
    reads (ffi.new("mapi_bpf_insn[]", n), ffi.sizeof("mapi_flowrec")) and to call the engine
    from Python (lib.mapi_batch_new, lib.mapi_sample_init...)."""
    from ._engine import ffi, lib
    return ffi, lib


def bind_engine(ffi, lib, name="plugin"):
    """Hand the engine API table to the plugin module (its C calls the engine through it).
    Raises MapiError(EPLUGIN) when the plugin was built for a newer engine API."""
    eng_ffi, eng_lib = engine()
    table = ffi.cast("const void *", int(eng_ffi.cast("uintptr_t", eng_lib.mapi_engine_api_table())))
    wanted = lib.mapi_plugin_bind(table)
    if wanted:
        raise MapiError(EPLUGIN, "%s was built for engine API version %d; this engine has version %d "
                        "(rebuild the plugin against this scampi)"
                        % (name, wanted, eng_lib.MAPI_ENGINE_API_VERSION))


def kernel_pointer(ffi, lib, name):
    """The plugin's C kernel `name` as the engine's mapi_kernel_fn (FunctionInstance.kernel,
    or a kernel a hardware unit re-runs)."""
    eng_ffi, _ = engine()
    return eng_ffi.cast("mapi_kernel_fn", ffi.addressof(lib, name))


def state_pointer(ffi, cdata):
    """A pointer of the plugin's module as the engine's void * (FunctionInstance.state).  The
    caller keeps `cdata` alive as long as the engine may use it."""
    eng_ffi, _ = engine()
    return eng_ffi.cast("void *", int(ffi.cast("uintptr_t", cdata)))


def plugin_pointer(ffi, cdata, ctype="mapi_batch *"):
    """An engine pointer (a batch, an engine kernel or state) as `ctype` of the plugin's module,
    to pass into the plugin's C.  The engine's object must outlive the call."""
    return ffi.cast(ctype, cdata)
