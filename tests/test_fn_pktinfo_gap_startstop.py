"""PKTINFO, GAP and STARTSTOP against values computed from tcpdump's record lists (and, for
nanosecond files, from the file's own record headers)."""
import datetime
import struct

import pytest

import mapi
from helpers import (CORPUS_EXAMPLE, CORPUS_HTTP, CORPUS_TLS,
                     generated, inputs, needs_corpus, replay, sample)

HTTP, EXAMPLE, TLS = CORPUS_HTTP, CORPUS_EXAMPLE, CORPUS_TLS
NANO = sample("tcpdump/pcap/tcp-handshake-nano.pcap")
MIXED, SLOW = generated("mixed.pcap"), generated("slow.pcap")


def run_flow(path, funcs, keep_packets=False):
    r = replay(path, [(name, args, {}) for name, *args in funcs], buffer=keep_packets)
    return r.before, r.results, [(p.ts // 1000, bytes(p.data)) for p in r.packets]


def records(path, expr=""):
    """[(ts_us, wirelen, caplen, data)] of what tcpdump selects (wire length from its headers)."""
    import io
    import subprocess
    from helpers import need_tool
    cmd = [need_tool("tcpdump"), "-r", str(path), "-w", "-"] + ([expr] if expr else [])
    blob = subprocess.run(cmd, capture_output=True, timeout=120).stdout
    out, pos = [], 24
    while pos + 16 <= len(blob):
        sec, usec, caplen, wirelen = struct.unpack_from("<IIII", blob, pos)
        out.append((sec * 10 ** 6 + usec, wirelen, caplen, blob[pos + 16:pos + 16 + caplen]))
        pos += 16 + caplen
    assert out and io
    return out


def nano_records(path):
    """(ts_ns, wirelen, caplen) straight from a little-endian nanosecond pcap."""
    blob = open(path, "rb").read()
    assert blob[:4] == b"\x4d\x3c\xb2\xa1"
    out, pos = [], 24
    while pos + 16 <= len(blob):
        sec, nsec, caplen, wirelen = struct.unpack_from("<IIII", blob, pos)
        out.append((sec * 10 ** 9 + nsec, wirelen, caplen))
        pos += 16 + caplen
    return out


# --- PKTINFO ------------------------------------------------------------------------------------
@pytest.mark.parametrize("path, expr", inputs([(SLOW, "tcp port 80"), (MIXED, "udp"), (MIXED, "ip6"),
                                               (HTTP, "tcp port 80"), (EXAMPLE, "udp"), (TLS, "ip6")]))
def test_pktinfo_is_the_last_packet(path, expr):
    last = records(path, expr)[-1]
    before, after, _ = run_flow(path, [("BPF_FILTER", expr), ("PKTINFO", "PKT_TS"),
                                       ("PKTINFO", "PKT_SIZE"), ("PKTINFO", "PKT_CAPLEN")])
    assert [r.value for r in before[1:]] == [None, None, None]
    ts, size, caplen = (r.value for r in after[1:])
    assert ts // 1000 == last[0] and ts % 1000 == 0
    assert (size, caplen) == (last[1], last[2])
    assert after[1].ts == ts


def test_pktinfo_keeps_nanoseconds():
    recs = nano_records(NANO)
    _, after, _ = run_flow(NANO, [("PKTINFO", "PKT_TS"), ("PKTINFO", "PKT_SIZE")])
    assert (after[0].value, after[1].value) == (recs[-1][0], recs[-1][1])
    assert recs[-1][0] % 1000 != 0 or any(r[0] % 1000 for r in recs)


def test_pktinfo_bad_field():
    dev = mapi.create_offline_device(str(SLOW))
    try:
        fd = mapi.create_flow(dev)
        with pytest.raises(mapi.MapiError) as e:
            mapi.apply_function(fd, "PKTINFO", "PKT_COLOUR")
        assert e.value.code == 1005 and e.value.where["argument"] == "field"
    finally:
        mapi.delete_offline_device(dev)


# --- GAP ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("path, expr", inputs([(SLOW, "tcp port 80"), (MIXED, "udp"), (MIXED, ""),
                                               (HTTP, "tcp port 80"), (EXAMPLE, "udp"), (TLS, "")]))
def test_gap_of_the_last_two_packets(path, expr):
    recs = records(path, expr)
    before, after, _ = run_flow(path, [("BPF_FILTER", expr), ("GAP",)])
    assert before[1].value is None
    assert after[1].value == (recs[-1][0] - recs[-2][0]) * 1000
    assert after[1].ts == recs[-1][0] * 1000


def test_gap_in_nanoseconds():
    recs = nano_records(NANO)
    _, after, _ = run_flow(NANO, [("GAP",)])
    assert after[0].value == recs[-1][0] - recs[-2][0]


def test_gap_of_a_single_packet_is_none():
    _, after, _ = run_flow(sample("pcap/PcapPlusPlus__linktype_ipv6.pcap"), [("GAP",)])
    assert after[0].value is None


# --- STARTSTOP ----------------------------------------------------------------------------------
def window(recs, lo_us, hi_us):
    return [(r[0], r[3]) for r in recs if (lo_us is None or r[0] >= lo_us) and (hi_us is None or r[0] < hi_us)]


@pytest.mark.parametrize("start, stop, lo_ns, hi_ns", [
    ("+10s", "+60s", 10 ** 10, 6 * 10 ** 10), ("10s", "", 10 ** 10, None), ("", "+2.5s", None, 25 * 10 ** 8),
    ("+100ms", "+100.5s", 10 ** 8, 1005 * 10 ** 8), ("+1m", "+2m", 6 * 10 ** 10, 12 * 10 ** 10),
    ("+0s", "+1ns", 0, 1), ("+1us", "", 1000, None),
])
@pytest.mark.parametrize("path", inputs([SLOW, TLS]))
def test_relative_window_from_the_first_packet(start, stop, lo_ns, hi_ns, path):
    recs = records(path)
    t0 = recs[0][0] * 1000
    want = [(r[0], r[3]) for r in recs
            if (lo_ns is None or r[0] * 1000 >= t0 + lo_ns) and (hi_ns is None or r[0] * 1000 < t0 + hi_ns)]
    _, after, pkts = run_flow(path, [("STARTSTOP", start, stop)], keep_packets=True)
    assert pkts == want
    assert after[0].value == len(want)


@needs_corpus
def test_relative_times_count_from_the_device_not_the_filter():
    """After a filter, "+1s" still means 1 s after the stream's first packet."""
    recs = records(HTTP)
    t0 = recs[0][0]
    sel = records(HTTP, "dst host 212.199.202.34")
    assert sel[0][0] > t0
    want = window(sel, t0 + 1 * 10 ** 6, t0 + 100 * 10 ** 6)
    assert want and want != window(sel, sel[0][0] + 1 * 10 ** 6, sel[0][0] + 100 * 10 ** 6)
    _, after, pkts = run_flow(HTTP, [("BPF_FILTER", "dst host 212.199.202.34"),
                                     ("STARTSTOP", "+1s", "+100s")], keep_packets=True)
    assert pkts == want and after[1].value == len(want)


def iso(us):
    return datetime.datetime.fromtimestamp(us / 1e6, datetime.timezone.utc).isoformat()


@pytest.mark.parametrize("path", inputs([MIXED, EXAMPLE]))
def test_absolute_window(path):
    recs = records(path)
    lo, hi = recs[100][0], recs[3000][0]
    want = window(recs, lo, hi)
    _, a, pa = run_flow(path, [("STARTSTOP", iso(lo), iso(hi))], keep_packets=True)
    _, b, pb = run_flow(path, [("STARTSTOP", "@%d.%06d" % divmod(lo, 10 ** 6),
                                   "@%d.%06d" % divmod(hi, 10 ** 6))], keep_packets=True)
    assert pa == pb == want
    assert a[0].value == b[0].value == len(want)


@pytest.mark.parametrize("path", inputs([MIXED, EXAMPLE]))
def test_naive_iso_time_is_utc(path):
    recs = records(path)
    lo = recs[2000][0]
    naive = datetime.datetime.utcfromtimestamp(lo / 1e6).isoformat(sep=" ")
    _, after, _ = run_flow(path, [("STARTSTOP", naive)])
    assert after[0].value == len(window(recs, lo, None))


@pytest.mark.parametrize("start, stop, bad", [("10 parsecs", "", "start"), ("", "tomorrow", "stop"),
                                              ("+10s", "+5s", "stop"), ("@12", "@12", "stop")])
def test_startstop_bad_times(start, stop, bad):
    dev = mapi.create_offline_device(str(SLOW))
    try:
        fd = mapi.create_flow(dev)
        with pytest.raises(mapi.MapiError) as e:
            mapi.apply_function(fd, "STARTSTOP", start, stop)
        assert e.value.code == 1005 and e.value.where["argument"] == bad
    finally:
        mapi.delete_offline_device(dev)
