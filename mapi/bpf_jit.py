"""Classic BPF to native code, FFPF-style, without a compiler: mapi/csrc/bpf_x86_64.c emits each
program's batch kernel (the loop over the selection vector with the filter inlined) as x86-64
machine code into a mapping of its own, written and then made read + execute.  Emitting takes
microseconds in the process that runs the filter: no C compiler on the sensor, no cache
directory, nothing to prepare before an application drops its privileges.

The native kernel accepts exactly the packets the interpreter accepts; a program the emitter
leaves alone (another architecture, an opcode outside classic BPF) runs in the interpreter.
MAPI_BPF_JIT=0 keeps every program in the interpreter.
"""
import os
import struct
import threading
import weakref
from collections import OrderedDict

from ._engine import ffi, lib

from .lazylog import getLogger

log = getLogger("mapi.bpf_jit")

_lock = threading.Lock()
_live = weakref.WeakValueDictionary()   # program -> NativeCode while somebody holds it
_kept = {}                              # program -> NativeCode kept for the process
# the kernels emitted last, kept after their filters went: flows that come and go with the same
# filter (a client's control loop, tcpdumps restarted) find theirs instead of emitting it again
RECENT_KERNELS = 64
_recent = OrderedDict()
# a program's key: its instructions as mapi_bpf_insn lays them out (8 bytes each, host order)
_INSN = struct.Struct("=HBBI")


class NativeCode:
    """One program's kernel.  `address` is its mapi_bpf_native_fn; the code is unmapped when
    this object goes, so whoever installs the address keeps the object (BPF_FILTER holds the
    one compile_async returns)."""

    __slots__ = ("c", "address", "size", "__weakref__")

    def __init__(self, c):
        self.c = c
        self.address = int(ffi.cast("uintptr_t", c.fn))
        self.size = c.code_size

    def join(self, timeout=None):
        """compile_async's handle: emitting is synchronous, nothing to wait for."""

    def __del__(self):
        c, self.c = getattr(self, "c", None), None
        if c is not None:
            lib.mapi_bpf_code_free(c)


def enabled():
    """Native code runs here: an x86-64 build and MAPI_BPF_JIT is not 0."""
    return os.environ.get("MAPI_BPF_JIT", "1") != "0" and bool(lib.mapi_bpf_emit_supported())


def _program(insns):
    return b"".join(_INSN.pack(int(code), int(jt), int(jf), int(k)) for code, jt, jf, k in insns)


def emit(insns):
    """The NativeCode of a program [(code, jt, jf, k), ...] (shared with anyone holding the
    same program's), or None: the interpreter runs it."""
    return _emit(_program(insns)) if enabled() else None


def emit_compiled(prog, n):
    """emit() of a program as mapi.bpf.compile_filter returns it (mapi_bpf_insn cdata, count)."""
    return _emit(bytes(ffi.buffer(prog, n * _INSN.size))) if enabled() and n else None


def _emit(key):
    with _lock:
        code = _live.get(key) or _recent.get(key)
        if code is None:
            count = len(key) // _INSN.size
            arr = ffi.from_buffer("mapi_bpf_insn[]", key) if count else \
                ffi.new("mapi_bpf_insn[]", 1)
            out = ffi.new("mapi_bpf_code *")
            err = ffi.new("char[256]")
            if lib.mapi_bpf_emit(arr, count, out, err, len(err)) < 0:
                log.info("native BPF: %s; the interpreter runs this program",
                         ffi.string(err).decode(errors="replace"))
                return None
            code = _live[key] = NativeCode(out)
        _recent[key] = code
        _recent.move_to_end(key)
        if len(_recent) > RECENT_KERNELS:
            _recent.popitem(last=False)
        return code


def cached(insns):
    """Address of the program's native kernel if one is held already, else None."""
    with _lock:
        code = _live.get(_program(insns))
    return code.address if code is not None else None


def compile_native(insns):
    """Address of the program's native kernel, kept for the life of the process (tests, the
    libpcap drop-in's pcap_compile), or None."""
    code = emit(insns)
    if code is None:
        return None
    with _lock:
        _kept[_program(insns)] = code
    return code.address


def compile_async(insns, install):
    """Call install(address) with the program's native kernel, at once.  Returns the
    NativeCode (keep it while the kernel may run: its join() does nothing), or None when the
    interpreter runs the program."""
    return _install(emit(insns), install)


def compile_async_compiled(prog, n, install):
    """compile_async() of a program as mapi.bpf.compile_filter returns it."""
    return _install(emit_compiled(prog, n), install)


def _install(code, install):
    if code is not None:
        install(code.address)
    return code
