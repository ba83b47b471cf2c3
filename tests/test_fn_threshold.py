"""THRESHOLD: each event's packet, timestamp and value against tcpdump's record lists.

PKT_COUNTER > N fires at the (N+1)-th selected packet, == N at the N-th; BYTE_COUNTER at the
first packet whose cumulative wire length passes the value; per interval (delta mode) the same
within each interval, LESS/EQUAL at the end of each complete interval.  Interval k of packet
time is modelled as in helpers.intervals.
"""
import pytest

import mapi
from helpers import CORPUS, generated, inputs, replay
from helpers.intervals import S, counter_flow, packet_intervals, selected

PCAP = CORPUS / "pcap"
MIXED, SLOW, HUNDRED, YEARS = (generated(n) for n in ("mixed.pcap", "slow.pcap", "hundred.pcap",
                                                      "years.pcap"))


def drain(fd, fid):
    out = []
    while True:
        ev = mapi.get_next_event(fd, fid, timeout=60)
        if ev is None:
            return out
        out.append(ev)


def watch(path, ref_expr, ref_fn, specs, extra=None):
    """Replay with one counter flow and one THRESHOLD per spec (kind, value, interval, count);
    returns the events of each, as (ts, value, seq) tuples, and the events themselves."""
    def setup(dev):
        ref = counter_flow(dev, ref_expr, ref_fn)
        if extra:
            extra(dev, ref)
        fd = mapi.create_flow(dev)
        ids = [mapi.apply_function(fd, "THRESHOLD", spec[0], ref, *spec[1:]) for spec in specs]
        mapi.connect(fd)
        return fd, ids
    dev, (fd, ids) = replay(path, setup)
    events = [drain(fd, fid) for fid in ids]
    infos = [mapi.get_function_info(fd, fid) for fid in ids]
    mapi.delete_offline_device(dev)
    return [[(e.ts, e.value, e.seq) for e in evs] for evs in events], events, infos


@pytest.fixture(scope="module")
def big_trace(tmp_path_factory):
    """140,000 packets over ~7 s: more than two engine batches (65,536 packets each)."""
    from tools.gentrace import write_trace
    path = tmp_path_factory.mktemp("threshold") / "mixed.pcap"
    write_trace(str(path), packets=140000, seed=11, rate=20000)
    return path


# --- level mode on counters: the exact crossing packet -----------------------------------------
@pytest.mark.parametrize("name, expr", inputs([
    (SLOW, "tcp port 80"),
    (MIXED, ""),
    (MIXED, "ip6 and tcp"),
    ("PcapPlusPlus__4KHttpRequests.pcap", "tcp port 80"),
    ("PcapPlusPlus__example.pcap", ""),
    ("PcapPlusPlus__tls2.pcap", "ip6 and tcp"),
], base="pcap"))
def test_pkt_counter_crossings_are_the_nth_matching_packet(name, expr):
    path = PCAP / name
    sel = selected(path, expr)
    n = len(sel)
    values = [0, 1, 2, n // 3, n - 1, n, n + 5]
    specs = [(mapi.GREATER, v) for v in values] + [(mapi.EQUAL, v) for v in values]
    got, events, _ = watch(path, expr, "PKT_COUNTER", specs)
    for (kind, v), evs in zip(specs, got):
        nth = v + 1 if kind == mapi.GREATER else v          # 1-based packet that crosses
        if 1 <= nth <= n:
            i, ts, _ = sel[nth - 1]
            assert evs == [(ts, nth, i)], (kind, v)
        else:
            assert evs == [], (kind, v)
    ev = events[1][0]
    assert (ev.kind, ev.threshold) == (mapi.GREATER, 1) and isinstance(ev, mapi.Event)


@pytest.mark.parametrize("name, expr", inputs([(MIXED, "udp"), (YEARS, ""),
                                               ("PcapPlusPlus__example.pcap", "udp"),
                                               ("zeek__ssh__ssh.pcap", "")], base="pcap"))
def test_byte_counter_crossings_follow_cumulative_wire_length(name, expr):
    path = PCAP / name
    sel = selected(path, expr)
    cumulative, total = [], 0
    for _, _, wl in sel:
        total += wl
        cumulative.append(total)
    exact = cumulative[len(cumulative) // 2]
    missed = exact + 1                       # strictly between two cumulative sums
    assert missed not in cumulative
    specs = [(mapi.GREATER, 0), (mapi.GREATER, 1000), (mapi.GREATER, exact),
             (mapi.GREATER, total - 1), (mapi.GREATER, total), (mapi.GREATER, 2500.7),
             (mapi.EQUAL, exact), (mapi.EQUAL, missed), (mapi.EQUAL, cumulative[0])]
    got, _, _ = watch(path, expr, "BYTE_COUNTER", specs)

    def first(pred):
        for (i, ts, _), c in zip(sel, cumulative):
            if pred(c):
                return [(ts, c, i)]
        return []
    for (kind, v), evs in zip(specs, got):
        if kind == mapi.GREATER:
            assert evs == first(lambda c: c > v), v
        else:
            assert evs == first(lambda c: c == v), v


@pytest.mark.parametrize("name", inputs([MIXED, "PcapPlusPlus__4KHttpRequests.pcap"], base="pcap"))
def test_threshold_on_a_counter_of_its_own_flow(name):
    path = PCAP / name
    sel = selected(path, "tcp port 80")

    def setup(dev):
        fd = mapi.create_flow(dev)
        mapi.apply_function(fd, "BPF_FILTER", "tcp port 80")
        cnt = mapi.apply_function(fd, "PKT_COUNTER")
        mapi.apply_function(fd, "BPF_FILTER", "tcp[tcpflags] & tcp-syn != 0")
        mapi.apply_function(fd, "PKT_COUNTER")
        fid = mapi.apply_function(fd, "THRESHOLD", mapi.EQUAL, (fd, cnt), 200)
        mapi.connect(fd)
        return fd, fid
    dev, (fd, fid) = replay(path, setup)
    assert [(e.ts, e.seq) for e in drain(fd, fid)] == [(sel[199][1], sel[199][0])]
    mapi.delete_offline_device(dev)


def test_crossings_across_batches_and_tick_cuts(big_trace):
    sel = selected(big_trace, "tcp")
    n = len(sel)
    assert n > 65536
    values = [65535, 65536, 65537, 70000, n - 1]
    specs = [(mapi.GREATER, v) for v in values] + [(mapi.EQUAL, v) for v in values]

    def with_bucket(dev, ref):              # a 10 ms tick elsewhere cuts every batch ~700 times
        fd = mapi.create_flow(dev)
        mapi.apply_function(fd, "BUCKET", ref, "10ms")
        mapi.connect(fd)
    for extra in (None, with_bucket):
        got, _, _ = watch(big_trace, "tcp", "PKT_COUNTER", specs, extra)
        for (kind, v), evs in zip(specs, got):
            nth = v + 1 if kind == mapi.GREATER else v
            i, ts, _ = sel[nth - 1]
            assert evs == [(ts, nth, i)], (kind, v, extra)


# --- delta mode on counters ---------------------------------------------------------------------
def per_interval_packets(path, expr, interval):
    ks, t0 = packet_intervals(path, interval)
    groups = {}
    for i, ts, wl in selected(path, expr):
        groups.setdefault(ks[i], []).append((i, ts, wl))
    return groups, ks[-1] + 1, t0


@pytest.mark.parametrize("name, expr, interval, interval_ns, v", inputs([
    (MIXED, "", "1s", S, 300),
    (MIXED, "tcp", "250ms", S // 4, 40),
    (HUNDRED, "", "5s", 5 * S, 5),
    ("PcapPlusPlus__example.pcap", "", "1s", S, 300),
    ("PcapPlusPlus__example.pcap", "tcp", "250ms", S // 4, 40),
    ("PcapPlusPlus__tls2.pcap", "tcp", "2s", 2 * S, 80),
    ("libtrace__100_seconds.pcap", "", "5s", 5 * S, 5),
], base="pcap"))
def test_per_interval_counts(name, expr, interval, interval_ns, v):
    path = PCAP / name
    groups, n, t0 = per_interval_packets(path, expr, interval_ns)
    specs = [(mapi.GREATER, v, interval), (mapi.LESS, v, interval), (mapi.EQUAL, v, interval),
             (mapi.GREATER, v, interval, 2)]
    got, _, _ = watch(path, expr, "PKT_COUNTER", specs)
    greater, less, equal = [], [], []
    for k in range(n):
        pkts = groups.get(k, [])
        if len(pkts) > v:
            i, ts, _ = pkts[v]
            greater.append((ts, v + 1, i))
        if k < n - 1:                        # judged when complete
            end = t0 + (k + 1) * interval_ns
            if len(pkts) < v:
                less.append((end, len(pkts), None))
            if len(pkts) == v:
                equal.append((end, v, None))
    assert greater or less or equal
    assert got == [greater, less, equal, greater[:2]]


def test_per_interval_bytes(big_trace):
    groups, n, t0 = per_interval_packets(big_trace, "udp", S // 2)
    v = 850_000
    got, _, _ = watch(big_trace, "udp", "BYTE_COUNTER", [(mapi.GREATER, v, "500ms"),
                                                         (mapi.LESS, v, "500ms")])
    greater, less = [], []
    for k in range(n):
        total = 0
        for i, ts, wl in groups.get(k, []):
            total += wl
            if total > v:
                greater.append((ts, total, i))
                break
        total = sum(wl for _, _, wl in groups.get(k, []))
        if k < n - 1 and total < v:
            less.append((t0 + (k + 1) * S // 2, total, None))
    assert greater and less
    assert got == [greater, less]


# --- other references: batch or tick granularity ------------------------------------------------
@pytest.mark.parametrize("name", inputs([MIXED, "PcapPlusPlus__example.pcap"], base="pcap"))
def test_threshold_on_a_meter_fires_at_interval_ends_when_the_rate_crosses(name):
    path = PCAP / name
    groups, n, t0 = per_interval_packets(path, "", S)
    rates = [len(groups.get(k, [])) * 1.0 for k in range(n - 1)]     # complete intervals, pkt/s
    v = 300

    def setup(dev):
        fm = mapi.create_flow(dev)
        rate = mapi.apply_function(fm, "PKT_RATE", "1s")
        mapi.connect(fm)
        fd = mapi.create_flow(dev)
        up = mapi.apply_function(fd, "THRESHOLD", mapi.GREATER, (fm, rate), v)
        down = mapi.apply_function(fd, "THRESHOLD", mapi.LESS, (fm, rate), v)
        mapi.connect(fd)
        return fd, up, down
    dev, (fd, up, down) = replay(path, setup)
    expected = {mapi.GREATER: [], mapi.LESS: []}
    for kind, test in ((mapi.GREATER, lambda r: r > v), (mapi.LESS, lambda r: r < v)):
        before = None                        # the meter has no value before its first interval
        for k, r in enumerate(rates):
            if test(r) and before is not True:
                expected[kind].append((t0 + (k + 1) * S, r, None))
            before = test(r)
    assert expected[mapi.GREATER] and expected[mapi.LESS]
    got_up = [(e.ts, e.value, e.seq) for e in drain(fd, up)]
    got_down = [(e.ts, e.value, e.seq) for e in drain(fd, down)]
    assert (got_up, got_down) == (expected[mapi.GREATER], expected[mapi.LESS])
    mapi.delete_offline_device(dev)


@pytest.mark.parametrize("name", inputs([MIXED, "PcapPlusPlus__example.pcap"], base="pcap"))
def test_threshold_per_interval_on_binop(name):
    # BINOP(all - tcp) changes per interval by the non-TCP packets of that interval
    path = PCAP / name
    ks, t0 = packet_intervals(path, S)
    tcp = {i for i, _, _ in selected(path, "tcp")}
    counts = [0] * (ks[-1] + 1)
    for i, k in enumerate(ks):
        if i not in tcp:
            counts[k] += 1
    v = 10

    def setup(dev):
        fa = counter_flow(dev)
        ft = counter_flow(dev, "tcp")
        fb = mapi.create_flow(dev)
        diff = mapi.apply_function(fb, "BINOP", mapi.SUB, fa, ft)
        mapi.connect(fb)
        fd = mapi.create_flow(dev)
        fid = mapi.apply_function(fd, "THRESHOLD", mapi.GREATER, (fb, diff), v, "1s")
        mapi.connect(fd)
        return fd, fid
    dev, (fd, fid) = replay(path, setup)
    expected = [(t0 + (k + 1) * S, c, None) for k, c in enumerate(counts[:-1]) if c > v]
    assert expected
    assert [(e.ts, e.value, e.seq) for e in drain(fd, fid)] == expected
    mapi.delete_offline_device(dev)


@pytest.mark.parametrize("name", inputs([SLOW, "PcapPlusPlus__4KHttpRequests.pcap"], base="pcap"))
def test_threshold_result_counts_events_and_info_tells_the_mode(name):
    path = PCAP / name
    sel = selected(path, "tcp port 80")

    def setup(dev):
        ref = counter_flow(dev, "tcp port 80")
        fd = mapi.create_flow(dev)
        fid = mapi.apply_function(fd, "THRESHOLD", mapi.GREATER, ref, 9, "60s", 3)
        mapi.connect(fd)
        return fd, fid
    dev, (fd, fid) = replay(path, setup)
    evs = drain(fd, fid)
    assert len(evs) == 3
    r = mapi.read_results(fd, fid)
    assert r == (3, evs[-1].ts)
    info = mapi.get_function_info(fd, fid)
    assert (info["mode"], info["per_packet"], info["remaining"]) == ("delta", True, 0)
    assert evs[0].seq == sel[9][0]
    mapi.delete_offline_device(dev)


# --- bad arguments ------------------------------------------------------------------------------
def test_threshold_argument_errors():
    dev = mapi.create_offline_device(str(HUNDRED))
    try:
        fa = mapi.create_flow(dev)
        cnt = mapi.apply_function(fa, "PKT_COUNTER")
        buf = mapi.apply_function(fa, "TO_BUFFER")
        mapi.connect(fa)
        fd = mapi.create_flow(dev)
        cases = [
            ((mapi.LESS, (fa, cnt), 5), "only grows", "kind"),
            ((mapi.EQUAL, (fa, cnt), 2.5), "whole number", "value"),
            ((mapi.GREATER, (fa, cnt), -1), "below 0", "value"),
            (("ABOVE", (fa, cnt), 5), "GREATER", "kind"),
            ((mapi.GREATER, (fa, buf), 5), "numeric", "ref"),
            ((mapi.GREATER, (fa, 7), 5), "no function", "ref"),
            ((mapi.GREATER, (fa, cnt), "5"), "number", "value"),
            ((mapi.GREATER, (fa, cnt), 5, "5 fortnights"), "unit", "interval"),
            ((mapi.GREATER, (fa, cnt), 5, 0, -1), "count", "count"),
        ]
        for args, words, arg in cases:
            with pytest.raises(mapi.MapiError) as e:
                mapi.apply_function(fd, "THRESHOLD", *args)
            assert words in str(e.value) and e.value.where.get("argument") == arg, args
            assert e.value.code in (1002, 1005)
        mapi.apply_function(fd, "THRESHOLD", mapi.LESS, (fa, cnt), 5, "1s")     # fine per interval
    finally:
        mapi.delete_offline_device(dev)
