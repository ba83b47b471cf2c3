"""Reading a TO_BUFFER ring (mapi/csrc/ring.c) from Python: the flow's owner in this process
(TO_BUFFER's instance) or a ring of mapid mapped into this process (mapi.client).  next_packet
takes a stretch of records in one call (mapi_ring_next_span), makes its packets (each with a
copy of its bytes) and hands them out one by one; drain() counts them in C without handing them
out."""
import struct
import threading
from collections import deque

from ._engine import ffi, lib
from .packet import Packet
from .constants import NOWAIT

# a record's header (mapi_pkthdr, docs/protocol.md section 5): ts, caplen, wirelen, seq,
# ifindex, linktype, reclen; the packet's bytes follow it, the next record reclen bytes on
HDR = struct.Struct("<qIIQHhI")
# what one next_packet call takes from the ring at most when the reader finds nothing taken:
# enough that the call, its locking and the copy are paid once per many packets, few enough
# that the ring's "delivered" count (taken, not yet handed out) runs at most this far ahead
SPAN_PACKETS = 256
SPAN_BYTES = 1 << 20


def parse_records(records, count):
    """[Packet] of `count` back-to-back records (anything sliced as bytes: each packet gets
    bytes of its own)."""
    out = []
    off = 0
    unpack = HDR.unpack_from
    size = HDR.size
    for _ in range(count):
        ts, caplen, wlen, seq, ifindex, linktype, reclen = unpack(records, off)
        out.append(Packet(ts, caplen, wlen, records[off + size:off + size + caplen], ifindex,
                          linktype, seq))
        off += reclen
    return out


class DrainAll:
    """drain_all() of a reader whose drain(timeout) returns (packets, captured bytes) it
    consumed, or None at the end of the stream (a ring here, a gRPC stream in mapi.client)."""

    def drain_all(self, timeout=1.0):
        """drain() to the end of the stream: (packets, captured bytes)."""
        packets = nbytes = 0
        while True:
            got = self.drain(timeout)
            if got is None:
                return packets, nbytes
            packets += got[0]
            nbytes += got[1]


class RingReader(DrainAll):
    """on_break(): called when a wait was interrupted (mapi_ring_interrupt); it may raise."""

    def __init__(self, ring, mode, on_break=None):
        self.ring = ring
        self.mode = mode
        self.on_break = on_break
        self.span = ffi.new("mapi_ring_span *")
        # a lossless writer waits for the room taken records hold until the next take
        self.span_bytes = max(1, min(SPAN_BYTES, int(lib.mapi_ring_capacity(ring)) // 4))
        self.taken = deque()            # packets taken from the ring, not yet handed out
        self.last_ts = 0
        self.final = dict(written=0, dropped=0, delivered=0)   # stats once the ring is gone
        # threads inside a C call on the ring: release() waits for them before it is freed
        self._inside = 0
        self._cv = threading.Condition()

    def _enter(self):
        """The ring to call into (counted until _leave), or None once released."""
        with self._cv:
            if self.ring is not None:
                self._inside += 1
            return self.ring

    def _leave(self):
        with self._cv:
            self._inside -= 1
            if self._inside == 0:
                self._cv.notify_all()

    def _interrupted(self, ring):
        lib.mapi_ring_clear_interrupt(ring)
        if self.on_break is not None and self.ring is not None:
            self.on_break()

    def next_packet(self, timeout=None):
        """The next packet (None: nothing within the timeout, or the end of the stream)."""
        taken = self.taken
        if not taken:
            if self.mode == NOWAIT:
                ms = 0
            elif timeout is None:
                ms = -1
            else:
                ms = max(0, int(timeout * 1000))
            ring = self._enter()
            if ring is None:
                return None
            try:
                span = self.span
                n = lib.mapi_ring_next_span(ring, ms, SPAN_PACKETS, self.span_bytes, span)
                if n == lib.MAPI_RING_BREAK:
                    self._interrupted(ring)
                if n <= 0:
                    return None
                # the records stay in the ring until the next call: parsed in place, each
                # packet's bytes copied out once
                taken.extend(parse_records(ffi.buffer(span.start, span.span), n))
            finally:
                self._leave()
        pkt = taken.popleft()
        self.last_ts = pkt.ts
        return pkt

    def drain(self, timeout=0.2):
        """Take the buffered packets without handing them out (in C, batch-wise): returns
        (packets, captured bytes) taken, or None at the end of the stream."""
        if self.taken:                  # what next_packet took and did not hand out yet
            pkts = list(self.taken)
            self.taken.clear()
            self.last_ts = pkts[-1].ts
            return len(pkts), sum(p.caplen for p in pkts)
        counts = ffi.new("uint64_t[2]")
        ring = self._enter()
        if ring is None:
            return None
        try:
            rc = lib.mapi_ring_drain(ring, int(timeout * 1000), counts, counts + 1)
            if rc == lib.MAPI_RING_BREAK:
                self._interrupted(ring)
            elif rc < 0:
                return None
            return counts[0], counts[1]
        finally:
            self._leave()

    def fileno(self):
        return lib.mapi_ring_fd(self.ring)

    def stats(self):
        if self.ring is None:
            return dict(self.final)
        st = ffi.new("mapi_ring_stats *")
        lib.mapi_ring_get_stats(self.ring, st)
        # taken from the ring but not handed out yet: not delivered to the application
        return dict(written=st.written, dropped=st.dropped,
                    delivered=st.delivered - len(self.taken))

    def release(self):
        """The ring is about to be freed: keep its last counts, read nothing any more.  A
        reader waiting inside the ring is woken and left before this returns."""
        with self._cv:
            ring = self.ring
            if ring is None:
                return
            self.final = self.stats()
            self.ring = None            # no new call enters
            self.taken.clear()
            while self._inside:
                lib.mapi_ring_interrupt(ring)
                self._cv.wait(0.05)

    def pending(self):
        if self.ring is None:
            return 0
        return lib.mapi_ring_pending(self.ring) + len(self.taken)

    def interrupt(self):
        if self.ring is not None:
            lib.mapi_ring_interrupt(self.ring)
