"""BPF_FILTER's batch kernel run directly: the interpreter, or native code when given its address."""
from mapi._engine import ffi, lib


def bpf_select(c, prog, native=None):
    """Indices of the packets of batch `c` (a cffi mapi_batch) that program `prog` (cffi
    mapi_bpf_insn array) accepts, through mapi_bpf_kernel: interpreted, or by the native kernel
    at address `native`."""
    st = ffi.new("mapi_bpf_state *")
    st.linktype[0] = c.linktype
    st.prog[0] = prog
    st.native[0] = ffi.cast("mapi_bpf_native_fn", native) if native else ffi.NULL
    st.nprog = 1
    sel = ffi.new("uint32_t[]", list(range(c.n)) or [0])
    out = ffi.new("uint32_t[]", max(1, c.n))
    k = lib.mapi_bpf_kernel(st, c, sel, c.n, out)
    return list(out[0:k])
