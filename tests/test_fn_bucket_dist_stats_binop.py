"""BUCKET, DIST, STATS and BINOP against values computed by hand from tcpdump's record lists.

The reference is the pcap `tcpdump --time-stamp-precision=nano -r FILE -w - EXPR` writes,
parsed record header by record header (exact ns timestamps and wire lengths); intervals of packet
time are modelled in helpers.intervals.
"""
import pytest

import mapi
from helpers import CORPUS, generated, inputs, replay
from helpers.intervals import S, counter_flow, interval_sums, selected, tcpdump_index

PCAP = CORPUS / "pcap"
MIXED, SLOW, HUNDRED, YEARS = (generated(n) for n in ("mixed.pcap", "slow.pcap", "hundred.pcap",
                                                      "years.pcap"))


def per_interval(path, interval, expr="", weight=lambda r: 1):
    """[sum in interval k for k = 0 .. the last packet's interval], t0."""
    sums, n, t0 = interval_sums(path, interval, expr, weight)
    return [sums.get(k, 0) for k in range(n)], t0


# --- BUCKET -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, expr, interval, interval_ns", inputs([
    (HUNDRED, "", 1 * S, 1 * S),
    (MIXED, "tcp", "100ms", S // 10),
    (MIXED, "tcp port 443", "1s", S),
    (SLOW, "tcp port 80", "7.5s", 7 * S + S // 2),
    ("libtrace__100_seconds.pcap", "", 1 * S, 1 * S),
    ("PcapPlusPlus__example.pcap", "tcp", "100ms", S // 10),
    ("PcapPlusPlus__tls2.pcap", "tcp port 443", "1s", S),
    ("PcapPlusPlus__4KHttpRequests.pcap", "tcp port 80", "7.5s", 7 * S + S // 2),
], base="pcap"))
@pytest.mark.parametrize("fn", ["PKT_COUNTER", "BYTE_COUNTER"])
def test_bucket_snapshots_equal_per_interval_sums(name, expr, interval, interval_ns, fn):
    path = PCAP / name
    weight = (lambda r: 1) if fn == "PKT_COUNTER" else (lambda r: r[1])
    sums, t0 = per_interval(path, interval_ns, expr, weight)

    def setup(dev):
        ref = counter_flow(dev, expr, fn)
        fd = mapi.create_flow(dev)
        per = mapi.apply_function(fd, "BUCKET", ref, interval, True, 100000)
        cumulative = mapi.apply_function(fd, "BUCKET", ref, interval, size=100000)
        mapi.connect(fd)
        return fd, per, cumulative
    dev, (fd, per, cumulative) = replay(path, setup)
    starts = [t0 + k * interval_ns for k in range(len(sums))]
    got = mapi.read_results(fd, per)
    assert got.value == list(zip(starts, sums))
    assert got.ts == starts[-1]                  # the end of the last complete interval
    running = [sum(sums[:k + 1]) for k in range(len(sums))]
    assert mapi.read_results(fd, cumulative).value == list(zip(starts, running))
    info = mapi.get_function_info(fd, per)
    assert info["partial_last"] and info["snapshots_lost"] == 0
    mapi.delete_offline_device(dev)


@pytest.mark.parametrize("name", inputs([YEARS, "zeek__ssh__ssh.pcap"], base="pcap"))
def test_bucket_keeps_the_last_size_snapshots_over_years_of_gaps(name):
    # 1797 packets spread over three years: ~26,900 hourly intervals, almost all empty
    path = PCAP / name
    hour = 3600 * S
    sums, t0 = per_interval(path, hour)
    assert len(sums) > 20000

    def setup(dev):
        ref = counter_flow(dev)
        fd = mapi.create_flow(dev)
        fid = mapi.apply_function(fd, "BUCKET", ref, "1h", True, 500)
        mapi.connect(fd)
        return fd, fid
    dev, (fd, fid) = replay(path, setup)
    expected = [(t0 + k * hour, sums[k]) for k in range(len(sums))][-500:]
    assert mapi.read_results(fd, fid).value == expected
    assert mapi.get_function_info(fd, fid)["snapshots_lost"] == len(sums) - 500
    mapi.delete_offline_device(dev)


@pytest.mark.parametrize("name", inputs([HUNDRED, "libtrace__100_seconds.pcap"], base="pcap"))
def test_bucket_snapshot_of_a_flow_connected_later_counts_from_zero(name):
    # BUCKET's own flow connects first; the counter's flow afterwards (before the replay)
    path = PCAP / name
    sums, _ = per_interval(path, 10 * S, "tcp")
    dev = mapi.create_offline_device(str(path))
    fa = mapi.create_flow(dev)
    mapi.apply_function(fa, "BPF_FILTER", "tcp")
    cnt = mapi.apply_function(fa, "PKT_COUNTER")
    fb = mapi.create_flow(dev)
    fid = mapi.apply_function(fb, "BUCKET", (fa, cnt), "10s", True)
    mapi.connect(fb)
    mapi.connect(fa)
    mapi.start_offline_device(dev)
    mapi.wait_offline_device(dev, timeout=60)
    assert [v for _, v in mapi.read_results(fb, fid).value] == sums
    mapi.delete_offline_device(dev)


# --- BINOP --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, expr", inputs([(MIXED, "tcp"), (MIXED, "udp or icmp6"),
                                               (SLOW, "tcp port 80"),
                                               ("PcapPlusPlus__example.pcap", "tcp"),
                                               ("PcapPlusPlus__tls2.pcap", "udp or icmp6"),
                                               ("PcapPlusPlus__4KHttpRequests.pcap", "tcp port 80")],
                                              base="pcap"))
def test_binop_sub_and_add_of_two_flows_counters(name, expr):
    path = PCAP / name
    every, some = tcpdump_index(path), tcpdump_index(path, expr)

    def setup(dev):
        fa = mapi.create_flow(dev)
        pa = mapi.apply_function(fa, "PKT_COUNTER")
        ba = mapi.apply_function(fa, "BYTE_COUNTER")
        mapi.connect(fa)
        fb = mapi.create_flow(dev)
        mapi.apply_function(fb, "BPF_FILTER", expr)
        pb = mapi.apply_function(fb, "PKT_COUNTER")
        bb = mapi.apply_function(fb, "BYTE_COUNTER")
        mapi.connect(fb)
        fc = mapi.create_flow(dev)
        ids = [mapi.apply_function(fc, "BINOP", op, a, b)
               for op, a, b in ((mapi.SUB, (fa, pa), (fb, pb)), (mapi.ADD, (fa, pa), (fb, pb)),
                                (mapi.SUB, (fa, ba), (fb, bb)), (mapi.SUB, (fb, pb), (fa, pa)))]
        mapi.connect(fc)
        fs = mapi.create_flow(dev)          # operands in BINOP's own flow
        own = mapi.apply_function(fs, "PKT_COUNTER")
        same_flow = mapi.apply_function(fs, "BINOP", mapi.ADD, (fs, own), (fa, ba))
        mapi.connect(fs)
        return fc, ids, fs, same_flow
    dev, (fc, ids, fs, same_flow) = replay(path, setup)
    n_all, n_some = len(every), len(some)
    b_all, b_some = sum(w for _, w in every), sum(w for _, w in some)
    values = [mapi.read_results(fc, fid).value for fid in ids]
    assert values == [n_all - n_some, n_all + n_some, b_all - b_some, n_some - n_all]
    assert mapi.read_results(fs, same_flow).value == n_all + b_all
    assert mapi.read_results(fc, ids[0]).ts == every[-1][0]
    mapi.delete_offline_device(dev)


# --- DIST ---------------------------------------------------------------------------------------
def histogram(samples, lo, hi, width):
    bins = [0] * -((lo - hi) // width)
    under = over = 0
    for x in samples:
        if x < lo:
            under += 1
        elif x >= hi:
            over += 1
        else:
            bins[(x - lo) // width] += 1
    return bins, under, over


@pytest.mark.parametrize("name, expr, lo, hi, width", inputs([
    (MIXED, "", 0, 1600, 100),
    (MIXED, "tcp", 60, 1000, 64),
    (SLOW, "tcp port 80", 0, 1515, 1),
    ("PcapPlusPlus__example.pcap", "", 0, 1600, 100),
    ("PcapPlusPlus__tls2.pcap", "tcp", 60, 1000, 64),        # samples under 60 and over 1000 too
    ("PcapPlusPlus__4KHttpRequests.pcap", "tcp port 80", 0, 1515, 1),
], base="pcap"))
def test_dist_per_packet_of_byte_counter_is_the_packet_size_histogram(name, expr, lo, hi, width):
    path = PCAP / name
    sizes = [w for _, w in tcpdump_index(path, expr)]
    bins, under, over = histogram(sizes, lo, hi, width)

    def setup(dev):
        ref = counter_flow(dev, expr, "BYTE_COUNTER")
        fd = mapi.create_flow(dev)
        fid = mapi.apply_function(fd, "DIST", ref, lo, hi, width, 0, True)
        mapi.connect(fd)
        return fd, fid
    dev, (fd, fid) = replay(path, setup)
    d = mapi.read_results(fd, fid).value
    assert (d.bins, d.under, d.over, d.count) == (bins, under, over, len(sizes))
    assert (d.min, d.max, d.width) == (lo, hi, width)
    mapi.delete_offline_device(dev)


@pytest.mark.parametrize("name", inputs([SLOW, "PcapPlusPlus__4KHttpRequests.pcap"], base="pcap"))
def test_dist_per_packet_of_cumulative_count(name):
    # without reset the samples are the counter after each packet: 1, 2, ..., N
    path = PCAP / name
    n = len(tcpdump_index(path, "tcp port 80"))

    def setup(dev):
        ref = counter_flow(dev, "tcp port 80")
        fd = mapi.create_flow(dev)
        fid = mapi.apply_function(fd, "DIST", ref, 10, 300, 50)
        mapi.connect(fd)
        return fd, fid
    dev, (fd, fid) = replay(path, setup)
    d = mapi.read_results(fd, fid).value
    assert (d.bins, d.under, d.over) == histogram(range(1, n + 1), 10, 300, 50)
    mapi.delete_offline_device(dev)


@pytest.mark.parametrize("name, interval_ns, lo, hi, width", inputs([
    (MIXED, S // 4, 0, 500, 25),
    (SLOW, 60 * S, 0, 100, 10),
    ("PcapPlusPlus__example.pcap", S // 4, 0, 500, 25),
    ("PcapPlusPlus__tls2.pcap", S, 0, 100, 10),
], base="pcap"))
def test_dist_per_interval_is_the_histogram_of_counts_per_interval(name, interval_ns, lo, hi,
                                                                  width):
    path = PCAP / name
    counts = per_interval(path, interval_ns)[0][:-1]      # the complete intervals

    def setup(dev):
        ref = counter_flow(dev)
        fd = mapi.create_flow(dev)
        fid = mapi.apply_function(fd, "DIST", ref, lo, hi, width, interval_ns, True)
        mapi.connect(fd)
        return fd, fid
    dev, (fd, fid) = replay(path, setup)
    d = mapi.read_results(fd, fid).value
    assert (d.bins, d.under, d.over) == histogram(counts, lo, hi, width)
    assert d.count == len(counts)
    mapi.delete_offline_device(dev)


# --- STATS --------------------------------------------------------------------------------------
def moments(samples):
    samples = list(samples)
    return (len(samples), sum(samples), sum(x * x for x in samples), min(samples), max(samples))


@pytest.mark.parametrize("name, expr", inputs([(MIXED, ""), (MIXED, "ip6"), (YEARS, "tcp port 22"),
                                               ("PcapPlusPlus__example.pcap", ""),
                                               ("PcapPlusPlus__tls2.pcap", "ip6"),
                                               ("zeek__ssh__ssh.pcap", "tcp port 22")], base="pcap"))
def test_stats_per_packet(name, expr):
    path = PCAP / name
    sizes = [w for _, w in tcpdump_index(path, expr)]
    cumulative, total = [], 0
    for w in sizes:
        total += w
        cumulative.append(total)

    def setup(dev):
        pkt = counter_flow(dev, expr)
        byt = counter_flow(dev, expr, "BYTE_COUNTER")
        fd = mapi.create_flow(dev)
        ids = [mapi.apply_function(fd, "STATS", byt, 0, True),
               mapi.apply_function(fd, "STATS", byt),
               mapi.apply_function(fd, "STATS", pkt)]
        mapi.connect(fd)
        return fd, ids
    dev, (fd, ids) = replay(path, setup)
    sizes_stats, cumulative_stats, count_stats = (mapi.read_results(fd, i).value for i in ids)
    assert tuple(sizes_stats) == moments(sizes)
    assert sizes_stats.mean == pytest.approx(sum(sizes) / len(sizes))
    assert tuple(cumulative_stats) == moments(cumulative)          # sum2 beyond 64 bits here
    assert tuple(count_stats) == moments(range(1, len(sizes) + 1))
    mapi.delete_offline_device(dev)


@pytest.mark.parametrize("name, interval, interval_ns", inputs([
    (MIXED, "500ms", S // 2),
    (HUNDRED, "3s", 3 * S),
    (YEARS, "1s", S),
    ("PcapPlusPlus__example.pcap", "500ms", S // 2),
    ("libtrace__100_seconds.pcap", "3s", 3 * S),
    ("zeek__ssh__ssh.pcap", "1s", S),          # ~97 million one-second intervals, nearly all empty
], base="pcap"))
def test_stats_per_interval(name, interval, interval_ns):
    path = PCAP / name
    sums, n, _ = interval_sums(path, interval_ns)
    n_complete = n - 1

    def setup(dev):
        pkt = counter_flow(dev)
        fd = mapi.create_flow(dev)
        per = mapi.apply_function(fd, "STATS", pkt, interval, True)
        level = mapi.apply_function(fd, "STATS", pkt, interval)
        mapi.connect(fd)
        return fd, per, level
    dev, (fd, per, level) = replay(path, setup)
    if n_complete < 10 ** 6:
        counts = [sums.get(k, 0) for k in range(n_complete)]
        running = [sum(counts[:k + 1]) for k in range(len(counts))]
    else:   # too many intervals to list: the empty ones only add zeros
        nonzero = [v for k, v in sums.items() if k < n_complete]
        counts = None
        c, s1, s2, lo, hi = moments(nonzero)
        expected = (n_complete, s1, s2, 0 if n_complete > c else lo, hi)
        running = None
    if counts is not None:
        expected = moments(counts)
    assert tuple(mapi.read_results(fd, per).value) == expected
    if running is not None:
        assert tuple(mapi.read_results(fd, level).value) == moments(running)
    else:
        assert mapi.read_results(fd, level).value.count == n_complete
    mapi.delete_offline_device(dev)


# --- bad arguments ------------------------------------------------------------------------------
@pytest.fixture()
def dev_with_counter():
    dev = mapi.create_offline_device(str(HUNDRED))
    fa = mapi.create_flow(dev)
    cnt = mapi.apply_function(fa, "PKT_COUNTER")
    buf = mapi.apply_function(fa, "TO_BUFFER")
    mapi.connect(fa)
    yield dev, fa, cnt, buf
    mapi.delete_offline_device(dev)


@pytest.mark.parametrize("interval, why", [("1000", "no unit"), ("1 parsec", "no unit"),
                                           ("fast s", "not a number"), (0, "more than 0"),
                                           (-5, "a duration"), ("0.5ns", "whole number"),
                                           (1.5, "a duration"), (True, "a duration")])
def test_bucket_rejects_bad_intervals(dev_with_counter, interval, why):
    dev, fa, cnt, _ = dev_with_counter
    fd = mapi.create_flow(dev)
    with pytest.raises(mapi.MapiError) as e:
        mapi.apply_function(fd, "BUCKET", (fa, cnt), interval)
    assert e.value.code == 1005 and why in str(e.value) and "'interval'" in str(e.value)


def test_reference_errors_name_the_argument(dev_with_counter):
    dev, fa, cnt, buf = dev_with_counter
    fd = mapi.create_flow(dev)
    with pytest.raises(mapi.MapiError) as e:
        mapi.apply_function(fd, "BUCKET", (fa, 99), "1s")
    assert e.value.code == 1002 and "'ref'" in str(e.value) and "99" in str(e.value)
    with pytest.raises(mapi.MapiError) as e:
        mapi.apply_function(fd, "BUCKET", (4242, 1), "1s")
    assert e.value.code == 1001 and "'ref'" in str(e.value)
    with pytest.raises(mapi.MapiError) as e:
        mapi.apply_function(fd, "BUCKET", "fa", "1s")
    assert e.value.code == 1005 and "(fd, fid)" in str(e.value)
    with pytest.raises(mapi.MapiError) as e:          # TO_BUFFER has no numeric result
        mapi.apply_function(fd, "BINOP", mapi.SUB, (fa, cnt), (fa, buf))
    assert e.value.code == 1005 and "'ref2'" in str(e.value) and "numeric" in str(e.value)
    with pytest.raises(mapi.MapiError) as e:
        mapi.apply_function(fd, "BUCKET", (fa, buf), "1s", True)
    assert e.value.code == 1005 and "numeric" in str(e.value)
    with pytest.raises(mapi.MapiError) as e:
        mapi.apply_function(fd, "BINOP", "MUL", (fa, cnt), (fa, cnt))
    assert e.value.code == 1005 and "'op'" in str(e.value)
    mapi.apply_function(fd, "BUCKET", (fa, buf), "1s")     # a plain snapshot takes any result


def test_reference_to_another_device_is_refused(dev_with_counter):
    dev, fa, cnt, _ = dev_with_counter
    other = mapi.create_offline_device(str(HUNDRED))
    try:
        fd = mapi.create_flow(other)
        with pytest.raises(mapi.MapiError) as e:
            mapi.apply_function(fd, "BINOP", mapi.ADD, (fa, cnt), (fa, cnt))
        assert e.value.code == 1005 and "same device" in str(e.value)
    finally:
        mapi.delete_offline_device(other)


def test_dist_and_stats_argument_errors(dev_with_counter):
    dev, fa, cnt, _ = dev_with_counter
    fr = mapi.create_flow(dev)
    rate = mapi.apply_function(fr, "PKT_RATE", "1s")
    mapi.connect(fr)
    fd = mapi.create_flow(dev)
    cases = [
        (("DIST", (fa, cnt), 10, 10, 1), "'max'"),
        (("DIST", (fa, cnt), 0, 10, 0), "'width'"),
        (("DIST", (fa, cnt), 0, 10 ** 9, 1), "bins"),
        (("DIST", (fa, cnt), 0, 10.5, 1), "64-bit integer"),
        (("DIST", (fr, rate), 0, 10, 1), "PKT_COUNTER or BYTE_COUNTER"),
        (("STATS", (fr, rate)), "PKT_COUNTER or BYTE_COUNTER"),
        (("STATS", (fa, cnt), "soon"), "'interval'"),
    ]
    for args, words in cases:
        with pytest.raises(mapi.MapiError) as e:
            mapi.apply_function(fd, *args)
        assert e.value.code == 1005 and words in str(e.value), args
    mapi.apply_function(fd, "DIST", (fr, rate), 0, 10.5, 0.5, "1s")   # floats are fine per interval
    mapi.apply_function(fd, "STATS", (fr, rate), "1s")


@pytest.mark.parametrize("name", inputs([MIXED, "PcapPlusPlus__tls2.pcap"], base="pcap"))
def test_watching_functions_of_the_same_flow_as_mapi_did(name):
    # MAPI's usual form: the counter and STATS/DIST/BUCKET in one flow, a filter after them
    path = PCAP / name
    t0_sums, n, t0 = interval_sums(path, S, "tcp")
    sizes = [w for _, _, w in selected(path, "tcp")]

    def setup(dev):
        fd = mapi.create_flow(dev)
        mapi.apply_function(fd, "BPF_FILTER", "tcp")
        cnt = mapi.apply_function(fd, "PKT_COUNTER")
        byt = mapi.apply_function(fd, "BYTE_COUNTER")
        ids = [mapi.apply_function(fd, "STATS", (fd, byt), 0, True),
               mapi.apply_function(fd, "DIST", (fd, byt), 0, 1600, 100, 0, True),
               mapi.apply_function(fd, "BUCKET", (fd, cnt), "1s", True)]
        mapi.apply_function(fd, "BPF_FILTER", "port 1")       # the flow goes on, nearly empty
        mapi.apply_function(fd, "PKT_COUNTER")
        mapi.connect(fd)
        return fd, ids
    dev, (fd, (st, di, bu)) = replay(path, setup)
    assert tuple(mapi.read_results(fd, st).value) == moments(sizes)
    assert mapi.read_results(fd, di).value.bins == histogram(sizes, 0, 1600, 100)[0]
    assert [v for _, v in mapi.read_results(fd, bu).value] == [t0_sums.get(k, 0) for k in range(n)]
    mapi.delete_offline_device(dev)


def test_watching_a_function_applied_later_or_of_an_unconnected_flow(dev_with_counter):
    dev, fa, cnt, _ = dev_with_counter
    fd = mapi.create_flow(dev)
    with pytest.raises(mapi.MapiError) as e:          # fid 1 of this flow does not exist yet
        mapi.apply_function(fd, "STATS", (fd, 1), "1s")
    assert e.value.code == 1002 and e.value.where["argument"] == "ref"
    later = mapi.create_flow(dev)
    lcnt = mapi.apply_function(later, "PKT_COUNTER")
    fs = mapi.create_flow(dev)
    mapi.apply_function(fs, "STATS", (later, lcnt), "1s")
    with pytest.raises(mapi.MapiError) as e:
        mapi.connect(fs)
    assert e.value.code == 1007 and "connect flow %d first" % later in str(e.value)
