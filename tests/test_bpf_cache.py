"""compile_filter keeps the programs it compiled lately: the same filter for the same link
type, snaplen and byte order is compiled once and shared; anything that makes the program
differ makes another entry; a filter libpcap refuses is refused every time."""
import pytest

from mapi import bpf
from mapi.errors import MapiError


def insns(prog, n):
    return [(prog[j].code, prog[j].jt, prog[j].jf, prog[j].k) for j in range(n)]


def test_same_filter_shared_other_snaplen_its_own():
    a = bpf.compile_filter("tcp port 80", 1, 65535)
    assert bpf.compile_filter("tcp port 80", 1, 65535) is a
    b = bpf.compile_filter("tcp port 80", 1, 96)
    assert b is not a
    # the accept returns the snaplen (libpcap's "ret #96"): the entries hold different programs
    assert insns(*a)[-2] == (0x06, 0, 0, 65535) and insns(*b)[-2] == (0x06, 0, 0, 96)
    assert insns(*a) == insns(*bpf._compile("tcp port 80", 1, 65535, False, 1,
                                            bpf.PCAP_NETMASK_UNKNOWN))


def test_refusals_are_not_kept():
    for _ in range(2):
        with pytest.raises(MapiError, match="invalid filter"):
            bpf.compile_filter("tcp port", 1, 65535)


def test_the_cache_is_bounded():
    for i in range(bpf.CACHED_PROGRAMS + 10):
        bpf.compile_filter("udp port %d" % i, 1, 65535)
    assert len(bpf._cache) == bpf.CACHED_PROGRAMS


def test_native_kernels_outlive_their_filter_a_while():
    """A flow closed and another applies the same filter: its kernel is found, not emitted again
    (mapi.bpf_jit keeps the last RECENT_KERNELS); the keeping is bounded."""
    import gc
    from mapi import bpf_jit
    if not bpf_jit.enabled():
        pytest.skip("native BPF does not run here (not x86-64, or MAPI_BPF_JIT=0)")
    prog, n = bpf.compile_filter("udp port 7", 1, 65535)
    code = bpf_jit.emit_compiled(prog, n)
    assert code is not None and code is bpf_jit.emit(insns(prog, n))
    del code
    gc.collect()
    assert bpf_jit.cached(insns(prog, n)) is not None
    for i in range(bpf_jit.RECENT_KERNELS + 5):
        bpf_jit.emit_compiled(*bpf.compile_filter("udp port %d" % (1000 + i), 1, 65535))
    assert len(bpf_jit._recent) == bpf_jit.RECENT_KERNELS
    gc.collect()
    assert bpf_jit.cached(insns(prog, n)) is None        # pushed out, then freed
