"""Capture files as the savefile tests see them: crafting classic pcap records, reading every
record our reader delivers, and what the independent references (tcpdump --nano -w -, tshark)
deliver from the same file."""
import struct
import subprocess
from decimal import Decimal

from mapi._engine import ffi
from mapi.batch import BatchPool
from mapi.errors import MapiError
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
