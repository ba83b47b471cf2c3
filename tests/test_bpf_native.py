"""Native BPF (mapi/bpf_jit.py) must accept exactly what the interpreter accepts, and both what
tcpdump selects."""
import random
import struct

import pytest

from mapi import bpf_jit
from mapi._engine import ffi, lib
from helpers import CORPUS, file_sets, generated, inputs, sample, tcpdump_records
from helpers.bpfrun import bpf_select
from helpers.savefile import batches

pytestmark = pytest.mark.skipif(not bpf_jit.enabled(), reason="no native BPF emitter for this architecture")

EXPRESSIONS = [
    "", "tcp port 80", "udp", "icmp", "ip6", "arp", "vlan", "tcp[tcpflags] & tcp-syn != 0",
    "greater 500", "less 100", "host 10.0.0.1 or net 192.168.0.0/16", "ip[6:2] & 0x1fff != 0",
    "tcp and (port 443 or port 22)", "udp port 53 and not src net 10.0.0.0/8",
    "ether[0] & 1 != 0", "ip and len > 1000", "tcp[((tcp[12:1] & 0xf0) >> 2):4] = 0x47455420",
]
FILES = [generated("mixed.pcap"), generated("mixed.pcapng"),
         "pcap/PcapPlusPlus__4KHttpRequests.pcap", "pcap/PcapPlusPlus__example.pcap",
         "pcap/PcapPlusPlus__VlanPackets.pcap", "pcap/libtrace__100_packets.pcap",
         "pcap/PcapPlusPlus__DnsPackets.pcap", "pcap/PcapPlusPlus__ip6_fragments.pcap"]


def select(b, prog, n, native_addr):
    return bpf_select(b.c, prog, native_addr)


def compiled(expr, linktype):
    prog = ffi.new("mapi_bpf_insn **")
    n = ffi.new("uint32_t *")
    err = ffi.new("char[512]")
    rc = lib.mapi_bpf_compile(ffi.NULL, lib.mapi_linktype_to_dlt(linktype), 262144, expr.encode(),
                              1, 0xFFFFFFFF, prog, n, err)
    if rc < 0:
        return None, 0
    return ffi.gc(prog[0], lib.mapi_free), n[0]


@pytest.mark.parametrize("name", inputs(FILES))
def test_native_equals_interpreter_equals_tcpdump(name):
    path = CORPUS / name
    for expr in EXPRESSIONS:
        for b in batches(path):
            prog, n = compiled(expr, b.c.linktype)
            if prog is None:
                continue
            insns = [(prog[j].code, prog[j].jt, prog[j].jf, prog[j].k) for j in range(n)]
            addr = bpf_jit.compile_native(insns)
            assert addr, "native compile failed for %r" % expr
            interp = select(b, prog, n, None)
            native = select(b, prog, n, addr)
            assert native == interp, (name, expr)
            recs, err = tcpdump_records(path, expr)
            assert recs is not None, err
            assert len(interp) == len(recs), (name, expr)


def random_program(rng, length):
    """A random program that passes libpcap-style validation (forward jumps, ends in ret)."""
    loads = [0x20, 0x28, 0x30, 0x40, 0x48, 0x50, 0xb1, 0x80, 0x81, 0x00, 0x01, 0x60, 0x61, 0x02, 0x03]
    alu = [0x0c, 0x1c, 0x2c, 0x3c, 0x9c, 0x5c, 0x4c, 0xac, 0x6c, 0x7c, 0x04, 0x14, 0x24, 0x34,
           0x94, 0x54, 0x44, 0xa4, 0x64, 0x74, 0x84, 0x07, 0x87]
    jumps = [0x25, 0x35, 0x15, 0x45, 0x2d, 0x3d, 0x1d, 0x4d, 0x05]
    prog = []
    for i in range(length - 1):
        kind = rng.random()
        remaining = length - i - 2
        if kind < 0.35:
            code = rng.choice(loads)
            k = rng.choice([0, 1, 12, 14, 23, 60, 63, 64, 100, 0xFFFFFFF0, rng.randrange(0, 80)])
            if code in (0x60, 0x61, 0x02, 0x03):
                k = rng.randrange(16)
            prog.append((code, 0, 0, k))
        elif kind < 0.7:
            code = rng.choice(alu)
            k = rng.choice([0, 1, 3, 31, 32, 33, 0xFF, 0xFFFFFFFF, rng.randrange(1 << 32)])
            if code in (0x34, 0x94) and k == 0:
                k = 7
            prog.append((code, 0, 0, k))
        else:
            code = rng.choice(jumps)
            jt = rng.randrange(0, min(remaining, 255) + 1)
            jf = rng.randrange(0, min(remaining, 255) + 1)
            k = rng.choice([0, 1, 0x800, 0x86dd, 6, 17, rng.randrange(1 << 32)])
            if code == 0x05:
                prog.append((code, 0, 0, rng.randrange(0, remaining + 1)))
            else:
                prog.append((code, jt, jf, k))
    prog.append(rng.choice([(0x06, 0, 0, rng.choice([0, 1, 65535])), (0x16, 0, 0, 0)]))
    # the scratch words it reads are stored first: libpcap leaves them undefined
    used = sorted({k for code, _, _, k in prog if code in (0x60, 0x61)})
    init = [insn for w in used for insn in ((0x00, 0, 0, rng.randrange(1 << 32)), (0x02, 0, 0, w))]
    return init + prog


def test_native_equals_interpreter_on_random_programs():
    rng = random.Random(20261122)
    path = generated("mixed.pcap")
    b = next(iter(batches(path)))
    for _ in range(40):
        insns = random_program(rng, rng.randrange(2, 40))
        arr = ffi.new("mapi_bpf_insn[]", len(insns))
        for j, (code, jt, jf, k) in enumerate(insns):
            arr[j].code, arr[j].jt, arr[j].jf, arr[j].k = code, jt, jf, k
        assert lib.mapi_bpf_validate(arr, len(insns)) == 1, insns
        addr = bpf_jit.compile_native(insns)
        assert addr
        assert select(b, arr, len(insns), addr) == select(b, arr, len(insns), None), insns


@pytest.mark.parametrize("files", file_sets(
    [sample("pcap/libpcap__ipv6_ext_headers.pcap"), sample("pcap/PcapPlusPlus__ip6_fragments.pcap"),
     generated("mixed.pcap")],
    ["pcap/libpcap__ipv6_ext_headers.pcap", "pcap/PcapPlusPlus__ip6_fragments.pcap",
     "pcap/PcapPlusPlus__example.pcap"]))
@pytest.mark.parametrize("expr", ["ip6 protochain 6", "ip6 protochain 17", "protochain 6"])
def test_backward_jumps_run_like_libpcap(expr, files):
    """libpcap sign-extends ja offsets: ip6 protochain loops over extension headers."""
    import mapi
    for name in files:
        path = CORPUS / name
        for b in batches(path):
            prog, n = compiled(expr, b.c.linktype)
            insns = [(prog[j].code, prog[j].jt, prog[j].jf, prog[j].k) for j in range(n)]
            assert any(c == 0x05 and k & 0x80000000 for c, _, _, k in insns)
            addr = bpf_jit.compile_native(insns)
            assert select(b, prog, n, addr) == select(b, prog, n, None)
        dev = mapi.create_offline_device(str(path))
        fd = mapi.create_flow(dev)
        mapi.apply_function(fd, "BPF_FILTER", expr)
        c = mapi.apply_function(fd, "PKT_COUNTER")
        mapi.connect(fd)
        mapi.start_offline_device(dev)
        mapi.wait_offline_device(dev)
        recs, err = tcpdump_records(path, expr)
        assert mapi.read_results(fd, c).value == len(recs), (name, expr)
