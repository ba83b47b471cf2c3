"""get_next_pkt over a TO_BUFFER ring takes a stretch of records at a time and hands its
packets out one by one: every packet still arrives once, in order, with its bytes and time
(against the file's own records, read here with struct), and what was taken but not handed out
yet is neither counted as delivered nor lost to drain()."""
import struct

import pytest

import mapi
from mapi import ring

PACKETS = 3000


@pytest.fixture(scope="module")
def trace(tmp_path_factory):
    from tools.gentrace import write_trace
    path = str(tmp_path_factory.mktemp("ring") / "t.pcap")
    write_trace(path, PACKETS, seed=5)
    return path, pcap_records(path)


def pcap_records(path):
    """[(ts in ns, bytes)] of a little-endian pcap file (micro- or nanosecond)."""
    with open(path, "rb") as f:
        blob = f.read()
    magic = struct.unpack_from("<I", blob)[0]
    assert magic in (0xA1B2C3D4, 0xA1B23C4D), hex(magic)
    scale = 1000 if magic == 0xA1B2C3D4 else 1
    out, off = [], 24
    while off < len(blob):
        sec, frac, incl, _ = struct.unpack_from("<IIII", blob, off)
        out.append((sec * 10**9 + frac * scale, blob[off + 16:off + 16 + incl]))
        off += 16 + incl
    return out


def open_buffer(path, size=1 << 20):
    """A lossless TO_BUFFER of `size` bytes (1 MiB: the least, so a take is capped by the ring)
    on a started replay of `path`."""
    dev = mapi.create_offline_device(path)
    fd = mapi.create_flow(dev)
    buf = mapi.apply_function(fd, "TO_BUFFER", mapi.WAIT, size)
    mapi.connect(fd)
    mapi.start_offline_device(dev)
    return dev, fd, buf


def test_every_packet_once_in_order(trace):
    path, ref = trace
    dev, fd, buf = open_buffer(path)
    got = []
    while True:
        p = mapi.get_next_pkt(fd, buf)
        if p is None:
            break
        got.append((p.ts, p.data))
        assert p.caplen == len(p.data)
    mapi.wait_offline_device(dev)
    assert len(got) == len(ref) == PACKETS
    assert got == ref
    stats = mapi.read_results(fd, buf).value
    assert stats["delivered"] == PACKETS and stats["dropped"] == 0
    mapi.close_flow(fd)
    mapi.delete_offline_device(dev)


def test_taken_packets_are_not_delivered_yet_and_drain_counts_them(trace):
    path, ref = trace
    dev, fd, buf = open_buffer(path)
    first = [mapi.get_next_pkt(fd, buf) for _ in range(5)]
    assert [p.data for p in first] == [data for _, data in ref[:5]]
    # the first take held more than five packets, yet the application has seen five
    assert len(mapi.api.function_instance(fd, buf).reader.taken) > 0
    assert mapi.read_results(fd, buf).value["delivered"] == 5
    n, nbytes = mapi.api.function_instance(fd, buf).drain_all()
    mapi.wait_offline_device(dev)
    assert 5 + n == PACKETS
    assert sum(len(p.data) for p in first) + nbytes == sum(len(data) for _, data in ref)
    assert mapi.read_results(fd, buf).value["delivered"] == PACKETS
    mapi.close_flow(fd)
    mapi.delete_offline_device(dev)


def test_a_take_is_capped_by_a_quarter_of_the_ring(trace):
    """A lossless writer waits for the room taken records hold until the next take: a take
    never holds more than a quarter of a small ring."""
    path, _ = trace
    dev, fd, buf = open_buffer(path)
    reader = mapi.api.function_instance(fd, buf).reader
    assert reader.span_bytes == (1 << 20) // 4 < ring.SPAN_BYTES
    assert mapi.get_next_pkt(fd, buf) is not None
    held = sum(ring.HDR.size + p.caplen for p in reader.taken)
    assert 0 < held <= reader.span_bytes
    assert len(reader.taken) < ring.SPAN_PACKETS
    reader.drain_all()
    mapi.wait_offline_device(dev)
    mapi.close_flow(fd)
    mapi.delete_offline_device(dev)
