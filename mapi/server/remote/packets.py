"""Packets of a TO_BUFFER for a remote client: mapid maps the flow's ring as its local clients
do (mapi_ring_attach) and cuts what is there into PacketBatch messages.  A batch is the ring's
own records copied out in one piece per contiguous span, straight into the message's wire
bytes (one copy: no bytes object in between, no protobuf message to fill and serialize again);
the receiver parses the same layout (docs/protocol.md section 5).  The stream reads
the ring only when gRPC took the previous batch, so a slow client slows a lossless replay or
makes a shared device's ring drop (and count) for that client alone."""
import threading

from mapi._engine import ffi, lib
from mapi.errors import MapiError, ESERVER
from mapi.proto import pb
from mapi.ring import RingReader

MAX_PACKETS = 4096
MAX_BYTES = 1 << 20


def _varint(n):
    out = bytearray()
    while n > 0x7f:
        out.append((n & 0x7f) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def wire_batch(records, count, nbytes, last_ts, written, dropped):
    """A PacketBatch's wire bytes: field 1 (records) written around the ring's bytes as they
    are, the small fields by protobuf (fields may come in any order on the wire)."""
    tail = pb.PacketBatch(count=count, bytes=nbytes, last_ts=last_ts, written=written,
                          dropped=dropped).SerializeToString()
    return b"".join((b"\x0a", _varint(len(records)), records, tail))


def wire_end(written, dropped):
    return pb.PacketBatch(end=True, written=written, dropped=dropped).SerializeToString()


class RemoteRingReader(RingReader):
    """A ring of this mapid, read on behalf of a remote client, one stream at a time."""

    def __init__(self, fds, mode, fd, fid):
        shm, data, space = fds
        ring = lib.mapi_ring_attach(shm, data, space)     # owns the descriptors from now on
        if ring == ffi.NULL:
            raise MapiError(ESERVER, "mapid cannot map its own ring of function %d of flow %d"
                            % (fid, fd))
        super().__init__(ring, mode)
        self.fd, self.fid = fd, fid
        self.streaming = threading.Lock()       # one Packets stream per buffer at a time
        self._span = ffi.new("mapi_ring_span *")

    def batches(self, timeout_ms, max_packets=0, max_bytes=0):
        """[PacketBatch wire bytes] of what the ring has (waiting up to timeout_ms for the
        first packet); [] when nothing came; None at the end of the stream (or once released).
        The engine finds the records that lie back to back (mapi_ring_next_span: counts, sums
        and bounds in C), this copies them into the message in one piece."""
        max_packets = min(max_packets or MAX_PACKETS, MAX_PACKETS)
        max_bytes = max(max_bytes or MAX_BYTES, 1 << 16)
        ring = self._enter()
        if ring is None:
            return None
        try:
            span = self._span
            n = lib.mapi_ring_next_span(ring, timeout_ms, max_packets, max_bytes, span)
            if n == lib.MAPI_RING_BREAK:
                lib.mapi_ring_clear_interrupt(ring)
                return [] if self.ring is not None else None
            if n < 0:
                return None
            if n == 0:
                return []
            written, dropped = self.counters()
            self.last_ts = span.last_ts
            return [wire_batch(ffi.buffer(span.start, span.span), n, span.caplen_sum,
                               span.last_ts, written, dropped)]
        finally:
            self._leave()

    def counters(self):
        st = self.stats()
        return st["written"], st["dropped"]

    def close(self):
        ring = self.ring
        self.release()
        if ring is not None:
            lib.mapi_ring_free(ring)
