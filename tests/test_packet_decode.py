"""Packet.decode(): a delivered packet as a dpkt object of its link type, checked field by
field against tshark's decode of the same corpus packets; the packet stays a plain tuple."""
import os
import subprocess
import sys

import pytest

import mapi
from helpers import CORPUS, generated, inputs, need_tool, replay

PCAP = CORPUS / "pcap"
MIXED = generated("mixed.pcap")
FIELDS = ["ip.flags.mf", "ip.frag_offset", "ip.src", "ip.dst", "ip.len", "ip.proto", "ipv6.src", "ipv6.dst", "ipv6.plen",
          "tcp.srcport", "tcp.dstport", "udp.srcport", "udp.dstport", "eth.src", "eth.dst"]


def tshark_fields(path):
    """One dict per frame: the fields tshark decoded (the outermost of repeated ones)."""
    cmd = [need_tool("tshark"), "-r", str(path), "-T", "fields", "-E", "separator=\t"]
    for f in FIELDS:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    rows = []
    for line in out.stdout.splitlines():
        cells = line.split("\t")
        # tunnels repeat a field (outer,inner): the outermost is the one compared
        rows.append({f: c.split(",")[0] for f, c in zip(FIELDS, cells) if c})
    return rows


def _mac(b):
    return ":".join("%02x" % x for x in b)


def dpkt_fields(pkt):
    import dpkt
    import socket
    obj = pkt.decode()
    row = {}
    if isinstance(obj, dpkt.ethernet.Ethernet):
        row.update({"eth.src": _mac(obj.src), "eth.dst": _mac(obj.dst)})
    layer = obj
    while not isinstance(layer, (dpkt.ip.IP, dpkt.ip6.IP6)):
        layer = layer.data
        assert not isinstance(layer, bytes), "no IP layer in %r" % obj
    if isinstance(layer, dpkt.ip.IP):
        row.update({"ip.src": socket.inet_ntop(socket.AF_INET, layer.src),
                    "ip.dst": socket.inet_ntop(socket.AF_INET, layer.dst),
                    "ip.len": str(layer.len), "ip.proto": str(layer.p)})
    else:
        row.update({"ipv6.src": socket.inet_ntop(socket.AF_INET6, layer.src),
                    "ipv6.dst": socket.inet_ntop(socket.AF_INET6, layer.dst),
                    "ipv6.plen": str(layer.plen)})
    l4 = layer.data
    for proto, cls in (("tcp", dpkt.tcp.TCP), ("udp", dpkt.udp.UDP)):
        if isinstance(l4, cls):
            row.update({proto + ".srcport": str(l4.sport), proto + ".dstport": str(l4.dport)})
    return row


@pytest.mark.parametrize("name, linktype", inputs([(MIXED, 1)]) + inputs([
    ("PcapPlusPlus__example.pcap", 1),            # Ethernet
    ("PcapPlusPlus__tls2.pcap", 1),               # Ethernet, IPv6 too
    ("PcapPlusPlus__raw_ip.pcap", 101),           # raw IP
    ("../tcpdump/pcap/resp_1_benchmark.pcap", 113),   # Linux cooked
    ("../tcpdump/pcap/forces1.pcap", 113),            # Linux cooked, SCTP
    ("suricata-verify__tls-duplicate-hello__input.pcap", 0),
    ("PcapPlusPlus__null_loopback.pcap", 0),      # BSD loopback
    ("PcapPlusPlus__linktype_ipv4.pcap", 228),
    ("PcapPlusPlus__linktype_ipv6.pcap", 229),
], base="pcap"))
def test_decode_agrees_with_tshark(name, linktype):
    path = PCAP / name
    frames = tshark_fields(path)
    # the packets libpcap's filter calls IP (tshark also guesses at odd loopback headers)
    run = replay(path, [("BPF_FILTER", ("ip or ip6",), {})])
    assert run.packets and {p.linktype for p in run.packets} == {linktype}
    compared = 0
    for pkt in run.packets:
        i = pkt.seq                            # device-wide index: tshark's frame i + 1
        want = frames[i]
        fragment = want.pop("ip.flags.mf", "0") not in ("0", "False") or \
            want.pop("ip.frag_offset", "0") != "0"
        if fragment or not ("ip.src" in want or "ipv6.src" in want):
            continue                           # tshark found no whole IP packet here
        got = dpkt_fields(pkt)
        # tshark shows ports only where the header is there; compare what both decoded
        shared = {k: v for k, v in want.items() if not k.endswith("port") or k in got}
        assert {k: got.get(k) for k in shared} == shared, (i, got, want)
        compared += 1
    assert compared > 0


def test_packets_stay_tuples_and_dpkt_loads_only_on_decode():
    code = ("import sys, mapi\n"
            "from helpers import replay\n"
            "run = replay(%r, [])\n"
            "p = run.packets[0]\n"
            "assert 'dpkt' not in sys.modules\n"
            "ts, caplen, wlen, data, ifindex, linktype, seq = p\n"
            "assert isinstance(p, tuple) and p == tuple(p) and p[3] == data == p.data\n"
            "assert p._replace(seq=7).seq == 7 and type(p.decode()).__name__ == 'Ethernet'\n"
            "assert 'dpkt' in sys.modules\n" % str(MIXED))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, cwd=os.path.dirname(os.path.abspath(__file__)))
    assert out.returncode == 0, out.stderr


def test_a_link_type_dpkt_cannot_decode_is_an_error_not_a_guess():
    from mapi.packet import Packet
    p = Packet(0, 4, 4, b"\x00\x01\x02\x03", 0, 147, 0)          # USER0
    with pytest.raises(mapi.MapiError) as e:
        p.decode()
    assert e.value.code == mapi.ENOTSUP and "link type 147" in str(e.value)
