"""How a distributed flow combines its sensors' values (mapi.client.combine), against values
worked out by hand: counters add, STATS combine to the statistics of all samples together,
DIST adds bins, TOP adds exact counts per key and ranks again, BUCKET adds per interval."""
import statistics

from mapi.client.combine import PARTIAL_ARGS, combine, cut
from mapi.results import Stats
from scampi.plugins.stdfuncs.bucket import Snapshot
from scampi.plugins.stdfuncs.dist import Dist
from scampi.plugins.stdfuncs.top import TopEntry


def stats_of(xs):
    return Stats(len(xs), sum(xs), sum(x * x for x in xs), min(xs), max(xs))


def test_counters_and_missing_sensors():
    assert combine([4631, 2000, 6000]) == 12631
    assert combine([4631, None, 6000]) == 10631
    assert combine([None, None]) is None
    assert combine([{"written": 3, "dropped": 1}, {"written": 4, "dropped": 0}]) == \
        {"written": 7, "dropped": 1}


def test_stats_are_exact():
    a, b, c = [60, 1514, 590], [42, 42], [9000, 64, 1500, 1500]
    s = combine([stats_of(a), stats_of(b), stats_of(c)])
    everything = a + b + c
    assert s == stats_of(everything)
    assert s.mean == statistics.fmean(everything)
    assert abs(s.variance - statistics.pvariance(everything)) < 1e-6
    assert combine([stats_of(a), Stats(0, 0, 0, None, None)]) == stats_of(a)


def test_dist_adds_bins():
    d1 = Dist(0, 100, 10, [1, 2, 3] + [0] * 7, 1, 0, 7)
    d2 = Dist(0, 100, 10, [0, 5, 0] + [0] * 6 + [4], 0, 2, 11)
    assert combine([d1, d2]) == Dist(0, 100, 10, [1, 7, 3] + [0] * 6 + [4], 1, 2, 18)
    assert combine([d1, Dist(0, 50, 10, [0] * 5, 0, 0, 0)]) is None     # other binning


def test_top_is_exact_across_sensors():
    # each sensor's whole table: 10.0.0.3 is third on both, first overall
    s1 = [TopEntry("10.0.0.1", 50, 5000), TopEntry("10.0.0.2", 40, 4000), TopEntry("10.0.0.3", 35, 100)]
    s2 = [TopEntry("10.0.0.4", 45, 4500), TopEntry("10.0.0.5", 41, 4100), TopEntry("10.0.0.3", 35, 100)]
    merged = combine([s1, s2], {"x": 2, "by": "packets"})
    assert merged == [("10.0.0.3", 70, 200), ("10.0.0.1", 50, 5000)]
    by_bytes = combine([s1, s2], {"x": 1, "by": "bytes"})
    assert by_bytes == [("10.0.0.1", 50, 5000)]
    # ties: the smaller key first, IPv4 before IPv6 (as TOP ranks in C)
    tie = combine([[TopEntry("10.0.0.9", 1, 1)], [TopEntry("10.0.0.10", 1, 1)],
                   [TopEntry("::1", 1, 1)]], {"x": 3})
    assert [e.value for e in tie] == ["10.0.0.9", "10.0.0.10", "::1"]
    assert cut(s1, {"x": 1}) == s1[:1]


def test_top_sensors_keep_their_whole_table():
    args, kwargs, hints = PARTIAL_ARGS["TOP"]((5, "ip.src"), {})
    assert args == (1 << 20, "ip.src") and hints == {"x": 5, "by": "packets"}
    args, kwargs, hints = PARTIAL_ARGS["TOP"]((3, "ip.dst", 1000, "bytes"), {})
    assert args == (1000, "ip.dst", 1000, "bytes") and hints == {"x": 3, "by": "bytes"}


def test_buckets_add_per_interval():
    s = 10 ** 9
    a = [Snapshot(100 * s, 5), Snapshot(101 * s, 7)]
    b = [Snapshot(100 * s + 3, 1), Snapshot(101 * s + 3, 2), Snapshot(102 * s + 3, 4)]
    assert combine([a, b]) == [(100 * s, 6), (101 * s, 9), (102 * s, 4)]
