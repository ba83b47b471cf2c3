"""FLOW_REPORT: flow metering and IPFIX / NetFlow v9 / v5 export, against softflowd (the same
flows from the same traces), nfcapd/nfdump and tshark (decoding every message), tshark's IP
lengths (bytes), the project's own collector (round trip) and hand-computed timeouts."""
import collections
import re
import struct
import subprocess

import dpkt
import pytest

import mapi
from helpers import CORPUS, generated, inputs, name_of, need_tool, needs_corpus, replay
from helpers.flowtools import Nfcapd, UdpSink, export_pcap, softflowd, tshark_cflow
from helpers.pktbuild import assert_rejected, ether, tcp4, udp4, write_pcap

PCAP = CORPUS / "pcap"
FOREVER = dict(idle_timeout="24h", active_timeout="24h", tcp_end_timeout="24h")
SOFTFLOWD_FOREVER = {k: "1d" for k in ("maxlife", "general", "tcp", "udp", "icmp", "tcp.rst", "tcp.fin")}
# generated traces first (mixed traffic; the same with a fifth of it in IP fragments), then the
# corpus's
TRACES = [generated("mixed.pcap"), generated("fragments.pcap"), "PcapPlusPlus__example.pcap", "PcapPlusPlus__tls2.pcap", "PcapPlusPlus__4KHttpRequests.pcap",
          "zeek__ssh__ssh.pcap", "zeek__dns-edns-ecs.pcap", "PcapPlusPlus__ip4_fragments.pcap"]
VERSIONS = {"ipfix": 10, "v9": 9, "v5": 5}


def mixed():
    """Generated mixed traffic: as many packets as the corpus's PcapPlusPlus example.pcap."""
    return generated("mixed.pcap")


def tshark_ip_bytes(path):
    """{(proto, src, sport, dst, dport): IP bytes} from tshark (fragments not reassembled)."""
    out = subprocess.run([need_tool("tshark"), "-r", str(path), "-o", "ip.defragment:FALSE",
                          "-o", "ipv6.defragment:FALSE", "-T", "fields", "-E", "separator=|",
                          "-e", "ip.proto", "-e", "ipv6.nxt", "-e", "ip.src", "-e", "ipv6.src",
                          "-e", "ip.dst", "-e", "ipv6.dst", "-e", "tcp.srcport", "-e", "udp.srcport",
                          "-e", "tcp.dstport", "-e", "udp.dstport", "-e", "ip.len", "-e", "ipv6.plen",
                          "-e", "icmp.type", "-e", "icmp.code"],
                         capture_output=True, text=True, timeout=300).stdout
    sums = collections.Counter()
    for line in out.splitlines():
        f = [x.split(",")[0] for x in line.split("|")]
        if not (f[2] or f[3]):
            continue
        proto = int(f[0] or f[1])
        sport = int(f[6] or f[7] or 0)
        dport = int(f[8] or f[9] or 0)
        if proto == 1 and f[12]:
            sport, dport = 0, int(f[12]) * 256 + int(f[13] or 0)
        length = int(f[10]) if f[10] else int(f[11]) + 40
        sums[(proto, f[2] or f[3], sport, f[4] or f[5], dport)] += length
    return sums


@pytest.mark.parametrize("fmt", list(VERSIONS))
@pytest.mark.parametrize("path", inputs(TRACES, base="pcap"))
def test_flows_equal_softflowd_and_bytes_equal_ip_lengths(path, fmt, tmp_path):
    """With timeouts longer than the trace, both meters end every flow at the end of the trace
    (softflowd runs its timeouts on the wall clock when it reads a file, so shorter ones are
    tested against hand-computed flows below).  Flows and packets equal softflowd's, as nfdump
    reads both exports.  Bytes are IP bytes (NetFlow's definition); softflowd counts from the end
    of the link header to the end of the frame, Ethernet padding included, so bytes are checked
    against the IP lengths tshark reads instead.
    Where the definitions differ: IPv6 fragments.  softflowd keys them by the IPv6 header's next
    header (the Fragment header; nfdump shows protocol 0) without ports, so a fragmented
    datagram's packets form flows apart from the connection's; FLOW_REPORT keys them by the
    transport protocol (IPFIX protocolIdentifier), the first fragment with its ports.  For them
    (and tshark, which without reassembly sees no transport header) the packets and bytes per
    address pair are compared instead."""
    ref_cap = Nfcapd(tmp_path / "softflowd")
    softflowd(path, ref_cap.port, VERSIONS[fmt], SOFTFLOWD_FOREVER)
    ref = ref_cap.records()
    ours_cap = Nfcapd(tmp_path / "ours")
    r = replay(path, [("FLOW_REPORT", (fmt, "udp:127.0.0.1:%d" % ours_cap.port), FOREVER)], buffer=False)
    ours = ours_cap.records()
    res = r.results[0].value
    stats = re.search(r"Sequence Errors: (\d+), Bad Packets: (\d+)", ours_cap.log)
    assert stats and stats.group(2) == "0", ours_cap.log
    # RFC 7011 3.1: options data records count in the IPFIX sequence (tshark checks that, in
    # test_tshark_decodes_every_message); nfcapd 1.7 does not count them, so it sees a jump
    # after each message that carried options data
    assert int(stats.group(1)) <= (res["templates"] // 3 if fmt == "ipfix" else 0), ours_cap.log
    assert sum(ours.values()) == res["exported"] == res["records"] - res["not_exportable"]
    assert res["write_errors"] == 0 and res["exported"] > 0
    ip_bytes = tshark_ip_bytes(path)
    v6_fragments = name_of(path) == "fragments.pcap"
    if v6_fragments:                     # per address pair (see above), then the rest exactly
        pairs = lambda rows, at: sum((collections.Counter({(k[1], k[3]): k[at] * n}) for k, n in rows.items()
                                      if ":" in k[1]), collections.Counter())
        assert pairs(ours, 5) == pairs(ref, 5)
        if fmt != "v5":                  # (v5 carries IPv4 only)
            assert pairs(ours, 6) == pairs({k + (b,): 1 for k, b in ip_bytes.items()}, 5)
            assert len(pairs(ours, 5)) > 10
        ours, ref = ({k: n for k, n in rows.items() if ":" not in k[1]} for rows in (ours, ref))
    packets = lambda rows: collections.Counter({k[:6]: n for k, n in rows.items()})
    assert packets(ours) == packets(ref)
    for key, n in ours.items():
        assert n == 1 and key[6] == ip_bytes[key[:5]], key
    if fmt == "v5":                      # IPv6 flows (tshark's keys: fragments differ, above)
        if v6_fragments:
            assert res["not_exportable"] > 10
        else:
            assert res["not_exportable"] == sum(1 for k in ip_bytes if ":" in k[1])


@pytest.mark.parametrize("fmt", list(VERSIONS))
@pytest.mark.parametrize("path", inputs([generated("mixed.pcap"), "PcapPlusPlus__tls2.pcap"], base="pcap"))
def test_tshark_decodes_every_message(path, fmt, tmp_path):
    sink = UdpSink()
    r = replay(path, [("FLOW_REPORT", (fmt, "udp:127.0.0.1:%d" % sink.port), dict(FOREVER, mtu=1400))],
               buffer=False)
    messages = sink.messages()
    res = r.results[0].value
    assert len(messages) == res["messages"] and max(map(len, messages)) <= 1400
    flows, problems, text = tshark_cflow(export_pcap(tmp_path / "export.pcap", messages), 4739)
    assert problems == []
    options = 0 if fmt == "v5" else text.count("Ignored Packets:") + text.count("PacketsExp:") // 2
    assert flows == res["exported"] + (0 if fmt == "v5" else text.count("Sampling interval:"))
    assert options >= 0


def collector_records(pcap):
    """Our own NetFlow collector backend's records of the export datagrams in `pcap`."""
    dev = mapi.create_offline_device(str(pcap), backend="netflow")
    try:
        fd = mapi.create_flow(dev)
        fid = mapi.apply_function(fd, "EXPIRED_FLOWS")
        mapi.connect(fd)
        mapi.start_offline_device(dev)
        mapi.wait_offline_device(dev, 60)
        return mapi.read_results(fd, fid).value
    finally:
        mapi.delete_offline_device(dev)


KEYS = ("src", "dst", "sport", "dport", "proto", "packets", "bytes", "out_packets", "out_bytes")


@pytest.mark.parametrize("fmt,key", [("ipfix", "5tuple"), ("ipfix", "biflow"), ("v9", "5tuple"),
                                     ("v9", "biflow"), ("v5", "5tuple")])
def test_records_round_trip_through_the_collector(fmt, key, tmp_path):
    path = mixed()
    sink = UdpSink()
    r = replay(path, [("FLOW_REPORT", (fmt, "udp:127.0.0.1:%d" % sink.port), dict(FOREVER, key=key)),
                      ("EXPIRED_FLOWS", (), {})], buffer=False)
    sent = r.results[1].value
    assert len(sent) == r.results[0].value["records"]
    if fmt == "v5":                                 # v5 carries IPv4 only
        sent = [x for x in sent if x.src.version == 4]
        assert len(sent) == r.results[0].value["records"] - r.results[0].value["not_exportable"]
    got = collector_records(export_pcap(tmp_path / "export.pcap", sink.messages()))
    view = lambda recs: collections.Counter(tuple(getattr(x, k) for k in KEYS) for x in recs)
    assert view(got) == view(sent)
    stamps = lambda recs: sorted((x.first_ns // 10 ** 6, x.last_ns // 10 ** 6) for x in recs)
    assert stamps(got) == stamps(sent)              # ms: all three formats carry ms


def test_biflow_is_both_uniflows():
    path = mixed()
    uni = replay(path, [("FLOW_REPORT", (), FOREVER), ("EXPIRED_FLOWS", (), {})], buffer=False).results[1].value
    bi = replay(path, [("FLOW_REPORT", (), dict(FOREVER, key="biflow")), ("EXPIRED_FLOWS", (), {})],
                buffer=False).results[1].value
    one_way = {(f.src, f.sport, f.dst, f.dport, f.proto): f for f in uni}
    assert sum(f.packets + f.out_packets for f in bi) == sum(f.packets for f in uni) == 4631
    for f in bi:
        fwd = one_way.pop((f.src, f.sport, f.dst, f.dport, f.proto))
        assert (f.packets, f.bytes) == (fwd.packets, fwd.bytes)
        rev = one_way.pop((f.dst, f.dport, f.src, f.sport, f.proto), None)
        assert (f.out_packets, f.out_bytes) == ((rev.packets, rev.bytes) if rev else (0, 0))
        assert f.first_ns <= fwd.first_ns and (rev is None or rev.first_ns >= f.first_ns)
    assert not one_way


def test_configured_key_aggregates():
    path = mixed()
    uni = replay(path, [("FLOW_REPORT", (), FOREVER), ("EXPIRED_FLOWS", (), {})], buffer=False).results[1].value
    pairs = replay(path, [("FLOW_REPORT", (), dict(FOREVER, key="src,dst")), ("EXPIRED_FLOWS", (), {})],
                   buffer=False).results[1].value
    want = collections.Counter()
    for f in uni:
        want[(f.src, f.dst)] += f.bytes
    assert {(f.src, f.dst): f.bytes for f in pairs} == want
    assert all(f.sport == f.dport == f.proto == 0 for f in pairs)


def timed_trace(path, packets):
    """packets: [(t seconds, frame)]"""
    return write_pcap(path, [(1700000000.0 + t, f) for t, f in packets])


def flows_of(path, **kw):
    r = replay(path, [("FLOW_REPORT", (), kw), ("EXPIRED_FLOWS", (), {})], buffer=False)
    return r.results[0].value, [(f.sport, f.packets, round(f.first_ns / 1e9 - 1700000000, 3),
                                 round(f.last_ns / 1e9 - 1700000000, 3)) for f in r.results[1].value]


def test_idle_and_tcp_end_timeouts(tmp_path):
    u = lambda sport: ether(udp4("10.0.0.1", "10.0.0.2", sport, 53, b"q"))
    t = lambda sport, flags: ether(tcp4("10.0.0.1", "10.0.0.2", sport, 80, 1, flags))
    pkts = [(0, u(1)), (1, u(1)), (20, u(1))]                        # idle 15 s: 2 flows
    pkts += [(0, t(3, dpkt.tcp.TH_SYN)), (1, t(3, dpkt.tcp.TH_FIN | dpkt.tcp.TH_ACK)),
             (1.5, t(3, dpkt.tcp.TH_ACK)), (10, t(3, dpkt.tcp.TH_ACK))]   # FIN, 5 s later: new flow
    pkts.sort(key=lambda p: p[0])
    st, flows = flows_of(timed_trace(tmp_path / "t.pcap", pkts), idle_timeout="15s",
                         active_timeout="30s", tcp_end_timeout="5s")
    assert sorted(flows) == sorted([(1, 2, 0, 1), (1, 1, 20, 20), (3, 3, 0, 1.5), (3, 1, 10, 10)])
    assert (st["idle"], st["active_timeouts"], st["ended"], st["forced"]) == (1, 0, 1, 2)


def test_active_timeout_reports_and_counts_afresh(tmp_path):
    u = lambda sport: ether(udp4("10.0.0.1", "10.0.0.2", sport, 53, b"q"))
    pkts = [(s, u(2)) for s in range(0, 10)] + [(0, u(4)), (1, u(4))]
    pkts.sort(key=lambda p: p[0])
    st, flows = flows_of(timed_trace(tmp_path / "t.pcap", pkts), idle_timeout="15s",
                         active_timeout="4s")
    # port 4 is reported at 4 s (active) and then, with nothing more, forgotten without a record
    assert sorted(flows) == [(2, 2, 8, 9), (2, 4, 0, 3), (2, 4, 4, 7), (4, 2, 0, 1)]
    assert (st["active_timeouts"], st["forced"], st["records"]) == (3, 1, 4)


def test_table_full_reports_the_oldest(tmp_path):
    u = lambda sport: ether(udp4("10.0.0.1", "10.0.0.2", sport, 53, b"q"))
    st, flows = flows_of(timed_trace(tmp_path / "t.pcap", [(0, u(1)), (1, u(2)), (2, u(3)), (3, u(2))]),
                         max_flows=2)
    assert st["resources"] == 1 and flows[0] == (1, 1, 0, 0) and sorted(flows[1:]) == [(2, 2, 1, 3), (3, 1, 2, 2)]


@needs_corpus
def test_records_feed_the_record_functions():
    path = PCAP / "PcapPlusPlus__example.pcap"
    r = replay(path, [("FLOW_REPORT", (), FOREVER), ("RECORD_FILTER", ("proto=17 and dport=53",), {}),
                      ("RECORD_COUNTER", (), {}), ("RECORD_TOP", (1, "dst"), {})], buffer=False)
    dns = tshark_ip_bytes(path)
    want = [(k, b) for k, b in dns.items() if k[0] == 17 and k[4] == 53]
    c = r.results[2].value
    assert c["records"] == len(want) and c["bytes"] == sum(b for _, b in want)
    assert str(r.results[3].value[0].value) == "10.0.0.138"


def test_file_destination_and_sampling_noted(tmp_path):
    path = mixed()
    out = tmp_path / "flows.ipfix"
    r = replay(path, [("SAMPLE", (10, mapi.PERIODIC), {}),
                      ("FLOW_REPORT", ("ipfix", "file:%s" % out), dict(FOREVER, sampling=10)),
                      ("EXPIRED_FLOWS", (), {})], buffer=False)
    data = out.read_bytes()
    messages, pos = [], 0
    while pos < len(data):                          # RFC 5655: messages back to back
        version, length = struct.unpack_from("!HH", data, pos)
        assert version == 10 and length >= 16
        messages.append(data[pos:pos + length])
        pos += length
    assert len(messages) == r.results[1].value["messages"]
    flows, problems, text = tshark_cflow(export_pcap(tmp_path / "f.pcap", messages), 4739)
    assert problems == [] and "Sampling interval: 10" in text
    assert all(f.sampling == 10 for f in r.results[2].value)


def test_bad_arguments():
    assert_rejected(mixed(), "FLOW_REPORT",
                    [((), dict(format="v7"), "format"), ((), dict(key="src,port"), "key"),
                     ((), dict(destination="tcp:1.2.3.4:5"), "destination"),
                     ((), dict(format="v5", destination="udp:127.0.0.1:9", key="biflow"), "biflow"),
                     ((), dict(idle_timeout="0s"), "idle_timeout")])
