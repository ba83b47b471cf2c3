"""STR_SEARCH against a plain Python byte search over the frames tcpdump -w - gives."""
import random

import pytest

import mapi
from helpers import (CORPUS_EXAMPLE, CORPUS_HTTP, CORPUS_TLS,
                     generated, inputs, replay, tcpdump_records, apply_error)

HTTP, EXAMPLE, TLS = CORPUS_HTTP, CORPUS_EXAMPLE, CORPUS_TLS
MIXED, SLOW = generated("mixed.pcap"), generated("slow.pcap")
ENGINES = ["auto", "memmem"]


def run_flow(path, funcs, keep_packets=False):
    r = replay(path, funcs, buffer=keep_packets)
    return [x.value for x in r.results], r.infos, [bytes(p.data) for p in r.packets]


_frames = {}


def frames(path):
    if path not in _frames:
        recs, err = tcpdump_records(path)
        assert recs is not None, err
        _frames[path] = [data for _, _, data in recs]
    return _frames[path]


def window(frame, offset, depth):
    return frame[offset:offset + depth] if depth else frame[offset:]


_references = {}


def reference(path, pats, offset=0, depth=0):
    key = (path, tuple(pats), offset, depth)
    if key not in _references:
        _references[key] = _reference(path, pats, offset, depth)
    return _references[key]


def _reference(path, pats, offset, depth):
    fr = frames(path)
    hits = [any(p in window(f, offset, depth) for p in pats) for f in fr]
    per = [sum(p in window(f, offset, depth) for f in fr) for p in pats]
    return hits, per


def search(path, pattern, offset=0, depth=0, engine="auto", keep_packets=False):
    (res,), (info,), pkts = run_flow(
        path, [("STR_SEARCH", (pattern, offset, depth), dict(engine=engine))], keep_packets)
    return res, info, pkts


SINGLE_PATTERNS = [
    (HTTP, "HTTP/1.1", [b"HTTP/1.1"]),
    (HTTP, "Host: ", [b"Host: "]),
    (HTTP, "|0d 0a 0d 0a|", [b"\r\n\r\n"]),
    (HTTP, "Content-|4c|ength", [b"Content-Length"]),
    (HTTP, "|47455420|/", [b"GET /"]),
    (EXAMPLE, "|00 00 00|", [b"\x00\x00\x00"]),
    (EXAMPLE, "google", [b"google"]),
    (TLS, "|16 03 01|", [b"\x16\x03\x01"]),
    (HTTP, "no such string anywhere", [b"no such string anywhere"]),
    (HTTP, "GET||POST||HEAD", [b"GET", b"POST", b"HEAD"]),
    (EXAMPLE, ["|ff|", "Z", "|fe|", "Z", "GET"], [b"\xff", b"Z", b"\xfe", b"GET"]),
    (HTTP, ["Host", "Hos", "Ho", "ost:", "H"], [b"Host", b"Hos", b"Ho", b"ost:", b"H"]),
]
# the same searches on the generated stand-ins of the corpus captures (tls2 has none)
STAND_INS = {HTTP: SLOW, EXAMPLE: MIXED}


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("path, text, pats", inputs(
    [(STAND_INS[p], text, pats) for p, text, pats in SINGLE_PATTERNS if p in STAND_INS] +
    [(MIXED, "example", [b"example"])] + SINGLE_PATTERNS))
def test_single_pattern_counts_equal_python_search(engine, path, text, pats):
    hits, _ = reference(path, pats)
    res, info, _ = search(path, text, engine=engine)
    assert res == sum(hits)
    assert info["seen"] == len(hits)
    if engine == "memmem":
        assert info["engine"] == "memmem"


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("offset, depth", [(0, 0), (54, 0), (54, 4), (0, 60), (66, 10), (1000, 0),
                                           (70000, 0), (0, 1)])
@pytest.mark.parametrize("path", inputs([SLOW, HTTP]))
def test_offset_and_depth_window(engine, offset, depth, path):
    pats = [b"GET ", b"HTTP", b"\r\n"]
    hits, _ = reference(path, pats, offset, depth)
    res, _, pkts = search(path, ["GET ", "HTTP", "|0d0a|"], offset, depth, engine, keep_packets=True)
    assert res == sum(hits)
    assert pkts == [f for f, h in zip(frames(path), hits) if h]


def pattern_set(path, n, seed):
    """n patterns: substrings of the trace's payloads (5..12 bytes, any byte values) and random
    strings that occur nowhere, in a seeded mix."""
    rnd = random.Random(seed)
    fr = [f for f in frames(path) if len(f) > 80]
    pats = []
    while len(pats) < n:
        if rnd.random() < 0.7:
            f = rnd.choice(fr)
            ln = rnd.randint(5, 12)
            at = rnd.randrange(54, len(f) - ln)
            pats.append(f[at:at + ln])
        else:
            pats.append(bytes(rnd.getrandbits(8) for _ in range(rnd.randint(4, 10))))
    return pats


def as_hex(p):
    return "|%s|" % " ".join("%02x" % b for b in p)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("path, n", inputs([(MIXED, 150), (SLOW, 120), (TLS, 150), (EXAMPLE, 120)]))
def test_list_of_many_patterns(engine, path, n):
    pats = pattern_set(path, n, seed=n)
    hits, per = reference(path, pats)
    assert 0 < sum(hits) < len(hits)            # the test discriminates
    res, info, pkts = search(path, [as_hex(p) for p in pats], engine=engine, keep_packets=True)
    assert res == sum(hits)
    assert info["patterns"] == n
    assert info["pattern_counts"] == per
    assert pkts == [f for f, h in zip(frames(path), hits) if h]


@pytest.mark.parametrize("path", inputs([MIXED, EXAMPLE]))
def test_many_patterns_with_window(path):
    pats = pattern_set(path, 100, seed=3)
    hits, per = reference(path, pats, 40, 200)
    res, info, _ = search(path, [as_hex(p) for p in pats], 40, 200)
    assert res == sum(hits)
    assert info["pattern_counts"] == per


def test_hyperscan_is_used_when_built_in():
    _, info, _ = search(SLOW, "GET")
    assert info["engine"] == "hyperscan"


def test_after_filter_and_shared_between_flows():
    """Two flows with the same prefix share the node and both get the right count."""
    dev = mapi.create_offline_device(str(SLOW))
    try:
        fds, fids = [], []
        for _ in range(2):
            fd = mapi.create_flow(dev)
            mapi.apply_function(fd, "BPF_FILTER", "tcp dst port 80")
            fids.append(mapi.apply_function(fd, "STR_SEARCH", "Host: "))
            mapi.connect(fd)
            fds.append(fd)
        mapi.start_offline_device(dev)
        mapi.wait_offline_device(dev)
        recs, _ = tcpdump_records(SLOW, "tcp dst port 80")
        want = sum(b"Host: " in data for _, _, data in recs)
        assert [mapi.read_results(fd, f).value for fd, f in zip(fds, fids)] == [want, want]
    finally:
        mapi.delete_offline_device(dev)


@pytest.mark.parametrize("pattern", ["ab|", "|4|", "|zz|", "ab||", "x\\", "", ["ok", ""]])
def test_malformed_patterns_are_rejected(pattern):
    err = apply_error(SLOW, "STR_SEARCH", pattern)
    assert err.code == 1005
    assert err.where["argument"] == "pattern"


def test_bad_offset():
    err = apply_error(SLOW, "STR_SEARCH", "GET", -1)
    assert err.where["argument"] == "offset"


def test_gentrace_signatures_counted_per_pattern(tmp_path):
    """The generator knows how many packets hold each of its 100 planted signatures."""
    import sys
    from helpers import ROOT
    sys.path.insert(0, str(ROOT))
    from tools.gentrace import SIGNATURES, write_trace
    path = tmp_path / "sig.pcap"
    stats = write_trace(str(path), packets=100_000, seed=11)
    res, info, _ = search(path, list(SIGNATURES))
    want = [stats.signatures[s] for s in SIGNATURES]
    assert sum(want) > 50
    assert info["pattern_counts"] == want
    assert res == sum(want)                     # at most one signature per packet
