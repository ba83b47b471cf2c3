"""TCP stream reassembly as the tests compare it: COOKING's chunks of a capture, and the
independent references -- tshark's follow streams and tcpflow's per-direction files."""
import collections
import re
import subprocess

from . import need_tool, replay

SEP = "===================================================================\n"
MISSING = re.compile(rb"\[(\d+) bytes missing in capture file\]\x00?")


def cooked(path, **kw):
    """Our chunks of `path`, grouped: {(connection, direction): [Chunk]}, and the counters."""
    from scampi.plugins.stdfuncs.cooking import chunk_info
    r = replay(path, [("COOKING", (), kw)])
    out = collections.defaultdict(list)
    for p in r.packets:
        assert p.linktype == 101
        c = chunk_info(p.data)
        out[(c.connection, c.direction)].append(c)
    return out, r.results[0].value


def runs(chunks):
    """The stream as [(bytes missing before, contiguous bytes)], from the chunks' seq numbers."""
    out, nxt = [], None
    for c in chunks:
        gap = 0 if nxt is None else (c.seq - nxt) & 0xFFFFFFFF
        if not out or gap:
            out.append([gap, bytearray()])
        out[-1][1] += c.data
        nxt = (c.seq + len(c.data)) & 0xFFFFFFFF
    return [(g, bytes(d)) for g, d in out if d or g]


def tshark_runs(lines):
    """tshark's follow output of one direction as runs; it marks lost bytes with a text line."""
    out = [[0, bytearray()]]
    for raw in lines:
        m = MISSING.fullmatch(raw)
        if m:
            out.append([int(m.group(1)), bytearray()])
        else:
            out[-1][1] += raw
    return [(g, bytes(d)) for g, d in out if d or g]


def tshark_follow(path):
    """tshark's reassembled bytes per stream: [((addr, port) of node 0, of node 1), runs of
    node 0's bytes, runs of node 1's]."""
    tshark = need_tool("tshark")
    ids = subprocess.run([tshark, "-r", str(path), "-Y", "tcp", "-T", "fields", "-e", "tcp.stream"],
                         capture_output=True, text=True, timeout=300).stdout.split()
    if not ids:
        return []
    args = [tshark, "-r", str(path), "-q"]
    for i in range(int(max(ids, key=int)) + 1):
        args += ["-z", "follow,tcp,raw,%d" % i]
    out = subprocess.run(args, capture_output=True, text=True, timeout=600).stdout
    streams = []
    for block in out.split(SEP + "Follow: tcp,raw\n")[1:]:
        lines = block.split("\n")
        nodes = [lines[k].split(": ", 1)[1].rsplit(":", 1) for k in (1, 2)]
        data = [[], []]
        for ln in lines[3:]:
            if ln.startswith("===="):
                break
            if ln.strip():
                data[1 if ln.startswith("\t") else 0].append(bytes.fromhex(ln.strip()))
        streams.append(([(n[0].strip("[]"), int(n[1])) for n in nodes], tshark_runs(data[0]),
                        tshark_runs(data[1])))
    return streams


def tshark_streams(path):
    """{(src, sport, dst, dport): runs} of every direction tshark follows (each four-tuple once)."""
    out = {}
    for nodes, d0, d1 in tshark_follow(path):
        for (a, b), data in (((0, 1), d0), ((1, 0), d1)):
            key = tuple(nodes[a]) + tuple(nodes[b])
            assert key not in out, "a four-tuple used by two connections: %s" % (key,)
            out[key] = data
    return out


def assert_streams_equal_tshark(path, name, quirks=(), **cooking):
    """Every direction of every TCP connection: our bytes equal what tshark's follow stream gives,
    and where the capture lost bytes, both skip the same number of them.  `quirks`: (name,
    (addr, port) of the sender, of the receiver) where tshark is known wrong.  Returns how many
    directions were compared (None: the capture has no TCP).  `cooking`: COOKING's arguments."""
    ref = tshark_follow(path)
    if not ref:
        return None
    ours, stats = cooked(path, idle_timeout="1h", **cooking)   # the references have no idle timeout
    # our connections by endpoint pair, in creation order (as tshark numbers its streams)
    by_pair = collections.defaultdict(list)
    for (conn, d), chunks in sorted(ours.items()):
        c = chunks[0]
        ends = ((str(c.src), c.sport), (str(c.dst), c.dport))
        key = frozenset(ends)
        if conn not in [x[0] for x in by_pair[key]]:
            by_pair[key].append((conn, ends if d == 0 else ends[::-1]))
    seen = collections.Counter()
    compared = 0
    for nodes, d0, d1 in ref:
        key = frozenset(map(tuple, nodes))
        if not d0 and not d1:
            continue
        k = seen[key]
        seen[key] += 1
        conns = by_pair.get(key, [])
        assert k < len(conns), "%s: tshark stream %s has data, COOKING made no connection" % (name, nodes)
        conn, (opener, _) = conns[k]
        for node, ref_data in ((nodes[0], d0), (nodes[1], d1)):
            direction = 0 if tuple(node) == opener else 1
            mine = runs(ours.get((conn, direction), []))
            other = tuple(nodes[1 - nodes.index(node)])
            if (name, tuple(node), other) in quirks:
                continue
            # tshark never hands out bytes still waiting after a hole when the capture ends;
            # COOKING does, at the end of the stream (counted as a gap)
            tail = mine[len(ref_data):]
            assert mine[:len(ref_data)] == ref_data and all(g for g, _ in tail), \
                "%s %s from %s: runs %s, tshark %s" % (name, nodes, node, [(g, len(d)) for g, d in mine],
                                                       [(g, len(d)) for g, d in ref_data])
            compared += 1
    assert stats["bytes"] >= sum(len(d) for _, r0, r1 in ref for _, d in r0 + r1)
    return compared


def tcpflow_files(path, tmp_path):
    out = tmp_path / "tcpflow"
    out.mkdir()
    subprocess.run([need_tool("tcpflow"), "-r", str(path), "-o", str(out)], capture_output=True,
                   timeout=300, check=True)
    return {f.name: f.read_bytes() for f in out.iterdir() if f.suffix != ".xml"}


def tcpflow_name(addr, port):
    if ":" in addr:
        return "%s.%05d" % (addr, port)
    return "%s.%05d" % (".".join("%03d" % int(x) for x in addr.split(".")), port)


def assert_streams_equal_tcpflow(path, tmp_path, plain=None, **cooking):
    """tcpflow writes each direction's bytes at their stream offset (holes stay zero): our
    chunks, placed by their sequence numbers, give the same file, holes included (traces whose
    data segments carry Ethernet padding are left to tshark: tcpflow writes the padding as
    stream bytes).  `plain`: the same capture for tcpflow when `path` is compressed; `cooking`:
    COOKING's arguments.  Returns COOKING's counters."""
    files = tcpflow_files(plain or path, tmp_path)
    ours, stats = cooked(path, idle_timeout="1h", **cooking)
    matched = 0
    for (conn, d), chunks in ours.items():
        data = b"".join(c.data for c in chunks)
        c0 = chunks[0]
        fname = tcpflow_name(str(c0.src), c0.sport) + "-" + tcpflow_name(str(c0.dst), c0.dport)
        ref = files.get(fname)
        if not data or ref is None:
            assert not data, "tcpflow has no %s (%d bytes here)" % (fname, len(data))
            continue
        first = next(c for c in chunks if c.data)
        pos = ref.find(first.data)
        assert pos >= 0, fname
        base = (first.seq - pos) & 0xFFFFFFFF
        image = bytearray()
        for c in chunks:
            o = (c.seq - base) & 0xFFFFFFFF
            image += bytes(max(0, o - len(image)))
            image[o:o + len(c.data)] = c.data
        # tcpflow writes a frame's Ethernet padding as stream bytes: the padding of a pure ACK
        # after the last data stays at the end of its file (up to 6 zero bytes)
        extra = ref[len(image):]
        assert ref[:len(image)] == bytes(image) and len(extra) <= 6 and not extra.strip(b"\0"), fname
        matched += 1
    # a late segment after the close makes tcpflow open a new file of its Ethernet padding
    padding = [f for f, v in files.items() if len(v) <= 6 and not v.strip(b"\0")]
    assert matched == len([f for f, v in files.items() if v and f not in padding])
    return stats
