"""TOP against counts computed independently: tshark -T fields for IPv4 addresses and ports,
dpkt over tcpdump's output for the rest."""
import collections
import ipaddress
import struct
import subprocess

import dpkt
import pytest

import mapi
from helpers import CORPUS, generated, inputs, linktype_of, need_tool, sample, tcpdump_records
from helpers.decode import ip_layer

PCAP = CORPUS / "pcap"
TSHARK_FILES = [generated("mixed.pcap"), generated("slow.pcap"),
                "PcapPlusPlus__4KHttpRequests.pcap", "PcapPlusPlus__example.pcap",
                "PcapPlusPlus__tls2.pcap", "PcapPlusPlus__DnsPackets.pcap"]
TSHARK_FIELDS = ["ip.src", "ip.dst", "tcp.srcport", "tcp.dstport", "udp.srcport", "udp.dstport"]


def run_top(path, specs, expr=""):
    """specs: [(x, field)] -> ([entries lists], [infos])."""
    dev = mapi.create_offline_device(str(path))
    try:
        fd = mapi.create_flow(dev)
        if expr:
            mapi.apply_function(fd, "BPF_FILTER", expr)
        fids = [mapi.apply_function(fd, "TOP", x, field) for x, field in specs]
        mapi.connect(fd)
        mapi.start_offline_device(dev)
        mapi.wait_offline_device(dev)
        return ([mapi.read_results(fd, f).value for f in fids],
                [mapi.get_function_info(fd, f) for f in fids])
    finally:
        mapi.delete_offline_device(dev)


def ranking(counter_pkts, counter_bytes, x):
    def key(v):
        if isinstance(v, str):
            a = ipaddress.ip_address(v)
            return (-counter_pkts[v], -counter_bytes[v], a.version, a.packed)
        return (-counter_pkts[v], -counter_bytes[v], 0, v)
    return [(v, counter_pkts[v], counter_bytes[v]) for v in sorted(counter_pkts, key=key)[:x]]


def tshark_rows(path):
    cmd = [need_tool("tshark"), "-r", str(path), "-o", "ip.defragment:FALSE",
           "-o", "ipv6.defragment:FALSE", "-T", "fields", "-E", "occurrence=f", "-E", "separator=/t",
           "-e", "frame.len", "-e", "ip.proto", "-e", "ipv6.nxt"] + \
          sum((["-e", f] for f in TSHARK_FIELDS), [])
    out = subprocess.run(cmd, capture_output=True, timeout=300, text=True).stdout
    return [line.split("\t") for line in out.splitlines()]


@pytest.mark.parametrize("name", inputs(TSHARK_FILES, base="pcap"))
def test_ipv4_addresses_and_ports_equal_tshark(name):
    path = PCAP / name
    rows = tshark_rows(path)
    specs = [(10, "ip.src"), (10, "ip.dst"), (10, "tcp.sport"), (10, "tcp.dport"),
             (10, "udp.sport"), (10, "udp.dport"), (100000, "ip.src")]
    got, infos = run_top(path, specs)
    for (x, field), entries, info in zip(specs, got, infos):
        col = 3 + TSHARK_FIELDS.index(field.replace("sport", "srcport").replace("dport", "dstport"))
        want_proto = "6" if field.startswith("tcp") else "17" if field.startswith("udp") else None
        pk, by = collections.Counter(), collections.Counter()
        for r in rows:
            v = r[col]
            if not v:
                continue
            # ports only when the outer transport is that protocol (not an ICMP error's quote)
            if want_proto and want_proto not in (r[1], r[2]):
                continue
            v = v if field.startswith("ip.") else int(v)
            pk[v] += 1
            by[v] += int(r[0])
        assert entries == ranking(pk, by, x), field
        assert info["counted"] == sum(pk.values()) and info["distinct"] == len(pk)


def frame_fields(linktype, frame):
    """The outer IP header's fields, decoded with dpkt; None if not IP."""
    ip = ip_layer(linktype, frame)
    if isinstance(ip, dpkt.ip.IP):
        fam, later, proto = 4, ip.offset != 0, ip.p
    elif isinstance(ip, dpkt.ip6.IP6):
        exts = ip.all_extension_headers
        fam, proto = 6, ip.p
        later = any(isinstance(e, dpkt.ip6.IP6FragmentHeader) and e.frag_off for e in exts)
    else:
        return None
    sport = dport = None
    l4 = ip.data
    if proto in (6, 17) and not later:
        if isinstance(l4, (dpkt.tcp.TCP, dpkt.udp.UDP)):
            sport, dport = l4.sport, l4.dport
        elif isinstance(l4, bytes) and len(l4) >= 4:
            sport, dport = struct.unpack("!HH", l4[:4])
    src = str(ipaddress.ip_address(ip.src))
    dst = str(ipaddress.ip_address(ip.dst))
    return {"ip.src": src if fam == 4 else None, "ip.dst": dst if fam == 4 else None,
            "ipv6.src": src if fam == 6 else None, "ipv6.dst": dst if fam == 6 else None,
            "addr.src": src, "addr.dst": dst, "ip.proto": proto,
            "tcp.sport": sport if proto == 6 else None, "tcp.dport": dport if proto == 6 else None,
            "udp.sport": sport if proto == 17 else None, "udp.dport": dport if proto == 17 else None}


DPKT_FILES = [generated("mixed.pcap"), generated("mixed-ns.pcap"), "pcap/PcapPlusPlus__tls2.pcap", "pcap/PcapPlusPlus__ip6_fragments.pcap",
              "pcap/PcapPlusPlus__ip4_fragments.pcap", "pcap/PcapPlusPlus__VlanPackets.pcap",
              "pcap/zeek__pppoe-over-qinq.pcap", "pcap/libpcap__ipv6_ext_headers.pcap",
              "pcap/PcapPlusPlus__raw_ip.pcap", "tcpdump/pcap/resp_1_benchmark.pcap",
              "pcap/zeek__ipv6-reassembly-state-leak.pcap", "pcap/zeek__tunnels__gre-within-gre.pcap"]
ALL_FIELDS = ["ip.src", "ip.dst", "ipv6.src", "ipv6.dst", "addr.src", "addr.dst", "ip.proto",
              "tcp.sport", "tcp.dport", "udp.sport", "udp.dport"]


@pytest.mark.parametrize("name", inputs(DPKT_FILES))
def test_every_field_equals_dpkt_counts(name):
    path = CORPUS / name
    lt = linktype_of(path)
    recs, err = tcpdump_records(path)
    assert recs is not None, err
    decoded = [(frame_fields(lt, data), wl) for _, wl, data in recs]
    got, infos = run_top(path, [(50, f) for f in ALL_FIELDS])
    for field, entries, info in zip(ALL_FIELDS, got, infos):
        pk, by = collections.Counter(), collections.Counter()
        for d, wirelen in decoded:
            if d is not None and d[field] is not None:
                pk[d[field]] += 1
                by[d[field]] += wirelen
        assert entries == ranking(pk, by, 50), field
        assert info["counted"] == sum(pk.values()), field


def test_after_a_filter_and_ties_are_deterministic():
    path = sample("pcap/PcapPlusPlus__DnsPackets.pcap")
    a, _ = run_top(path, [(3, "udp.sport"), (5, "ip.dst")], "udp dst port 53")
    b, _ = run_top(path, [(3, "udp.sport"), (5, "ip.dst")], "udp dst port 53")
    assert a == b
    recs, _ = tcpdump_records(path, "udp dst port 53")
    pk, by = collections.Counter(), collections.Counter()
    for _, wl, data in recs:
        ip = dpkt.ethernet.Ethernet(data).data
        pk[ip.data.sport] += 1
        by[ip.data.sport] += wl
    assert a[0] == ranking(pk, by, 3)


def test_max_values_overflow_is_counted():
    path = sample("pcap/PcapPlusPlus__DnsPackets.pcap")
    dev = mapi.create_offline_device(str(path))
    try:
        fd = mapi.create_flow(dev)
        fid = mapi.apply_function(fd, "TOP", 5, "udp.sport", 4)
        mapi.connect(fd)
        mapi.start_offline_device(dev)
        mapi.wait_offline_device(dev)
        info = mapi.get_function_info(fd, fid)
        assert info["distinct"] == 4 and info["overflow"] > 0
        assert info["counted"] == sum(e.packets for e in mapi.read_results(fd, fid).value) + info["overflow"]
    finally:
        mapi.delete_offline_device(dev)


@pytest.mark.parametrize("args, bad", [((5, "ip.colour"), "field"), ((0, "ip.src"), "x"),
                                       ((5, "ip.src", 0), "max_values")])
def test_bad_arguments(args, bad):
    dev = mapi.create_offline_device(str(sample("pcap/PcapPlusPlus__DnsPackets.pcap")))
    try:
        fd = mapi.create_flow(dev)
        with pytest.raises(mapi.MapiError) as e:
            mapi.apply_function(fd, "TOP", *args)
        assert e.value.code == 1005 and e.value.where["argument"] == bad
    finally:
        mapi.delete_offline_device(dev)
