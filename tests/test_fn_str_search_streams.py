"""STR_SEARCH after COOKING searches streams: a pattern split between two chunks of a connection
direction is found in the chunk where it ends (and not by a chunk-by-chunk search); bytes never
seen, a FIN and an evicted direction end a stream.  Hand-built connections, and a generated
trace against the streams tshark reassembles (searched with Python's bytes.find)."""
import collections

import dpkt
import pytest

from helpers import generated, replay
from helpers.pktbuild import Conversation, write_pcap
from helpers.reassembly import tshark_streams
from scampi.plugins.stdfuncs.cooking import chunk_info

SIG = b"evil-signature-XYZ"
HEAD, TAIL = SIG[:8], SIG[8:]
ENGINES = ["hyperscan", "memmem"]


def cooked_search(path, patterns, cooking=None, **search):
    """(passed chunks, STR_SEARCH's result, its info, COOKING's counters)."""
    r = replay(path, [("COOKING", (), cooking or {}), ("STR_SEARCH", (patterns,), search)])
    return [chunk_info(p.data) for p in r.packets], r.results[1].value, r.infos[1], r.results[0].value


def split_by_the_other_side(path, v6=False):
    """The signature's halves in two requests of the client with a reply between them: two
    chunks of the client's direction however COOKING releases."""
    conv = Conversation(v6=v6, client=("2001:db8::1" if v6 else "10.0.0.1", 40000),
                        server=("2001:db8::2" if v6 else "10.0.0.2", 80)).handshake()
    conv.send(0, b"GET /?q=" + HEAD)
    conv.send(1, b"HTTP/1.1 100 Continue\r\n\r\n")
    conv.send(0, TAIL + b" HTTP/1.1\r\n\r\n")
    conv.send(1, b"HTTP/1.1 200 OK\r\n\r\n")
    conv.close()
    return write_pcap(path, conv.frames)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("release", ["segment", "conversation"])
@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
def test_pattern_straddling_two_chunks(engine, release, v6, tmp_path):
    path = split_by_the_other_side(tmp_path / "straddle.pcap", v6)
    passed, n, info, st = cooked_search(path, [SIG.decode(), "absent-pattern"], dict(release=release),
                                        engine=engine)
    assert info["stream"] and info["engine"] == engine
    assert n == 1 and len(passed) == 1
    assert passed[0].data == TAIL + b" HTTP/1.1\r\n\r\n" and passed[0].direction == 0
    assert info["pattern_counts"] == [1, 0] and info["stream_breaks"] == 0
    assert info["streams"] == 0                  # both directions ended with their FIN
    # each chunk searched alone (a window: block mode) does not find it
    _, alone, info, _ = cooked_search(path, SIG.decode(), dict(release=release), offset=40 + 20 * v6,
                                      engine=engine)
    assert alone == 0 and not info["stream"]


@pytest.mark.parametrize("engine", ENGINES)
def test_chunks_cut_inside_the_pattern(engine, tmp_path):
    conv = Conversation().handshake()
    body = b"x" * 5 + SIG + b"y" * 7 + SIG[:5]          # chunks of 6 bytes: cut three times in SIG
    conv.send(0, body)
    conv.close()
    passed, n, info, st = cooked_search(write_pcap(tmp_path / "cut.pcap", conv.frames), SIG.decode(),
                                        dict(chunk_size=6), engine=engine)
    assert st["chunks"] > 6 and n == 1
    ends = 5 + len(SIG)                                # the chunk holding the signature's last byte
    assert passed[0].seq == conv.next[0] - 1 - len(body) + (ends - 1) // 6 * 6


@pytest.mark.parametrize("engine", ENGINES)
def test_bytes_never_seen_break_the_stream(engine, tmp_path):
    conv = Conversation().handshake()
    conv.send(0, b"GET /?q=" + HEAD)
    conv.send(0, TAIL, seq=conv.next[0] + 100)          # a hole of 100 bytes that never fills
    passed, n, info, st = cooked_search(write_pcap(tmp_path / "hole.pcap", conv.frames), SIG.decode(),
                                        engine=engine)
    assert st["gaps"] == 1 and n == 0 and info["stream_breaks"] == 1


@pytest.mark.parametrize("engine", ENGINES)
def test_a_new_connection_on_the_same_ports_is_a_new_stream(engine, tmp_path):
    first = Conversation().handshake()
    first.send(0, b"GET /?q=" + HEAD)
    first.close()
    again = Conversation(isn=(first.next[0] + 5000, 9000)).handshake()   # the same four tuple
    again.send(0, TAIL)
    again.close()
    frames = first.frames + again.frames
    passed, n, info, st = cooked_search(write_pcap(tmp_path / "reuse.pcap", frames), SIG.decode(),
                                        engine=engine)
    assert st["connections"] == 2 and n == 0 and info["stream_breaks"] == 0


@pytest.mark.parametrize("engine", ENGINES)
def test_max_streams_forgets_the_least_recent(engine, tmp_path):
    a, b = Conversation().handshake(), Conversation(client=("10.0.0.3", 41000)).handshake()
    a.send(0, b"GET /?q=" + HEAD)
    b.send(0, b"GET / HTTP/1.1\r\n\r\n")
    a.send(0, TAIL)
    frames = a.frames[:3] + b.frames[:3] + [a.frames[3], b.frames[3], a.frames[4]]
    path = write_pcap(tmp_path / "two.pcap", frames)
    _, n, info, _ = cooked_search(path, SIG.decode(), engine=engine, max_streams=1)
    assert n == 0 and info["streams_evicted"] >= 1
    _, n, info, _ = cooked_search(path, SIG.decode(), engine=engine, max_streams=2)
    assert n == 1 and info["streams_evicted"] == 0


# Patterns that occur often in the generated web traffic, so that some occurrences straddle a
# segment boundary; "1.1" overlaps "HTTP/1.1" (overlapping occurrences all count)
# small chunks: many cut inside an occurrence
COOK_SMALL = dict(idle_timeout="1h", chunk_size=100)
WEB_PATTERNS = [b"\r\n\r\n", b"HTTP/1.1", b"1.1", b"User-Agent: ", b"Content-Length", b"index.html",
                b"consectetur", b"adipiscing", b"lorem"]


@pytest.mark.parametrize("engine", ENGINES)
def test_chunks_passed_equal_pattern_ends_in_tshark_streams(engine):
    """On a generated trace: the chunks STR_SEARCH passes after COOKING are exactly the chunks
    in which some occurrence of a pattern ends, in the byte streams tshark reassembles."""
    path = generated("mixed.pcap")
    r = replay(path, [("COOKING", (), COOK_SMALL),
                      ("STR_SEARCH", ([p.decode() for p in WEB_PATTERNS],), dict(engine=engine))])
    passed = collections.Counter(key_of(chunk_info(p.data)) for p in r.packets)
    chunks = cooked_chunks(path)
    want, straddling = collections.Counter(), 0
    for key, runs in tshark_streams(path).items():
        assert all(gap == 0 for gap, _ in runs)        # a trace without losses
        stream = b"".join(d for _, d in runs)
        found = [(at, at + len(pat) - 1) for pat in WEB_PATTERNS for at in occurrences(stream, pat)]
        bounds = chunks.get(key, [])                   # [start, end) of each chunk's bytes
        holding = lambda offset: next(k for k, (a, b) in enumerate(bounds) if a <= offset < b)
        hits = collections.defaultdict(list)           # chunk -> where its occurrences start
        for start, end in found:
            hits[holding(end)].append(start)
        want[key] = len(hits)
        # chunks found only by what straddles into them
        straddling += sum(all(s < bounds[k][0] for s in starts) for k, starts in hits.items())
    assert +passed == +want and sum(want.values()) > 100
    assert straddling > 20, straddling                 # the case this is about did occur


def key_of(c):
    return (str(c.src), c.sport, str(c.dst), c.dport)


def occurrences(data, pat):
    at = data.find(pat)
    while at >= 0:
        yield at
        at = data.find(pat, at + 1)


def cooked_chunks(path):
    """{(src, sport, dst, dport): [(start, end) of each chunk in the direction's stream]}."""
    r = replay(path, [("COOKING", (), COOK_SMALL)])
    out = collections.defaultdict(list)
    for p in r.packets:
        c = chunk_info(p.data)
        key = key_of(c)
        start = out[key][-1][1] if out[key] else 0
        if c.data:
            out[key].append((start, start + len(c.data)))
    return out


def test_not_after_cooking_is_block_mode(tmp_path):
    path = split_by_the_other_side(tmp_path / "straddle.pcap")
    r = replay(path, [("STR_SEARCH", (SIG.decode(),), {})], buffer=False)
    assert r.results[0].value == 0 and not r.infos[0]["stream"]
    eth = [dpkt.ethernet.Ethernet(f) for _, f in dpkt.pcap.Reader(open(path, "rb"))]
    assert not any(SIG in bytes(e.data.data.data) for e in eth)
