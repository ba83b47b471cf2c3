"""The few wasmtime C API entries the batch runner's C calls directly (batchpack.c), taken from
the library the wasmtime package itself loaded, so that both agree on every type.

wasmtime's Python `Func.__call__` costs about 17 us a call (it looks the function's type up,
converts each value, allocates ctypes arrays); from C, with the export's type checked once, a
call costs well under a microsecond, which lets the runner hand a batch over in cache-sized
parts.  Errors and traps the C gets back are turned into wasmtime's own exceptions here."""
import ctypes

import wasmtime
from wasmtime import _bindings as _wt
from wasmtime._error import WasmtimeError
from wasmtime._trap import Trap

# the C API functions batchpack.c calls, by the scampi_wasm_run field that holds each
ENTRIES = {"call_unchecked": "wasmtime_func_call_unchecked",
           "set_fuel": "wasmtime_context_set_fuel",
           "memory_data": "wasmtime_memory_data",
           "memory_size": "wasmtime_memory_data_size"}
# the signature batchpack.c assumes: (context, func, raw values, their count, trap out)
_CALL_ARGS = 5
_RAW_SIZE = 16


def check():
    """None, or why this wasmtime cannot be called from the runner's C."""
    call = getattr(_wt, "_wasmtime_func_call_unchecked", None)
    if call is None or len(call.argtypes) != _CALL_ARGS or \
            ctypes.sizeof(_wt.wasmtime_val_raw_t) != _RAW_SIZE:
        return "the installed wasmtime package's C API differs from the one the sandbox runner " \
               "calls (wasmtime_func_call_unchecked with 5 arguments, 16-byte raw values)"
    return None


def entries():
    """{field: address} of the C API functions."""
    return {field: ctypes.cast(getattr(_wt.dll, name), ctypes.c_void_p).value
            for field, name in ENTRIES.items()}


def context(store):
    """Address of the store's context (the store must outlive its use)."""
    return ctypes.cast(store._context(), ctypes.c_void_p).value


def handle(item):
    """Address of a function's or memory's wasmtime handle (the object must outlive its use)."""
    return ctypes.addressof(item._func if isinstance(item, wasmtime.Func) else item._memory)


def exception(error, trap):
    """wasmtime's exception for the error or trap pointer (addresses) a call returned; the
    exception takes ownership of the pointer."""
    if trap:
        return Trap._from_ptr(ctypes.cast(trap, ctypes.POINTER(_wt.wasm_trap_t)))
    return WasmtimeError._from_ptr(ctypes.cast(error, ctypes.POINTER(_wt.wasmtime_error_t)))


def is_batch_function(functype):
    """True if an export's type is (i32, i32) -> i32, the ABI's filter and count functions."""
    i32 = wasmtime.ValType.i32()
    return isinstance(functype, wasmtime.FuncType) and \
        list(functype.params) == [i32, i32] and list(functype.results) == [i32]


def is_result_function(functype):
    """True if an export's type is () -> i64, the ABI's result functions."""
    return isinstance(functype, wasmtime.FuncType) and not list(functype.params) and \
        list(functype.results) == [wasmtime.ValType.i64()]
