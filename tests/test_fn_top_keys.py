"""TOP's keys beyond one field, against tshark: conversations (tshark -z conv,ip frames, and the
bytes summed from tshark -T fields), rankings by bytes (tshark -z endpoints,ip Tx columns, as
nfdump -s srcip/bytes ranks), 5-tuples and multi-field keys counted from tshark's fields, and
the names people read (tcp/80 http)."""
import collections
import ipaddress
import re
import subprocess

import pytest

import mapi
from helpers import CORPUS, generated, inputs, need_tool, needs_corpus
from helpers.cli import run_cli

FILES = inputs([generated("mixed.pcap"), generated("tcp4.pcap"), "PcapPlusPlus__example.pcap", "PcapPlusPlus__4KHttpRequests.pcap",
         "PcapPlusPlus__DnsPackets.pcap", "PcapPlusPlus__tls2.pcap"], base="pcap")


def top(path, *specs):
    dev = mapi.create_offline_device(str(path))
    try:
        fd = mapi.create_flow(dev)
        fids = [mapi.apply_function(fd, "TOP", *a, **kw) for a, kw in specs]
        mapi.connect(fd)
        mapi.start_offline_device(dev)
        mapi.wait_offline_device(dev)
        return [mapi.read_results(fd, f).value for f in fids]
    finally:
        mapi.delete_offline_device(dev)


def tshark(path, *args):
    return subprocess.run([need_tool("tshark"), "-n", "-r", str(path), "-o", "ip.defragment:FALSE",
                           *args], capture_output=True, text=True, timeout=300).stdout


def fields(path):
    """[(frame.len, proto, src, dst, sport, dport)] of IP packets (outer header; for IPv6 the
    last next-header, the transport); ports only when that transport is TCP or UDP (an ICMP
    error quotes a header tshark would report too)."""
    out = tshark(path, "-T", "fields", "-E", "occurrence=a", "-e", "frame.len", "-e", "ip.proto",
                 "-e", "ip.src", "-e", "ip.dst", "-e", "ipv6.nxt", "-e", "ipv6.src", "-e", "ipv6.dst",
                 "-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "udp.srcport", "-e", "udp.dstport")
    rows = []
    for line in out.splitlines():
        cols = [c.split(",") for c in (line.split("\t") + [""] * 11)[:11]]
        first = lambda i: cols[i][0]  # noqa: E731
        ln, v4, v6 = int(first(0)), first(2), first(5)
        if not v4 and not v6:
            continue
        if v4 and (not v6 or line.index(v4) < line.index(v6)):
            proto, src, dst = int(first(1)), v4, first(3)
        else:
            proto, src, dst = int(cols[4][-1]), v6, first(6)
        sport, dport = (first(7), first(8)) if proto == 6 else \
            (first(9), first(10)) if proto == 17 else ("", "")
        rows.append((ln, proto, src, dst, int(sport or 0), int(dport or 0)))
    return rows


def ranked(counter, x, by="packets"):
    def key(item):
        k, (p, b) = item
        first, second = (b, p) if by == "bytes" else (p, b)
        return (-first, -second, _key_order(k))
    return [(k, p, b) for k, (p, b) in sorted(counter.items(), key=key)[:x]]


def _key_order(k):
    if isinstance(k, tuple):
        return tuple(_key_order(x) for x in k)
    if isinstance(k, str):
        a = ipaddress.ip_address(k)
        return (a.version, a.packed)
    return k.to_bytes(2, "big")


def count(rows, keyf):
    c = collections.defaultdict(lambda: [0, 0])
    for r in rows:
        k = keyf(r)
        c[k][0] += 1
        c[k][1] += r[0]
    return {k: tuple(v) for k, v in c.items()}


@pytest.mark.parametrize("name", FILES)
def test_conversations_equal_tshark_conv(name):
    path = CORPUS / "pcap" / name
    (conv,) = top(path, ((1000, "conv"), {}))
    # tshark -z conv,ip / conv,ipv6: total frames per address pair (bytes rounded to kB)
    frames = {}
    for line in tshark(path, "-q", "-z", "conv,ip", "-z", "conv,ipv6").splitlines():
        m = re.match(r"(\S+)\s+<->\s+(\S+)\s+.*?(\d+)\s+\S+\s+(?:bytes|kB|MB)\s+[\d.]+\s+[\d.]+\s*$", line)
        if m:
            a, b = sorted((m.group(1), m.group(2)), key=lambda s: ipaddress.ip_address(s).packed)
            frames[(a, b)] = int(m.group(3))
    assert frames
    assert {e.value: e.packets for e in conv} == frames
    # bytes exactly, and the ranking, from tshark's fields
    rows = fields(path)
    pair = lambda r: tuple(sorted((r[2], r[3]), key=lambda s: ipaddress.ip_address(s).packed))  # noqa: E731
    assert conv == ranked(count(rows, pair), 1000)
    assert all(e.text == "%s <-> %s" % e.value for e in conv)


@pytest.mark.parametrize("name", FILES)
def test_ranking_by_bytes_equals_tshark_endpoints(name):
    path = CORPUS / "pcap" / name
    by_bytes, by_packets = top(path, ((10, "ip.src"), {"by": "bytes"}), ((10, "ip.src"), {}))
    tx = {}
    for line in tshark(path, "-q", "-z", "endpoints,ip").splitlines():
        words = line.split()
        if len(words) == 7 and words[1].isdigit():
            tx[words[0]] = (int(words[3]), int(words[4]))
    tx = {k: v for k, v in tx.items() if v[0]}
    assert by_bytes == ranked(tx, 10, by="bytes")
    assert by_packets == ranked(tx, 10)
    assert [e.bytes for e in by_bytes] == sorted((e.bytes for e in by_bytes), reverse=True)


@pytest.mark.parametrize("name", FILES)
def test_5tuple_and_multi_field_keys_equal_tshark_fields(name):
    path = CORPUS / "pcap" / name
    rows = fields(path)
    five, five_b, src_dport, proto = top(path, ((50, "5tuple"), {}), ((50, "5tuple"), {"by": "bytes"}),
                                         ((20, "ip.src,tcp.dport"), {}), ((5, "ip.proto"), {}))
    assert five == ranked(count(rows, lambda r: (r[1], r[2], r[4], r[3], r[5])), 50)
    assert five_b == ranked(count(rows, lambda r: (r[1], r[2], r[4], r[3], r[5])), 50, by="bytes")
    tcp = [r for r in rows if r[1] == 6 and ":" not in r[2]]      # ip.src: IPv4 only
    assert src_dport == ranked(count(tcp, lambda r: (r[2], r[5])), 20)
    assert proto == ranked(count(rows, lambda r: r[1]), 5)


@needs_corpus
def test_names_for_people():
    path = CORPUS / "pcap" / "PcapPlusPlus__example.pcap"
    dport, proto, five, udp = top(path, ((1, "tcp.dport"), {}), ((2, "ip.proto"), {}),
                                  ((1, "5tuple"), {"by": "bytes"}), ((1, "ip.src,udp.dport"), {}))
    assert (dport[0].value, dport[0].text) == (80, "tcp/80 http")
    assert [e.text for e in proto] == ["tcp", "udp"]
    assert five[0].text == "tcp %s:%d -> %s:%d http" % five[0].value[1:]
    assert udp[0].text == "%s  udp/53 domain" % udp[0].value[0]
    code, out, err = run_cli("run", "-r", path, 'TOP(1, "conv")', 'TOP(1, "tcp.dport")')
    assert code == 0, err
    assert "1. 10.0.0.6 <-> 212.199.202.9  packets=3700  bytes=3322494" in out
    assert "1. tcp/80 http  packets=1727  bytes=325521" in out


@pytest.mark.parametrize("field, words", [
    ("ip.srx", ["unknown field 'ip.srx'", "5tuple"]),
    ("conv,addr.src", ["too large", "at most 6 fields and 40 bytes"]),
    ("", ["give a field"]),
])
def test_bad_keys(field, words):
    dev = mapi.create_offline_device(str(generated("mixed.pcap")))
    try:
        fd = mapi.create_flow(dev)
        with pytest.raises(mapi.MapiError) as err:
            mapi.apply_function(fd, "TOP", 3, field)
        for w in words:
            assert w in str(err.value)
        with pytest.raises(mapi.MapiError) as err:
            mapi.apply_function(fd, "TOP", 3, "ip.src", by="flows")
        assert "'packets', 'bytes'" in str(err.value)
    finally:
        mapi.delete_offline_device(dev)
