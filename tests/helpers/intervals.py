"""Packet time in intervals, as the watching functions (BUCKET, DIST, STATS, THRESHOLD, the
meters) see it, computed from tcpdump's record lists.

The reference is the pcap `tcpdump --time-stamp-precision=nano -r FILE -w - EXPR` writes,
parsed here record header by record header (exact ns timestamps and wire lengths).  Intervals
of packet time start at the first packet of the trace (the device's first tick origin): interval
k holds the packets with t0 + k*I <= ts < t0 + (k+1)*I."""
import struct
import subprocess

import mapi

from helpers import need_tool

S = 10 ** 9


def tcpdump_index(path, expr=""):
    """[(ts_ns, wirelen)] of the records tcpdump selects, from the pcap it writes."""
    cmd = [need_tool("tcpdump"), "--time-stamp-precision=nano", "-r", str(path), "-w", "-"]
    out = subprocess.run(cmd + ([expr] if expr else []), capture_output=True, timeout=120)
    data = out.stdout
    assert len(data) >= 24, out.stderr.decode(errors="replace")
    magic = data[:4]
    endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    frac = 1 if magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d") else 1000
    rec = struct.Struct(endian + "IIII")
    records, pos = [], 24
    while pos + 16 <= len(data):
        sec, sub, incl, orig = rec.unpack_from(data, pos)
        records.append((sec * S + sub * frac, orig))
        pos += 16 + incl
    assert pos == len(data)
    return records


def selected(path, expr=""):
    """[(index among all records, ts_ns, wirelen)] of the records tcpdump selects with EXPR."""
    every = tcpdump_index(path)
    chosen = iter(tcpdump_index(path, expr) if expr else every)
    want = next(chosen, None)
    out = []
    for i, rec in enumerate(every):
        if rec == want:                  # the selected records are a subsequence of all of them
            out.append((i,) + rec)
            want = next(chosen, None)
    assert want is None
    return out


def packet_intervals(path, interval):
    """(interval index of every record, t0).  Packet time only moves forward, as the device
    sees it: interval k starts when the first record stamped at or after t0 + k*interval comes,
    and a record stamped earlier than its predecessor counts where the stream is."""
    every = tcpdump_index(path)
    t0 = every[0][0]
    k, out = 0, []
    for ts, _ in every:
        if ts >= t0 + (k + 1) * interval:
            k = (ts - t0) // interval
        out.append(k)
    return out, t0


def interval_sums(path, interval, expr="", weight=lambda r: 1):
    """({k: sum of weight((ts, wirelen)) over the selected records of interval k}, number of
    intervals up to the last packet's, t0)."""
    ks, t0 = packet_intervals(path, interval)
    sums = {}
    for i, ts, wl in selected(path, expr):
        sums[ks[i]] = sums.get(ks[i], 0) + weight((ts, wl))
    return sums, ks[-1] + 1, t0


def counter_flow(dev, expr="", fn="PKT_COUNTER"):
    fd = mapi.create_flow(dev)
    if expr:
        mapi.apply_function(fd, "BPF_FILTER", expr)
    fid = mapi.apply_function(fd, fn)
    mapi.connect(fd)
    return fd, fid
