"""Capture files as the savefile tests see them: crafting classic pcap records, reading every
record our reader delivers, and what the independent references (tcpdump --nano -w -, tshark)
deliver from the same file."""
import struct
import subprocess
from decimal import Decimal

import mapi
from mapi._engine import ffi
from mapi.batch import BatchPool
from mapi.errors import EFORMAT, ETRUNC, MapiError
from scampi.backends.savefile import SavefileSource

from helpers import need_tool

PKT = bytes(range(60))


# --- crafting ---------------------------------------------------------------------------------
def pcap_header(magic=0xA1B2C3D4, major=2, minor=4, snaplen=65535, linktype=1, order="<"):
    return struct.pack(order + "IHHiIII", magic, major, minor, 0, 0, snaplen, linktype)


def pcap_record(data, caplen=None, wirelen=None, sec=1000, frac=5, order="<", extra=b""):
    c = len(data) if caplen is None else caplen
    w = len(data) if wirelen is None else wirelen
    return struct.pack(order + "IIII", sec, frac, c, w) + extra + data


# --- reading ----------------------------------------------------------------------------------
def read_source(path, fmt=None, **options):
    """Every packet our reader delivers: ([(ts, caplen, wirelen, bytes, ifindex, linktype)], error,
    source); a MapiError at open time gives (None, error, None)."""
    try:
        src = SavefileSource(str(path), fmt, options)
    except MapiError as exc:
        return None, exc, None
    pool = BatchPool(2)
    out, err = [], None
    try:
        while True:
            b = pool.get()
            try:
                more = src.next_batch_into(b)
            except MapiError as exc:
                err = exc
                pool.put(b)
                break
            if not more:
                pool.put(b)
                break
            c = b.c
            for i in range(c.n):
                out.append((c.ts[i], c.caplen[i], c.wirelen[i],
                            ffi.buffer(c.base + c.off[i], c.caplen[i])[:], c.ifindex[i], c.linktype))
            b.release()
    finally:
        src.close()
    return out, err, src


def parse_pcap_bytes(d):
    """[(ts_ns, caplen, wirelen, bytes)] of a classic pcap in our byte order (tcpdump -w output)."""
    if len(d) < 24:
        return []
    ns = struct.unpack("<I", d[:4])[0] == 0xA1B23C4D
    pos, out = 24, []
    while pos + 16 <= len(d):
        s, f, c, w = struct.unpack("<IIII", d[pos:pos + 16])
        out.append((s * 10 ** 9 + f * (1 if ns else 1000), c, w, d[pos + 16:pos + 16 + c]))
        pos += 16 + c
    return out


def tcpdump_ref(path, expr=None, stdin=None):
    """What `tcpdump --nano -r path [expr] -w -` delivers: (records or None if it could not open
    the file, libpcap's error text or None)."""
    cmd = [need_tool("tcpdump"), "--nano", "-r", "-" if stdin is not None else str(path), "-w", "-"]
    if expr:
        cmd.append(expr)
    p = subprocess.run(cmd, input=stdin, capture_output=True, timeout=120)
    msgs = [ln for ln in p.stderr.decode(errors="replace").splitlines()
            if ln and not ln.startswith("reading from file")]
    err = None
    if msgs:
        err = msgs[-1]
        for prefix in ("tcpdump: ", "pcap_loop: "):
            if err.startswith(prefix):
                err = err[len(prefix):]
    return (parse_pcap_bytes(p.stdout) if len(p.stdout) >= 24 else None), err


def ns_of(epoch):
    """tshark's frame.time_epoch text to integer ns."""
    return int(Decimal(epoch) * 10 ** 9) if epoch else None


def tshark_ref(path):
    """[(ifindex, ts_ns or None, caplen, wirelen, bytes)] of the packets tshark reads."""
    import json
    p = subprocess.run([need_tool("tshark"), "-r", str(path), "-T", "json", "-x"],
                       capture_output=True, timeout=120)
    out = []
    for pkt in json.loads(p.stdout or b"[]"):
        layers = pkt["_source"]["layers"]
        frame = layers.get("frame", {})
        if "frame.interface_id" not in frame:
            continue                             # a non-packet block tshark shows
        raw = layers.get("frame_raw", [""])
        raw = raw[0] if isinstance(raw, list) else raw
        out.append(((int(frame.get("frame.section_number", 1)), int(frame["frame.interface_id"])),
                    ns_of(frame.get("frame.time_epoch")), int(frame["frame.cap_len"]),
                    int(frame["frame.len"]), bytes.fromhex(raw)))
    return out


def records_of(recs):
    return [r[:4] for r in recs]


def batches(path):
    """The batches our reader parses from `path`, one at a time (each valid until the next)."""
    src = SavefileSource(str(path))
    pool = BatchPool(1)
    while True:
        b = pool.get()
        if not src.next_batch_into(b):
            b.release()
            return
        yield b
        b.release()


# --- crafting pcapng blocks and ERF records --------------------------------------------------
def ng_option(code, value, order="<"):
    return struct.pack(order + "HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def ng_block(btype, body, order="<", total=None, trailer=None):
    body += b"\0" * (-len(body) % 4)
    n = 12 + len(body)
    return struct.pack(order + "II", btype, n if total is None else total) + body + \
        struct.pack(order + "I", n if trailer is None else trailer)


def ng_shb(order="<", major=1, minor=0):
    return ng_block(0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, major, minor, -1), order)


def ng_idb(linktype=1, snaplen=0, options=b"", order="<"):
    return ng_block(1, struct.pack(order + "HHI", linktype, 0, snaplen) + options, order)


def ng_epb(data, iface=0, ts=1000000, caplen=None, wirelen=None, order="<"):
    c = len(data) if caplen is None else caplen
    w = len(data) if wirelen is None else wirelen
    return ng_block(6, struct.pack(order + "IIIII", iface, ts >> 32, ts & 0xFFFFFFFF, c, w) + data,
                    order)


def ng_spb(data, wirelen=None, order="<"):
    return ng_block(3, struct.pack(order + "I", len(data) if wirelen is None else wirelen) + data,
                    order)


def ng_pb(data, iface=0, ts=1000000, order="<"):
    return ng_block(2, struct.pack(order + "HHIIII", iface, 0, ts >> 32, ts & 0xFFFFFFFF,
                                   len(data), len(data)) + data, order)


def erf_record(data, sec=1600000000, frac=0, rtype=2, flags=0x04, lctr=0, wlen=None, ext=(),
               rlen=None):
    """An ERF record; Ethernet types get their 2-byte pad; ext: 8-byte extension headers."""
    pad = b"\0\0" if rtype in (2, 11, 16, 20) else b""
    exts = b"".join(bytes([e[0] | (0x80 if i < len(ext) - 1 else 0)]) + e[1:]
                    for i, e in enumerate(ext))
    body = exts + pad + data
    n = 16 + len(body) if rlen is None else rlen
    w = len(data) + (4 if pad else 0) if wlen is None else wlen
    return struct.pack("<Q", (sec << 32) | frac) + bytes([rtype | (0x80 if ext else 0), flags]) + \
        struct.pack(">HHH", n, lctr, w) + body


def ng_interface_numbers(data):
    """{(section number, interface id in it): interface number in the file} of a pcapng file
    (our ifindex numbers interfaces across sections; tshark numbers them per section)."""
    numbers, pos, section, ids, order = {}, 0, 0, 0, "<"
    while pos + 12 <= len(data):
        if data[pos:pos + 4] == b"\x0a\x0d\x0d\x0a":
            order = "<" if data[pos + 8:pos + 12] == b"\x4d\x3c\x2b\x1a" else ">"
            section, ids = section + 1, 0
        btype = struct.unpack(order + "I", data[pos:pos + 4])[0]
        blen = struct.unpack(order + "I", data[pos + 4:pos + 8])[0]
        if btype == 1:
            numbers[(section, ids)] = len(numbers)
            ids += 1
        pos += blen
    return numbers


# --- comparing and counting ------------------------------------------------------------------
def assert_same_as_tcpdump(path, fmt=None, **options):
    ref, ref_err = tcpdump_ref(path)
    recs, err, _ = read_source(path, fmt, **options)
    if ref is None:                              # libpcap refuses the file at open time
        assert recs is None, "tcpdump cannot open %s (%s) but we read it" % (path, ref_err)
    else:
        assert recs is not None, "we cannot open %s: %s" % (path, err)
        assert records_of(recs) == ref
    if ref_err is None:
        assert err is None
    else:
        assert err is not None, "tcpdump reports %r, we report nothing" % ref_err
        assert err.where["pcap_error"] == ref_err
        assert err.code == (ETRUNC if ref_err.startswith("truncated") else EFORMAT)
        assert err.where["file"] == str(path) and isinstance(err.where["offset"], int)
        assert str(path) in str(err) and "offset" in str(err)
    return recs, err


def count_offline(path, **options):
    """PKT_COUNTER over a whole offline device: (count, device info, device stats)."""
    dev = mapi.create_offline_device(str(path), **options)
    try:
        fd = mapi.create_flow(dev)
        cnt = mapi.apply_function(fd, "PKT_COUNTER")
        mapi.connect(fd)
        mapi.start_offline_device(dev)
        mapi.wait_offline_device(dev)
        return mapi.read_results(fd, cnt).value, mapi.get_device_info(dev), mapi.stats(dev)
    finally:
        mapi.delete_offline_device(dev)
