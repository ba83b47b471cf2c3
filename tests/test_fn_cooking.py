"""COOKING: TCP stream reassembly, against tshark's and tcpflow's reassembly of generated traces
(with retransmitted, reordered and overlapping segments; over several batches) and of the
corpus, and hand-built connections (retransmissions, reordering, overlaps, wrap, limits,
timeouts)."""
import gzip
import shutil
import subprocess

import dpkt
import pytest

import mapi
from helpers import CORPUS, generated, inputs, need_tool, parametrize_from_corpus, replay
from helpers.pktbuild import Conversation, assert_rejected, ether, tcp4, write_pcap
from helpers.reassembly import assert_streams_equal_tcpflow, assert_streams_equal_tshark, cooked
from scampi.backends.savefile.streams import BUFFERS
from scampi.plugins.stdfuncs.cooking import chunk_info

PCAP = CORPUS / "pcap"
A = dpkt.tcp.TH_ACK | dpkt.tcp.TH_PUSH
# generated TCP: mixed traffic, IPv4 TCP only, and IPv4/IPv6 TCP with retransmitted, reordered
# and overlapping segments
GENERATED = ["mixed.pcap", "tcp4.pcap", "tcp-impaired.pcap"]


# TCP that mapi_hdr_parse does not reach (COOKING reassembles TCP right over IP after the link
# layers it knows): over AH/IPComp, inside Geneve tunnels.  IP fragments need DEFRAG first.
NOT_REACHED = {"libpcap__AH-IPcomp-IPv4.pcap": "TCP inside AH and IPComp",
               "libpcap__geneve.pcap": "TCP inside Geneve tunnels"}


# Directions where tshark's follow is wrong and tcpflow (test_corpus_streams_equal_tcpflow_files,
# which covers this trace) agrees with COOKING: tshark takes frame 3750, which fills a hole, for a
# retransmission and marks its 580 captured bytes as missing.
TSHARK_QUIRKS = {("PcapPlusPlus__tls2.pcap", ("216.58.194.162", 443), ("192.168.0.17", 49808))}


def corpus_traces():
    """The corpus's captures without IP fragments (read at collection, when the corpus is there)."""
    out = []
    for p in sorted(PCAP.iterdir()):
        if p.suffix not in (".pcap", ".pcapng") or "defrag" in p.name:
            continue
        why = NOT_REACHED.get(p.name)
        out.append(pytest.param(p.name, marks=pytest.mark.skip(reason=why)) if why else p.name)
    return out


@pytest.mark.parametrize("name", GENERATED)
@pytest.mark.parametrize("release", ["segment", "conversation"])
def test_streams_equal_tshark_follow(name, release):
    """Every direction of every TCP connection: our bytes, however released, equal what
    tshark's follow stream gives."""
    path = generated(name)
    assert assert_streams_equal_tshark(path, name, release=release) > 50
    if name == "tcp-impaired.pcap":                    # the impairments reached COOKING
        st = cooked(path, release=release)[1]
        assert min(st["duplicates"], st["overlaps"], st["out_of_order"]) > 20 and st["gaps"] == 0


@parametrize_from_corpus("name", corpus_traces)
def test_corpus_streams_equal_tshark_follow(name):
    """The same on the corpus; where a capture lost bytes, both skip the same number of them."""
    compared = assert_streams_equal_tshark(PCAP / name, name, TSHARK_QUIRKS)
    if compared is None:
        pytest.skip("%s has no TCP" % name)
    if not compared:
        pytest.skip("%s: no TCP payload" % name)


@pytest.mark.parametrize("path", inputs([generated(n) for n in GENERATED] +
                                        ["PcapPlusPlus__4KHttpRequests.pcap", "zeek__ssh__ssh.pcap",
                                         "PcapPlusPlus__tls2.pcap", "zeek__tls__tls-1.2-stream-keylog.pcap"],
                                        base="pcap"))
def test_streams_equal_tcpflow_files(path, tmp_path):
    """tcpflow's files, holes included."""
    stats = assert_streams_equal_tcpflow(path, tmp_path)
    if str(path).endswith("4KHttpRequests.pcap"):
        assert stats["gaps"] > 0          # this capture lost segments: holes were compared too


@pytest.mark.parametrize("release", ["segment", "conversation"])
def test_many_batches_in_reused_buffers(release, tmp_path):
    """A compressed trace is read into a few buffers that are reused batch after batch: what
    COOKING still holds when a batch goes back (in conversation order, most of it) must have
    been copied out, or the streams would hold bytes of later packets."""
    path = generated("mixed-40k.pcap")
    gz = tmp_path / "mixed-40k.pcap.gz"
    with open(path, "rb") as src, gzip.open(gz, "wb", compresslevel=1) as dst:
        shutil.copyfileobj(src, dst)
    dev = mapi.create_offline_device(str(gz))
    fd = mapi.create_flow(dev)
    mapi.apply_function(fd, "PKT_COUNTER")
    mapi.connect(fd)
    mapi.start_offline_device(dev)
    mapi.wait_offline_device(dev, 120)
    batches = mapi.get_device_info(dev)["batches"]
    mapi.delete_offline_device(dev)
    assert batches > BUFFERS                          # more batches than the reader has buffers
    stats = assert_streams_equal_tcpflow(gz, tmp_path, plain=path, release=release)
    assert stats["chunks"] > 1000


def signature_trace(path, reorder=False, retransmit=False):
    conv = Conversation().handshake()
    sig = b"evil-signature-XYZ"
    first, second = b"GET /?q=" + sig[:8], sig[8:] + b" HTTP/1.1\r\n\r\n"
    if reorder:
        conv.send(0, second, seq=conv.next[0] + len(first))
        conv.send(0, first)
        conv.next[0] += len(second)
    else:
        conv.send(0, first)
        if retransmit:                      # the first part again, with other bytes: ignored
            conv.send(0, b"GET /?q=XXXXXXXX", seq=conv.next[0] - len(first))
        conv.send(0, second)
    conv.send(1, b"HTTP/1.1 200 OK\r\n\r\n")
    conv.close()
    return write_pcap(path, conv.frames), sig


REQUEST = b"GET /?q=evil-signature-XYZ HTTP/1.1\r\n\r\n"


@pytest.mark.parametrize("release", ["segment", "conversation"])
@pytest.mark.parametrize("variant", ["in order", "reordered", "retransmitted"])
def test_signature_split_across_segments(variant, release, tmp_path):
    path, sig = signature_trace(tmp_path / "split.pcap", reorder=variant == "reordered",
                                retransmit=variant == "retransmitted")
    alone = replay(path, [("STR_SEARCH", (sig.decode(),), {})], buffer=False)
    assert alone.results[0].value == 0
    both = replay(path, [("COOKING", (), dict(release=release)), ("STR_SEARCH", (sig.decode(),), {})])
    assert both.results[1].value == 1
    hit = chunk_info(both.packets[0].data)
    assert hit.direction == 0 and hit.dport == 80
    # the chunk the signature ends in: the whole request when its segments were coalesced (or
    # the second came first and waited), else the second segment
    whole = release == "conversation" or variant == "reordered"
    assert hit.data == (REQUEST if whole else REQUEST[len(b"GET /?q=evil-sig"):])
    stats = both.results[0].value
    assert stats["out_of_order"] == (1 if variant == "reordered" else 0)
    assert stats["duplicates"] == (1 if variant == "retransmitted" else 0)
    # conversation: request, FIN, reply with the FIN; segment: request (1 or 2), FIN, reply, FIN
    assert stats["chunks"] == (3 if release == "conversation" else 4 if variant == "reordered" else 5)


@pytest.mark.parametrize("release", ["segment", "conversation"])
def test_chunks_written_are_ip_that_tshark_checks(release, tmp_path):
    """Every chunk of an IPv4/IPv6 trace, written by TO_FILE: tshark finds IP and TCP checksums
    right, nothing malformed, and the payload bytes COOKING counted."""
    out = tmp_path / "chunks.pcap"
    r = replay(generated("tcp-impaired.pcap"), [("COOKING", (), dict(release=release)),
                                                ("TO_FILE", (mapi.MFF_PCAP, str(out)), {})], buffer=False)
    st = r.results[0].value
    rows = [ln.split("|") for ln in subprocess.run(
        [need_tool("tshark"), "-r", str(out), "-o", "tcp.check_checksum:TRUE", "-o", "ip.check_checksum:TRUE",
         "-T", "fields", "-E", "separator=|", "-e", "ip.version", "-e", "ipv6.version", "-e", "ip.checksum.status",
         "-e", "tcp.checksum.status", "-e", "tcp.len", "-e", "_ws.malformed"],
        capture_output=True, text=True, timeout=300).stdout.splitlines()]
    assert len(rows) == st["chunks"] == r.results[1].value["packets"]
    assert {r[0] or r[1] for r in rows} == {"4", "6"}
    assert all(r[3] == "1" and r[2] in ("1", "") and not r[5] for r in rows)
    assert all(r[2] == "1" for r in rows if r[0] == "4")
    assert sum(int(r[4]) for r in rows) == st["bytes"]


def test_regexp_and_to_file_after_cooking(tmp_path):
    path, sig = signature_trace(tmp_path / "split.pcap", reorder=True)
    out = tmp_path / "chunks.pcap"
    r = replay(path, [("COOKING", (), {}), ("REGEXP", (r"evil-sig\w+-XYZ",), {}),
                      ("TO_FILE", (mapi.MFF_PCAP, str(out)), {})])
    assert r.results[1].value == 1 and r.results[2].value["packets"] == 1
    reader = dpkt.pcap.Reader(open(out, "rb"))
    assert reader.datalink() == 101
    tshark = need_tool("tshark")
    text = subprocess.run([tshark, "-r", str(out), "-o", "tcp.check_checksum:TRUE", "-o", "ip.check_checksum:TRUE", "-T", "fields",
                           "-e", "tcp.checksum.status", "-e", "ip.checksum.status", "-e", "tcp.payload",
                           "-e", "_ws.malformed"], capture_output=True, text=True).stdout.split()
    assert text[:2] == ["1", "1"]            # both checksums "good"
    assert bytes.fromhex(text[2].replace(":", "")) == b"GET /?q=evil-signature-XYZ HTTP/1.1\r\n\r\n"


@pytest.mark.parametrize("release,found", [("conversation", 1), ("segment", 0)])
def test_regexp_sees_whole_messages_in_conversation_order(release, found, tmp_path):
    """REGEXP looks at one chunk at a time: the request's two in-order segments are one chunk
    when released in conversation order, two (each without the whole pattern) otherwise."""
    path, sig = signature_trace(tmp_path / "split.pcap")
    r = replay(path, [("COOKING", (), dict(release=release)), ("REGEXP", (r"evil-sig\w+-XYZ",), {})],
               buffer=False)
    assert r.results[1].value == found


def test_sequence_wrap_reorder_and_overlap_first_wins(tmp_path):
    conv = Conversation(isn=(0xFFFFFFF0, 0x7FFFFFFF)).handshake()
    s0 = conv.next[0]
    conv.send(0, b"CCCCCCCC", seq=s0 + 24)             # out of order, across the wrap
    conv.send(0, b"BBBBBBBBxxxx", seq=s0 + 8)          # its last 4 bytes overlap nothing yet
    conv.send(0, b"bbbbbbbbbbbbbbbb", seq=s0 + 8)      # overlaps held bytes: the first ones win
    conv.send(0, b"AAAAAAAA", seq=s0)                  # closes the gap
    conv.send(0, b"aaaa", seq=s0)                      # a retransmission of delivered bytes
    conv.next[0] = s0 + 32
    conv.send(1, b"ok")
    conv.close()
    ours, st = cooked(write_pcap(tmp_path / "wrap.pcap", conv.frames))
    data = b"".join(c.data for c in ours[(0, 0)])
    assert data == b"AAAAAAAABBBBBBBBxxxxbbbbCCCCCCCC"
    assert [c.flags & 1 for c in ours[(0, 0)]][-1] == 1        # FIN on the last chunk
    assert ours[(0, 0)][0].seq == (0xFFFFFFF0 + 1) & 0xFFFFFFFF
    assert st["overlaps"] == 1 and st["duplicates"] == 1 and st["out_of_order"] == 3
    assert st["gaps"] == 0 and st["bytes"] == 34


def test_end_of_stream_releases_held_data_and_counts_gaps(tmp_path):
    conv = Conversation().handshake()
    conv.send(0, b"first")
    conv.send(0, b"after-a-hole", seq=conv.next[0] + 100)        # never filled, no FIN
    ours, st = cooked(write_pcap(tmp_path / "hole.pcap", conv.frames))
    assert [c.data for c in ours[(0, 0)]] == [b"first", b"after-a-hole"]
    assert ours[(0, 0)][1].seq == conv.next[0] + 100
    assert st["gaps"] == 1 and st["gap_bytes"] == 100 and st["held_bytes"] == 0 and st["active"] == 0


def test_connection_limit_flushes_the_oldest(tmp_path):
    frames = []
    convs = [Conversation(client=("10.0.0.1", 40000 + i)).handshake() for i in range(5)]
    for i, conv in enumerate(convs):
        conv.send(0, b"request %d" % i)
    for conv in convs:
        frames += conv.frames
    ours, st = cooked(write_pcap(tmp_path / "many.pcap", frames), max_connections=2)
    assert st["flushed"] == 3 and st["connections"] == 5
    got = sorted(b"".join(c.data for c in v) for v in ours.values())
    assert got == sorted(b"request %d" % i for i in range(5))   # flushed data is handed on


@pytest.mark.parametrize("release", ["segment", "conversation"])
def test_timeouts_on_packet_time(release, tmp_path):
    conv = Conversation().handshake()
    conv.send(0, b"hello")
    frames = [(1700000000.0 + i * 0.001, f) for i, f in enumerate(conv.frames)]
    later = Conversation(client=("10.0.0.9", 1234))
    later.send(0, b"much later")
    frames.append((1700000300.0, later.frames[0]))
    conv.send(0, b"late bytes")                      # the first connection again, after idle
    frames.append((1700000300.001, conv.frames[-1]))
    path = write_pcap(tmp_path / "idle.pcap", frames)
    r = replay(path, [("COOKING", (), dict(idle_timeout="60s", release=release))])
    st = r.results[0].value
    assert st["idle_expired"] == 1 and st["connections"] == 3
    chunks = [chunk_info(p.data) for p in r.packets]
    assert [c.data for c in chunks] == [b"hello", b"much later", b"late bytes"]
    if release == "conversation":            # it waited: released when time passed the timeout
        assert r.packets[0].ts == 1700000300 * 10 ** 9
    else:                                    # handed on with the segment that brought it
        assert r.packets[0].ts == 1700000000003 * 10 ** 6


def test_bad_arguments():
    assert_rejected(generated("mixed.pcap"), "COOKING",
                    [((), dict(chunk_size=70000), "chunk_size"), ((), dict(idle_timeout="soon"), "idle_timeout"),
                     ((), dict(max_bytes=10), "max_bytes"), ((), dict(release="eager"), "release")])


def test_more_chunks_at_the_end_than_a_batch_holds(tmp_path):
    """66,000 connections each holding bytes when the stream ends: the end releases them all,
    over several batches (a producer's batch holds 65,536)."""

    n = 66000
    frames = [ether(tcp4("10.%d.%d.1" % (i >> 8 & 255, i & 255), "10.0.0.2", 1024 + (i >> 16), 80,
                         1000, A, b"%06d" % i)) for i in range(n)]
    r = replay(write_pcap(tmp_path / "many.pcap", frames, step=1e-6), [("COOKING", (), {})])
    st = r.results[0].value
    assert st["connections"] == n and st["chunks"] == n and st["active"] == 0
    # (the IPv4 identification holds the low 15 bits of the connection number)
    chunks = [chunk_info(p.data) for p in r.packets]
    assert sorted(c.data for c in chunks) == [b"%06d" % i for i in range(n)]
    assert len({(c.src, c.sport) for c in chunks}) == n


def test_derived_batch_shared_by_flows_and_watched(tmp_path):
    """The engine side: two flows asking for the same COOKING share it (one node, its batch read
    by both subtrees); a THRESHOLD in a third flow follows a counter that counts chunks; the
    end of the stream drains what COOKING still holds into every subtree."""
    path, sig = signature_trace(tmp_path / "split.pcap")
    dev = mapi.create_offline_device(str(path))
    try:
        a, b = mapi.create_flow(dev), mapi.create_flow(dev)
        ca = [mapi.apply_function(a, "COOKING", release="conversation"),
              mapi.apply_function(a, "PKT_COUNTER")]
        cb = [mapi.apply_function(b, "COOKING", release="conversation"),
              mapi.apply_function(b, "STR_SEARCH", sig.decode()),
              mapi.apply_function(b, "BYTE_COUNTER")]
        mapi.connect(a)
        mapi.connect(b)
        w = mapi.create_flow(dev)
        th = mapi.apply_function(w, "THRESHOLD", mapi.GREATER, (a, ca[1]), 1)
        mapi.connect(w)
        events = []
        mapi.set_event_callback(w, th, lambda ev: events.append(ev.value))
        assert mapi.get_function_info(b, cb[0])["shared_with"] == [a]
        mapi.start_offline_device(dev)
        mapi.wait_offline_device(dev, 30)
        chunks = mapi.read_results(a, ca[1]).value
        # the request, the client's FIN (empty), the reply ending with the server's FIN
        assert chunks == mapi.read_results(a, ca[0]).value["chunks"] == 3
        assert mapi.read_results(b, cb[1]).value == 1
        assert mapi.read_results(b, cb[2]).value == 40 + len(b"GET /?q=evil-signature-XYZ HTTP/1.1\r\n\r\n")
        assert events and events[0] == 2
        text = mapi.explain(dev)
        assert "in 9 out 3 (33.3%)" in text         # packets in, chunks out
    finally:
        mapi.delete_offline_device(dev)


def test_copy_and_checksum_sum_equal_rfc1071():
    """The one-pass copy and sum the chunks' TCP checksums come from (vector blocks, then the
    tail) equals RFC 1071's sum computed word by word here, at every length and alignment
    around the block sizes, and copies every byte."""
    import random
    from mapi._engine import ffi, lib
    rng = random.Random(7)
    src = bytes(rng.randrange(256) for _ in range(4200))
    for n in list(range(0, 200)) + [255, 256, 257, 1459, 1460, 4095, 4096, 4097]:
        for at in (0, 1, 3):
            data = src[at:at + n]
            padded = data + b"\0" * (n & 1)
            ref = sum(padded[k] << 8 | padded[k + 1] for k in range(0, len(padded), 2))
            dst = ffi.new("uint8_t[]", n + 1)
            got = lib.mapi_csum_copy(dst, src[at:at + n], n)
            assert bytes(ffi.buffer(dst, n)) == data
            assert lib.mapi_csum_fold(got) == lib.mapi_csum_fold(ref), (n, at)
            assert lib.mapi_csum_fold(lib.mapi_csum_add(0, data, n)) == lib.mapi_csum_fold(ref)
