"""RECORD_FILTER speaks nfdump's filter language: the records it selects equal nfdump's selection
(records, packets, bytes) for the same expression, on the corpus's export captures (nfcapd fed
the same messages) and on softflowd's export of a generated trace; the rest of the language and
its errors on hand-made records; RECORD_* on packets is an error naming the netflow backend."""
import socket
import struct

import pytest

import mapi
from mapi._engine import ffi, lib
from helpers import generated, need_tool, parametrize_from_corpus
from helpers.flowtools import UdpSink, softflowd
from helpers.nfexports import (captured, corpus_groups, nfcapd_of, nfdump_quirks, nfdump_select,
                               udp_payloads)

# compared on every group
GENERAL = [
    "any", "proto tcp", "proto udp", "proto icmp or proto icmp6", "proto tcp and dst port 443",
    "port 53", "src port 53", "dst port 443 or dst port 80", "not proto tcp",
    "src net 10.0.0.0/8", "ip 10.0.0.6", "src ip 212.199.202.9",
    "bytes > 1000", "bytes > 10k", "packets < 5", "packets >= 10 and proto udp", "flags S",
    "flags SA", "flags R", "flags S and not flags AFRPU", "not flags A", "port in [80 443 53]",
    "ip in [10.0.0.6 212.199.202.0/24]", "(proto tcp or proto udp) and not port 80",
    "src port > 1024 and dst port < 1024", "dst port 179", "src port 179 or dst port 179",
    "in if 1", "out if 0", "if 155", "src mask 24", "dst mask 30", "tos 0", "tos 192", "dst tos 0",
    "bpp > 500", "icmp-type 0", "next ip 0.0.0.0", "next ip 138.187.10.46", "src vlan 0",
    "dst port gt 1023", "packets eq 1", "in packets > 1", "bytes < 100", "dst port in [53, 179]",
]
FAMILY = ["ipv6", "ipv4 and proto udp", "net 2001:db8::/32", "src net 2001:1700::/24",
          "dst net 192.0.2.0/24"]
TIMES = ["duration > 1000", "duration < 10", "pps > 10", "bps > 100k"]


def ours(path, exprs, **options):
    """(records, packets, bytes) per expression: RECORD_FILTER + RECORD_COUNTER flows on an
    offline collector device."""
    dev = mapi.create_offline_device(str(path), backend="netflow", **options)
    flows = []
    for e in exprs:
        fd = mapi.create_flow(dev)
        mapi.apply_function(fd, "RECORD_FILTER", e)
        flows.append((fd, mapi.apply_function(fd, "RECORD_COUNTER")))
        mapi.connect(fd)
    mapi.start_offline_device(dev)
    mapi.wait_offline_device(dev)
    out = []
    for fd, fid in flows:
        c = mapi.read_results(fd, fid).value
        out.append((c["records"], c["packets"], c["bytes"]))
    mapi.delete_offline_device(dev)
    return out


def _comparable_groups():
    # akvorado:generic-v9: nfdump multiplies counters by the announced sampling interval before
    # filtering (RECORD_COUNTER has scaled_packets/scaled_bytes for that); datalink and
    # ethernet-over-mpls: nfdump lists records without any flow key or counter that its own
    # -I totals do not count (the collector counts them as non_flow_records)
    skip = {"akvorado:generic-v9", "akvorado:datalink", "akvorado:ethernet-over-mpls-with-control-word"}
    return sorted(g for g in corpus_groups() if g not in skip)


def compare(directory, capture, exprs):
    got = ours(capture, exprs, max_pending_bytes=0)     # like nfcapd: nothing waits for a template
    return [(e, nfdump_select(directory, e), g) for e, g in zip(exprs, got)
            if nfdump_select(directory, e) != g]


@parametrize_from_corpus("group", _comparable_groups)
def test_filters_equal_nfdump_on_corpus_exports(group, tmp_path):
    need_tool("nfcapd")
    messages = udp_payloads(corpus_groups()[group])
    directory = nfcapd_of(messages, tmp_path / "nfcapd")
    quirks = nfdump_quirks(directory)
    exprs = GENERAL + (FAMILY if "family" not in quirks else []) + (TIMES if "times" not in quirks else [])
    assert compare(directory, captured(messages, tmp_path / "exports.pcap"), exprs) == []
    assert nfdump_select(directory, "any")[0] > 0


def test_filters_equal_nfdump_on_softflowd_export_of_generated_traffic(tmp_path):
    """softflowd meters a generated trace; its IPFIX messages go to nfcapd and, as a capture,
    to the collector."""
    sink = UdpSink()
    softflowd(generated("mixed.pcap"), sink.port, 10, {})
    messages = sink.messages()
    assert messages
    directory = nfcapd_of(messages, tmp_path / "nfcapd")
    exprs = GENERAL + FAMILY + ["src net 192.0.2.0/24", "dst port 80 and flags S", "ipv6 and proto udp",
                                "net 2001:db8::/32 and port 53", "bytes > 1k and packets < 20"]
    assert compare(directory, captured(messages, tmp_path / "exports.pcap"), exprs) == []
    assert nfdump_select(directory, "proto tcp")[0] > 10 and nfdump_select(directory, "ipv6")[0] > 0


# --- the language on hand-made records -----------------------------------------------------------
def rec(src="10.1.2.3", dst="192.168.0.1", sport=1234, dport=443, proto=6, packets=10, nbytes=5000,
        extras=b"", **fields):
    r = ffi.new("mapi_flowrec *")
    fam = 6 if ":" in src else 4
    r.family, r.proto, r.sport, r.dport, r.packets, r.bytes = fam, proto, sport, dport, packets, nbytes
    ffi.memmove(r.src, socket.inet_pton(socket.AF_INET6 if fam == 6 else socket.AF_INET, src), 16 if fam == 6 else 4)
    ffi.memmove(r.dst, socket.inet_pton(socket.AF_INET6 if fam == 6 else socket.AF_INET, dst), 16 if fam == 6 else 4)
    for k, v in fields.items():
        if isinstance(v, bytes):
            ffi.memmove(getattr(r, k), v, len(v))
        else:
            setattr(r, k, v)
    raw = bytes(ffi.buffer(r)) + extras + bytes(-len(extras) % 8)
    return raw


def element(ie, value):
    return struct.pack(">HH", ie, len(value)) + value


RECORDS = [
    rec(src_as=65000, dst_as=3320, tcp_flags=0x02, src_mac=bytes.fromhex("001b213c9df8"),
        nat_family=4, nat_src=socket.inet_aton("100.64.1.2"), nat_sport=40000, mpls_label1=(20005 << 4) | 1,
        extras=element(57, bytes.fromhex("aabbccddeeff")) + element(129, struct.pack(">I", 64512))),
    rec("10.9.9.9", "8.8.8.8", 5353, 53, 17, 1, 80, dst_as=65000, tcp_flags=0, ingress_vrf=7,
        out_packets=9, extras=element(31, struct.pack(">I", 5)) + element(0x8000 | 52, b"\x40")),
    rec("2001:db8::1", "2001:db8::2", 80, 40000, 6, 3, 20000000, tcp_flags=0x12, input=3, output=5),
]


def select(expr):
    from scampi.plugins.stdfuncs.record_filter import compile_expr
    prog, n = compile_expr(expr)
    st = ffi.new("mapi_rf_state *", {"prog": prog, "n": n})
    return [i for i, raw in enumerate(RECORDS) if lib.mapi_rf_eval_len(st, ffi.from_buffer(raw), len(raw))]


@pytest.mark.parametrize("expr, expected", [
    ("as 65000", [0, 1]), ("src as 65000", [0]), ("dst as > 4000", [1]), ("as in [3320 1]", [0]),
    ("prev as 64512", [0]), ("in src mac 00:1b:21:3c:9d:f8", [0]), ("out dst mac aa:bb:cc:dd:ee:ff", [0]),
    ("mac aa:bb:cc:dd:ee:ff", [0]), ("src nip 100.64.1.2", [0]), ("nport 40000", [0]),
    ("mpls label1 20005", [0]), ("ingressVRFID = 7", [1]), ("ingress vrf 7", [1]),
    ("reverse.packetDeltaCount > 5", [1]), ("out packets > 5", [1]), ("flowLabelIPv6 = 5", [1]),
    ("reverse.minimumTTL = 64", [1]), ("minimumTTL = 64", []), ("not flowLabelIPv6 = 5", [0, 2]), ("flags S", [0, 2]),
    ("flags SA", [2]), ("not flags A", [0, 1]), ("flags S and not flags A", [0]),
    ("src or dst port 80", [2]), ("src and dst port 80", []), ("ipv6", [2]), ("inet", [0, 1]),
    ("net 2001:db8::/32", [2]), ("in if 3 and out if 5", [2]), ("bytes > 1m", [2]),
    ("packets > 1 and packets < 10", [2]), ("proto=6 and dport=443", [0]), ("src in 10.0.0.0/8", [0, 1]),
    ("host != 10.1.2.3", [1, 2]), ("port != 443", [1, 2]), ("tcp_flags & 0x10", [2]),
    ("sourceMacAddress = 00:1b:21:3c:9d:f8", [0]), ("postNATSourceIPv4Address in 100.64.0.0/10", [0]),
    ("ip.proto = udp", [1]), ("# a comment\n port 53", [1]), ("any", [0, 1, 2]),
    ("net 192.168 255.255.0.0", [0]), ("src net 10/8", [0, 1]),
])
def test_filter_language(expr, expected):
    assert select(expr) == expected


@pytest.mark.parametrize("expr, where", [
    ("", 0), ("proto", 5), ("proto tcp and", 13), ("nosuch 1", 0), ("src net banana", 8),
    ("(proto tcp", 10), ("proto tcp )", 10), ("dport in 10.0.0.0/8", 9), ("src > 10.0.0.1", 6),
    ("flags Q", 6), ("port in [80", 11), ("mpls label2 3", 5), ("flowStartSeconds > 1", 0),
])
def test_filter_errors_name_the_offset(expr, where):
    from scampi.plugins.stdfuncs.record_filter import compile_expr
    with pytest.raises(mapi.MapiError) as e:
        compile_expr(expr)
    assert e.value.code == mapi.EFILTER
    if "flowStartSeconds" in expr:
        assert "first" in str(e.value)
    else:
        assert "offset %d" % where in str(e.value), str(e.value)


# --- RECORD_* on packets ---------------------------------------------------------------------------
@pytest.mark.parametrize("fn", [("RECORD_FILTER", "proto tcp"), ("RECORD_COUNTER",),
                                ("RECORD_TOP", 3, "addr.src")])
def test_record_functions_on_packets_are_an_error(fn):
    dev = mapi.create_offline_device(str(generated("mixed.pcap")))
    try:
        fd = mapi.create_flow(dev)
        with pytest.raises(mapi.MapiError) as e:
            mapi.apply_function(fd, *fn)
        assert "netflow" in str(e.value) and "flow records" in str(e.value)
        # after FLOW_REPORT the packets are flow records
        fd2 = mapi.create_flow(dev)
        mapi.apply_function(fd2, "FLOW_REPORT", "ipfix", "")
        mapi.apply_function(fd2, *fn)
    finally:
        mapi.delete_offline_device(dev)


def test_cli_names_the_netflow_backend():
    from helpers.cli import run_cli
    code, out, err = run_cli("run", "-r", generated("mixed.pcap"), "RECORD_COUNTER")
    assert code == 2 and "--backend netflow" in err, err
