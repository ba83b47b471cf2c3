"""The client side of a remote TO_BUFFER stream, without a server: batches in mapid's wire
layout (records as the shared ring lays them out, built here by hand) are read as packets,
drained to the end, and a broken stream fails the reader instead of leaving it waiting."""
import struct
import threading
import time

import pytest

from mapi.client.grpc_packets import StreamReader, read_batch
from mapi.constants import WAIT
from mapi.errors import MapiError
from mapi.proto import pb
from mapi.server.remote.packets import wire_batch, wire_end

HDR = struct.Struct("<qIIQHhI")        # docs/protocol.md section 5


def records(packets):
    """The ring's bytes of [(ts, data)]: 32-byte header, the data, padding to 8."""
    out = b""
    for i, (ts, data) in enumerate(packets):
        reclen = (HDR.size + len(data) + 7) // 8 * 8
        out += HDR.pack(ts, len(data), len(data) + 4, i, 1, 1, reclen) + data
        out += b"\0" * (reclen - HDR.size - len(data))
    return out


BATCHES = [[(1000 + i, bytes([i]) * (60 + i)) for i in range(5)],
           [(2000, b"x" * 1500)],
           [(3000 + i, b"y" * (i + 1)) for i in range(3)]]


class FakeStream:
    def __init__(self, messages):
        self.messages = messages
        self.cancelled = False

    def __iter__(self):
        for m in self.messages:
            if isinstance(m, Exception):
                raise m
            yield read_batch(m)

    def cancel(self):
        self.cancelled = True


class FakeSession:
    url = "grpcs://test:1"
    dead = None

    def __init__(self, messages):
        self.messages = messages

    def packets(self, fd, fid):
        return FakeStream(self.messages)


def stream_messages():
    out, written = [], 0
    for batch in BATCHES:
        written += len(batch)
        out.append(wire_batch(records(batch), len(batch), sum(len(d) for _, d in batch),
                              batch[-1][0], written, 0))
    return out + [wire_end(written, 0)]


def attached(messages):
    reader = StreamReader(WAIT, 1, 1)
    reader.attach(FakeSession(messages), 7)
    return reader


def wait_queued(reader, n):
    deadline = time.monotonic() + 10
    while reader.q.qsize() < n and time.monotonic() < deadline:
        time.sleep(0.01)
    assert reader.q.qsize() == n


def test_read_batch_gives_the_records_as_sent():
    msg = stream_messages()[0]
    batch, view = read_batch(msg)
    assert bytes(view) == records(BATCHES[0])
    reference = pb.PacketBatch.FromString(msg)
    assert bytes(view) == reference.records
    assert (batch.count, batch.bytes, batch.last_ts, batch.written) == (5, 5 * 60 + 10, 1004, 5)


def test_read_batch_takes_any_field_order_and_the_last_records():
    first, second = records(BATCHES[0]), records(BATCHES[1])
    tail = pb.PacketBatch(count=1, bytes=1500, last_ts=2000).SerializeToString()
    later = tail + pb.PacketBatch(records=second).SerializeToString()
    got = read_batch(later)
    assert got.records == second and got.count == 1          # no view: protobuf parsed it all
    twice = pb.PacketBatch(records=first).SerializeToString() + later
    assert pb.PacketBatch.FromString(twice).records == second     # protobuf: the last one wins
    assert read_batch(twice).records == second


def test_packets_come_out_as_they_went_in():
    reader = attached(stream_messages())
    got = []
    while True:
        p = reader.next_packet(10)
        if p is None:
            break
        assert isinstance(p.data, bytes)
        got.append((p.ts, p.data, p.wlen))
    assert got == [(ts, d, len(d) + 4) for b in BATCHES for ts, d in b]
    assert reader.last_ts == 3002


def test_drain_ends_when_the_end_came_with_the_last_batches():
    """The end message queued behind batches one drain() takes together: the next drain()
    must say the stream is over (it used to wait and count nothing, for ever)."""
    reader = attached(stream_messages())
    wait_queued(reader, len(BATCHES) + 1)          # every batch and the end, before reading
    out = []
    t = threading.Thread(target=lambda: out.append(reader.drain_all()), daemon=True)
    t.start()
    t.join(30)
    assert not t.is_alive(), "drain_all did not return after the end of the stream"
    assert out == [(sum(len(b) for b in BATCHES), sum(len(d) for b in BATCHES for _, d in b))]


def test_a_broken_stream_fails_the_reader():
    reader = attached(stream_messages()[:1] + [ValueError("not a batch")])
    with pytest.raises(MapiError, match="not a batch"):
        for _ in range(3):                  # a batch, then the error (never "nothing yet")
            assert reader.drain(10) is not None
