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
