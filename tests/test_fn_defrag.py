"""DEFRAG: the reassembled datagrams of a generated trace with IPv4 and IPv6 fragments (in order
and reversed) and of the corpus's fragment traces against tshark's reassembly, hand-built
overlaps under each policy, limits and timeouts."""
import re
import subprocess

import dpkt
import pytest

from helpers import CORPUS, generated, inputs, name_of, need_tool, needs_corpus, replay
from helpers.pktbuild import MAC_A, MAC_B, assert_rejected, ip4, ip6, write_pcap
from helpers.reassembly import assert_streams_equal_tshark, cooked

PCAP = CORPUS / "pcap"
FRAGMENT_TRACES = ["PcapPlusPlus__frag_with_padding.pcap", "PcapPlusPlus__ip4_fragments.pcap",
                   "PcapPlusPlus__ip6_fragments.pcap", "libpcap__ah-ipip-ping.pcap",
                   "zeek__dns-edns-ecs.pcap", "zeek__ipv4__fragmented-1.pcap",
                   "zeek__ipv4__fragmented-2.pcap", "zeek__ipv4__fragmented-3.pcap",
                   "zeek__ipv6-reassembly-state-leak.pcap",
                   "suricata-verify__defrag__bug-6887-defrag-eth-vlan-ipv4-tcp-syn__frag-eth-vlan-ip-tcp-syn.pcap",
                   "suricata-verify__defrag__bug-6887-defrag-eth-vlan-ipv6-tcp__frag-eth-vlan-ipv6-tcp.pcap",
                   "suricata-verify__defrag__bug-6887-defrag-ipv4-tcp-syn__frag-ip-tcp-syn.pcap"]
SECTION = re.compile(r"^Reassembled IPv([46]) \((\d+) bytes\):$")


def tshark_reassembled(path):
    """{frame number: (IP version, reassembled payload)} from tshark's hex dumps."""
    out = subprocess.run([need_tool("tshark"), "-r", str(path), "-x"], capture_output=True,
                         text=True, timeout=300).stdout
    found = {}
    for number, block in enumerate(out.split("\n\n"), 1):
        section = None
        for line in block.splitlines():
            m = SECTION.match(line)
            if m:
                section = [int(m.group(1)), int(m.group(2)), bytearray()]
                found[number] = section
            elif section is not None and re.match(r"^[0-9a-f]{4}  ", line):
                section[2] += bytes.fromhex(line[6:53])
            elif not re.match(r"^[0-9a-f]{4}  ", line):
                section = None
    return {n: (v, bytes(d[:length])) for n, (v, length, d) in found.items()}


@pytest.mark.parametrize("path", inputs([generated("fragments.pcap")] + FRAGMENT_TRACES, base="pcap"))
def test_datagrams_equal_tshark_reassembly(path):
    name = name_of(path)
    ref = tshark_reassembled(path)
    r = replay(path, [("DEFRAG", (), dict(timeout="1h"))])       # tshark has no timeout
    st = r.results[0].value
    if name in SPECIAL:
        return SPECIAL[name](path, ref, r)
    ours = {}
    for p in r.packets:
        if p.seq + 1 in ref:
            ours[p.seq + 1] = p
    assert st["reassembled"] == len(ref) and set(ours) == set(ref), (st, sorted(ref))
    if name == "fragments.pcap":                       # both versions, both orders, and a lot
        assert len(ref) > 300 and {v for v, _ in ref.values()} == {4, 6}
    for number, (version, payload) in ref.items():
        data = ours[number].data
        assert data.endswith(payload), number
        eth = dpkt.ethernet.Ethernet(data) if str(path).find("frag-ip-tcp") < 0 else None
        ip = eth.data if eth is not None else dpkt.ip.IP(data)
        while isinstance(ip, dpkt.ethernet.Ethernet) or not isinstance(ip, (dpkt.ip.IP, dpkt.ip6.IP6)):
            ip = ip.data                              # VLAN-tagged frames: dpkt unwraps
        if version == 4:
            assert ip.len == ip.hl * 4 + len(payload) and ip.off & 0x3FFF == 0
            raw = bytes(data[len(data) - ip.len:len(data) - ip.len + ip.hl * 4])
            assert dpkt.in_cksum(raw) == 0               # header checksum right
        else:
            assert ip.plen >= len(payload) and 44 not in (ip.nxt, getattr(ip, "extension_hdrs", {}))
    # every packet: non-fragments as they were, each datagram once instead of its fragments
    assert len(r.packets) == st["packets"] - st["fragments"] + st["reassembled"]


def overlapping_tail(path, ref, r):
    """zeek's fragmented-1: [0,18) with MF, then the last fragment [48,164), then [0,304) again
    (past the end: cut to 164).  Under "first" the bytes that came first win; Wireshark fills
    by lowest offset (BSD-like), so [48,164) differs, exactly there."""
    f1, f2, f3 = (bytes(dpkt.ethernet.Ethernet(buf).data.data) for _, buf in dpkt.pcap.Reader(open(path, "rb")))
    ours = r.packets[0].data[34:]
    assert ours == f1[:18] + f3[18:48] + f2
    assert ref[3][1] == f1[:18] + f3[18:164]
    assert r.results[0].value["overlaps"] == 1


def oversize(path, ref, r):
    """zeek's ipv6-reassembly-state-leak: two datagrams of 65528 bytes after an 8-byte
    hop-by-hop header: 65536 bytes of IPv6 payload, more than its length field holds.  tshark
    puts them together anyway; DEFRAG gives them up as impossible."""
    st = r.results[0].value
    assert [len(d) for _, d in ref.values()] == [65528, 65528]
    assert st["reassembled"] == 0 and st["discarded"] == 2 and r.packets == []


SPECIAL = {"zeek__ipv4__fragmented-1.pcap": overlapping_tail,
           "zeek__ipv6-reassembly-state-leak.pcap": oversize}


def fragments4(payload, cuts, ident=7, proto=17, src="10.0.0.1", dst="10.0.0.2"):
    """IPv4 fragments of `payload` at [(offset, length, more)] (offsets in bytes, multiples of 8)."""
    out = []
    for off, length, more in cuts:
        ip = dpkt.ip.IP(src=ip4(src), dst=ip4(dst), p=proto, id=ident, ttl=64,
                        data=payload[off:off + length])
        ip.offset, ip.mf = off // 8, int(more)      # dpkt counts in 8-byte units
        ip.len = 20 + length
        out.append(bytes(dpkt.ethernet.Ethernet(src=MAC_A, dst=MAC_B, data=ip)))
    return out


def fragments6(payload, cuts, ident=9, nxt=17):
    out = []
    for off, length, more in cuts:
        frag = struct_frag(nxt, off, more, ident) + payload[off:off + length]
        ip = dpkt.ip6.IP6(src=ip6("2001:db8::1"), dst=ip6("2001:db8::2"), nxt=44, hlim=64)
        ip.data = frag
        ip.plen = len(frag)
        head = bytes(ip)[:40]
        out.append(bytes(dpkt.ethernet.Ethernet(src=MAC_A, dst=MAC_B, type=dpkt.ethernet.ETH_TYPE_IP6,
                                                data=head + frag)))
    return out


def struct_frag(nxt, off, more, ident):
    import struct
    return struct.pack("!BBHI", nxt, 0, off | (1 if more else 0), ident)


def reassemble(tmp_path, frames, **kw):
    r = replay(write_pcap(tmp_path / "f.pcap", frames), [("DEFRAG", (), kw)])
    return r.results[0].value, [p.data for p in r.packets]


POLICY_CASE = [(0, 16, True), (8, 16, True), (24, 8, False)]   # the second overlaps the first


@pytest.mark.parametrize("policy,want", [("first", b"A" * 16 + b"B" * 8 + b"C" * 8),
                                         ("last", b"A" * 8 + b"B" * 16 + b"C" * 8),
                                         ("linux", None)])
@pytest.mark.parametrize("v6", [False, True])
def test_overlap_policies(policy, want, v6, tmp_path):
    blocks = [b"A" * 16, b"B" * 16, b"C" * 8]
    build = fragments6 if v6 else fragments4
    frames = [build(b"\0" * off + blk, [(off, len(blk), more)])[0]
              for blk, (off, _, more) in zip(blocks, POLICY_CASE)]
    st, pkts = reassemble(tmp_path, frames, policy=policy)
    assert st["overlaps"] == 1
    if want is None:                                      # linux: the datagram is discarded
        # the third fragment starts the datagram anew; it is given up at the end
        assert pkts == [] and st["discarded"] == 1 and st["unfinished"] == 1
        assert st["given_up_fragments"] == 3
        return
    assert len(pkts) == 1 and pkts[0].endswith(want)
    assert len(pkts[0]) == 14 + (40 if v6 else 20) + 32


def test_duplicate_fragment_is_dropped_under_linux(tmp_path):
    payload = bytes(range(48))
    frames = fragments4(payload, [(0, 16, True), (16, 16, True), (16, 16, True), (32, 16, False)])
    st, pkts = reassemble(tmp_path, frames, policy="linux")
    assert st["duplicates"] == 1 and len(pkts) == 1 and pkts[0][34:] == payload


def test_reordered_fragments_and_passing_traffic(tmp_path):
    payload = bytes(range(200)) * 20
    cuts = [(k, 800, k + 800 < len(payload)) for k in range(0, len(payload), 800)]
    frags = fragments4(payload, cuts)
    other = fragments4(b"x" * 40, [(0, 40, False)], ident=99)[0]     # not a fragment
    frames = [frags[3], other, frags[0], frags[4], frags[2], frags[1]]
    st, pkts = reassemble(tmp_path, frames)
    assert pkts[0] == other and len(pkts) == 2
    ip = dpkt.ethernet.Ethernet(pkts[1]).data
    assert ip.len == 20 + len(payload) and bytes(ip.data) == payload and ip.off == 0


def test_timeout_limits_and_end_of_stream(tmp_path):
    a = fragments4(b"a" * 64, [(0, 32, True), (32, 32, False)], ident=1)
    b = fragments4(b"b" * 64, [(0, 32, True), (32, 32, False)], ident=2)
    c = fragments4(b"c" * 64, [(0, 32, True), (32, 32, False)], ident=3)
    t0 = 1700000000.0
    frames = [(t0, a[0]), (t0 + 40, a[1]),                  # 40 s apart: given up at 30 s
                        (t0 + 41, b[0]), (t0 + 42, c[0]), (t0 + 43, c[1]),   # limit 1: evictions
              (t0 + 44, b[1])]                               # b's last half: never completed
    st, pkts = reassemble(tmp_path, frames, max_datagrams=1)
    # a's second half starts a datagram anew, evicted by b's first, itself evicted by c's
    assert (st["timeouts"], st["evicted"], st["unfinished"], st["reassembled"]) == (1, 2, 1, 1)
    assert len(pkts) == 1 and pkts[0].endswith(b"c" * 64)
    assert st["given_up_fragments"] == 4 and st["held_datagrams"] == 0


def test_defrag_then_cooking_sees_fragmented_tcp():
    """TCP segments sent as fragments: COOKING alone misses their bytes; after DEFRAG its
    streams equal tshark's (which reassembles IP first)."""
    path = generated("fragments.pcap")
    alone = cooked(path)[1]
    assert alone["not_tcp"] > 100                      # the fragments
    assert assert_streams_equal_tshark(path, "fragments.pcap", before=[("DEFRAG", (), {})]) > 50
    both = cooked(path, before=[("DEFRAG", (), {})])[1]
    assert both["bytes"] > alone["bytes"] and both["gaps"] == 0


@needs_corpus
def test_corpus_defrag_then_cooking_sees_fragmented_tcp():
    name = "suricata-verify__defrag__bug-6887-defrag-eth-vlan-ipv6-tcp__frag-eth-vlan-ipv6-tcp.pcap"
    path = PCAP / name
    alone = replay(path, [("COOKING", (), {})], buffer=False).results[0].value
    both = replay(path, [("DEFRAG", (), {}), ("COOKING", (), {})], buffer=False).results[1].value
    follow = subprocess.run([need_tool("tshark"), "-r", str(path), "-q", "-z", "follow,tcp,raw,0"],
                            capture_output=True, text=True).stdout
    ref = sum(len(ln.strip()) // 2 for ln in follow.splitlines()[6:] if re.fullmatch(r"\t?[0-9a-f]+", ln))
    assert alone["bytes"] == 0 and both["bytes"] == ref > 0


def test_bad_arguments():
    assert_rejected(generated("fragments.pcap"), "DEFRAG",
                    [(("bsd",), {}, "policy"), ((), dict(max_datagrams=0), "max_datagrams"),
                     ((), dict(timeout="soon"), "timeout")])
