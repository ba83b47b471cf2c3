"""The accepting paths mapi.bpf_analysis extracts must select exactly the packets the BPF
program accepts (when the analysis says it is complete), checked on corpus packets."""
import struct

import pytest

from mapi import bpf_analysis
from mapi._engine import ffi, lib
from mapi.bpf import compile_filter
from helpers import CORPUS, file_sets, generated, sample
from helpers.savefile import batches

EXPRESSIONS = [
    "tcp port 80", "udp port 53", "icmp", "ip6", "arp", "host 10.0.0.1", "net 192.168.0.0/16",
    "tcp[tcpflags] & tcp-syn != 0", "tcp and (port 443 or port 22)", "greater 500", "less 100",
    "src host 172.16.0.1 and tcp", "udp and not port 53", "not port 22", "vlan and tcp",
    "ip and len > 1000", "ip[6:2] & 0x1fff != 0", "portrange 1000-2000", "ip proto 47",
]
FILES = ["pcap/PcapPlusPlus__4KHttpRequests.pcap", "pcap/PcapPlusPlus__example.pcap",
         "pcap/PcapPlusPlus__VlanPackets.pcap", "pcap/PcapPlusPlus__DnsPackets.pcap",
         "pcap/PcapPlusPlus__ip6_fragments.pcap", "pcap/libtrace__100_packets.pcap"]
OWN_FILES = [generated("mixed.pcap"), sample("pcap/PcapPlusPlus__VlanPackets.pcap"),
             sample("pcap/PcapPlusPlus__DnsPackets.pcap"), sample("pcap/PcapPlusPlus__ip6_fragments.pcap")]


def load(pkt, wirelen, ld):
    if ld.kind == "len":
        return wirelen
    off = ld.offset
    if ld.kind == "ind":
        if ld.xbase >= len(pkt):
            return None
        off += 4 * (pkt[ld.xbase] & 0xF)
    if off + ld.size > len(pkt):
        return None
    return int.from_bytes(pkt[off:off + ld.size], "big")


def path_accepts(paths, pkt, wirelen):
    for path in paths:
        ok = True
        for c in path:
            v = load(pkt, wirelen, c.load)
            if v is None or not c.holds(v):
                ok = False
                break
        if ok:
            return True
    return False


@pytest.mark.parametrize("files", file_sets(OWN_FILES, FILES))
@pytest.mark.parametrize("expr", EXPRESSIONS)
def test_paths_select_what_bpf_selects(expr, files):
    prog, n = compile_filter(expr, 1, 262144)
    insns = [(prog[j].code, prog[j].jt, prog[j].jf, prog[j].k) for j in range(n)]
    a = bpf_analysis.analyze(insns)
    assert a.complete, (expr, a.reason)
    checked = 0
    for name in files:
        for b in batches(CORPUS / name):
            if b.c.linktype != 1:
                continue
            for i in range(b.c.n):
                pkt = bytes(ffi.buffer(b.c.base + b.c.off[i], b.c.caplen[i]))
                want = lib.mapi_bpf_run(prog, pkt, b.c.wirelen[i], b.c.caplen[i]) != 0
                assert path_accepts(a.paths, pkt, b.c.wirelen[i]) == want, (expr, name, i)
                checked += 1
    assert checked > 1000


def test_dropping_conditions_gives_a_superset():
    prog, n = compile_filter("not port 22 and tcp", 1, 262144)
    a = bpf_analysis.analyze([(prog[j].code, prog[j].jt, prog[j].jf, prog[j].k) for j in range(n)])
    broad = tuple(tuple(c for c in p if c.positive) for p in a.paths)
    for b in batches(generated("mixed.pcap")):
        for i in range(b.c.n):
            pkt = bytes(ffi.buffer(b.c.base + b.c.off[i], b.c.caplen[i]))
            if lib.mapi_bpf_run(prog, pkt, b.c.wirelen[i], b.c.caplen[i]):
                assert path_accepts(broad, pkt, b.c.wirelen[i])


def test_tcp_port_80_is_purely_positive():
    prog, n = compile_filter("tcp port 80", 1, 262144)
    a = bpf_analysis.analyze([(prog[j].code, prog[j].jt, prog[j].jf, prog[j].k) for j in range(n)])
    assert a.complete and len(a.paths) == 4
    assert all(c.positive or c.op == "set" for p in a.paths for c in p)
