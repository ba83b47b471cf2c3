"""HASHSAMP against a Python reimplementation (RFC 5475's BOB hash over the 5-tuple that dpkt
decodes from tcpdump's output), plus flow consistency and the selected fraction."""
import collections
import random
import socket
import struct

import dpkt
import pytest

import mapi
from helpers import CORPUS, generated, inputs, linktype_of, replay, sample, tcpdump_records
from helpers.decode import ip_layer

PCAP = CORPUS / "pcap"
M32 = 0xFFFFFFFF


# --- reference: RFC 5475 appendix A.2 "BOB" (lookup2), written from its description ----------
def _mix(a, b, c):
    for s1, s2, s3 in ((13, 8, 13), (12, 16, 5), (3, 10, 15)):
        a = ((a - b - c) & M32) ^ (c >> s1)
        b = ((b - c - a) & M32) ^ ((a << s2) & M32)
        c = ((c - a - b) & M32) ^ (b >> s3)
    return a, b, c


def bob(key, initval=0):
    a = b = 0x9E3779B9
    c = initval
    k = key
    while len(k) >= 12:
        a = (a + int.from_bytes(k[0:4], "little")) & M32
        b = (b + int.from_bytes(k[4:8], "little")) & M32
        c = (c + int.from_bytes(k[8:12], "little")) & M32
        a, b, c = _mix(a, b, c)
        k = k[12:]
    c = (c + len(key)) & M32
    tail = k + bytes(12 - len(k))
    a = (a + int.from_bytes(tail[0:4], "little")) & M32
    b = (b + int.from_bytes(tail[4:8], "little")) & M32
    c = (c + (int.from_bytes(tail[8:11], "little") << 8)) & M32   # low byte of c holds len
    return _mix(a, b, c)[2]


def five_tuple(linktype, frame):
    """(src, dst, proto, sport, dport) decoded by dpkt, or None for non-IP packets."""
    ip = ip_layer(linktype, frame)
    if isinstance(ip, dpkt.ip.IP):
        later = ip.offset != 0
        proto = ip.p
    elif isinstance(ip, dpkt.ip6.IP6):
        exts = [e for e in ip.all_extension_headers]
        later = any(isinstance(e, dpkt.ip6.IP6FragmentHeader) and e.frag_off for e in exts)
        proto = ip.p
        if any(isinstance(e, dpkt.ip6.IP6ESPHeader) for e in exts):
            proto, later = 50, True          # ESP ends the headers we can read
    else:
        return None
    sport = dport = 0
    if proto in (6, 17) and not later:
        l4 = ip.data
        if isinstance(l4, (dpkt.tcp.TCP, dpkt.udp.UDP)):
            sport, dport = l4.sport, l4.dport
        elif isinstance(l4, bytes) and len(l4) >= 4:
            sport, dport = struct.unpack("!HH", l4[:4])
    return ip.src, ip.dst, proto, sport, dport


def selection_value(t, symmetric=False):
    src, dst, proto, sport, dport = t
    if symmetric and (src, sport) > (dst, dport):
        src, dst, sport, dport = dst, src, dport, sport
    return bob(src + dst + bytes([proto]) + struct.pack("!HH", sport, dport)) & 1023


# --- helpers --------------------------------------------------------------------------------
def run_flow(path, funcs):
    r = replay(path, [(name, args, {}) for name, *args in funcs])
    return [x.value for x in r.results], [(p.ts // 1000, bytes(p.data)) for p in r.packets]


def records(path):
    recs, err = tcpdump_records(path)
    assert recs is not None, err
    return [(round(ts * 1e6), data) for ts, _, data in recs]


FILES = [generated("mixed.pcap"), generated("tcp4.pcap"), "pcap/PcapPlusPlus__4KHttpRequests.pcap", "pcap/PcapPlusPlus__DnsPackets.pcap",
         "pcap/PcapPlusPlus__VlanPackets.pcap", "pcap/PcapPlusPlus__ip6_fragments.pcap",
         "pcap/PcapPlusPlus__ip4_fragments.pcap", "pcap/PcapPlusPlus__null_loopback.pcap",
         "pcap/PcapPlusPlus__raw_ip.pcap", "pcap/PcapPlusPlus__linktype_ipv6.pcap",
         "pcap/PcapPlusPlus__linktype_ipv4.pcap", "pcap/libtrace__100_sll.pcap",
         "tcpdump/pcap/resp_1_benchmark.pcap", "tcpdump/pcap/quic_retry.pcap",
         "pcap/zeek__pppoe-over-qinq.pcap", "pcap/libtrace__mpls.pcap",
         "pcap/libpcap__ipv6_ext_headers.pcap", "pcap/PcapPlusPlus__example.pcap",
         "pcap/PcapPlusPlus__tls2.pcap"]


@pytest.mark.parametrize("name", inputs(FILES))
@pytest.mark.parametrize("rng, symmetric", [(300, False), (700, True)])
def test_decisions_equal_python_bob_over_dpkt_5tuples(name, rng, symmetric):
    path = CORPUS / name
    lt = linktype_of(path)
    recs = records(path)
    tuples = [five_tuple(lt, data) for _, data in recs]
    want = [r for r, t in zip(recs, tuples) if t is not None and selection_value(t, symmetric) < rng]
    (res,), got = run_flow(path, [("HASHSAMP", rng, False, symmetric)])
    assert got == want
    assert res["selected"] == len(want)
    assert res["seen"] == len(recs)
    assert res["not_ip"] == sum(t is None for t in tuples)


@pytest.mark.parametrize("name", inputs([generated("mixed.pcap"), "PcapPlusPlus__4KHttpRequests.pcap"],
                                         base="pcap"))
def test_every_packet_of_a_flow_gets_the_same_decision(name):
    path = PCAP / name
    recs = records(path)
    (_,), got = run_flow(path, [("HASHSAMP", 512)])
    chosen = set(got)
    decisions = collections.defaultdict(set)
    for r in recs:
        decisions[five_tuple(1, r[1])].add(r in chosen)
    assert len(decisions) > 20
    assert all(len(d) == 1 for d in decisions.values())
    assert {True, False} <= set().union(*decisions.values())   # some flows in, some out


@pytest.mark.parametrize("name", inputs([generated("mixed.pcap"), "PcapPlusPlus__4KHttpRequests.pcap"],
                                         base="pcap"))
def test_symmetric_keeps_both_directions(tmp_path, name):
    path = PCAP / name
    (_,), got = run_flow(path, [("HASHSAMP", 512, False, True)])
    conv = collections.defaultdict(set)
    (_,), every = run_flow(path, [("HASHSAMP", 1024, False, True)])
    chosen = set(got)
    for r in every:
        s, d, p, sp, dp = five_tuple(1, r[1])
        conv[frozenset([(s, sp), (d, dp)])].add(r in chosen)
    assert all(len(v) == 1 for v in conv.values())


def synthetic_flows(path, nflows, seed=1):
    """One UDP packet per random 5-tuple (IPv4 and IPv6), Ethernet."""
    rnd = random.Random(seed)
    w = dpkt.pcap.Writer(open(path, "wb"))
    for i in range(nflows):
        if i % 4:
            ip = dpkt.ip.IP(src=rnd.randbytes(4), dst=rnd.randbytes(4), p=17)
            etype = dpkt.ethernet.ETH_TYPE_IP
        else:
            ip = dpkt.ip6.IP6(src=rnd.randbytes(16), dst=rnd.randbytes(16), nxt=17, hlim=64)
            etype = dpkt.ethernet.ETH_TYPE_IP6
        ip.data = dpkt.udp.UDP(sport=rnd.randrange(65536), dport=rnd.randrange(65536), data=b"x")
        if isinstance(ip, dpkt.ip6.IP6):
            ip.plen = len(ip.data)
        eth = dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, type=etype, data=ip)
        w.writepkt(bytes(eth), ts=1_600_000_000 + i * 1e-3)
    w.close()
    return path


@pytest.fixture(scope="module")
def flows_pcap(tmp_path_factory):
    return synthetic_flows(tmp_path_factory.mktemp("hashsamp") / "flows.pcap", 20000)


@pytest.mark.parametrize("rng", [1, 100, 512, 1000])
def test_selected_fraction_is_near_range_over_1024(flows_pcap, rng):
    path = flows_pcap
    (res,), _ = run_flow(path, [("HASHSAMP", rng)])
    frac = res["selected"] / 20000
    # binomial sd <= 0.0036 at 20000 flows; 4 sd
    assert abs(frac - rng / 1024) < 0.015, frac


def test_range_bounds():
    path = sample("pcap/PcapPlusPlus__DnsPackets.pcap")
    n = len(records(path))
    (none,), _ = run_flow(path, [("HASHSAMP", 0)])
    (every,), _ = run_flow(path, [("HASHSAMP", 1024)])
    assert none["selected"] == 0
    assert every["selected"] == n - every["not_ip"]


@pytest.mark.parametrize("name", inputs([generated("tcp4.pcap"), "PcapPlusPlus__4KHttpRequests.pcap"],
                                         base="pcap"))
def test_keep_records_describe_the_selected_packets(name):
    path = PCAP / name
    (res,), got = run_flow(path, [("HASHSAMP", 400, True)])
    samples = res["samples"]
    assert len(samples) == len(got) == res["selected"] > 0
    for s, (ts_us, data) in zip(samples, got):
        ip = dpkt.ethernet.Ethernet(data).data
        tcp = ip.data
        assert s["ts"] // 1000 == ts_us
        assert (s["src"], s["dst"]) == (socket.inet_ntoa(ip.src), socket.inet_ntoa(ip.dst))
        assert (s["sport"], s["dport"], s["proto"]) == (tcp.sport, tcp.dport, 6)
        assert (s["tcp_seq"], s["tcp_flags"]) == (tcp.seq, tcp.flags)
        assert s["hash"] == selection_value(five_tuple(1, data))


def test_bad_range():
    dev = mapi.create_offline_device(str(sample("pcap/PcapPlusPlus__DnsPackets.pcap")))
    try:
        fd = mapi.create_flow(dev)
        for bad in (-1, 1025):
            with pytest.raises(mapi.MapiError) as e:
                mapi.apply_function(fd, "HASHSAMP", bad)
            assert e.value.code == 1005 and e.value.where["argument"] == "range"
    finally:
        mapi.delete_offline_device(dev)
