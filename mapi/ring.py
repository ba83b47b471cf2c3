"""Reading a TO_BUFFER ring (mapi/csrc/ring.c) from Python: the flow's owner in this process
(TO_BUFFER's instance) or a ring of mapid mapped into this process (mapi.client).  Packets are
read in place; drain() counts them in C without handing them out."""
import threading

from ._engine import ffi, lib
from .packet import Packet
from .constants import NOWAIT


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
        self.hdr = ffi.new("mapi_pkthdr **")
        self.data = ffi.new("uint8_t **")
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
            rc = lib.mapi_ring_next(ring, ms, self.hdr, self.data)
            if rc == lib.MAPI_RING_BREAK:
                self._interrupted(ring)
            if rc != lib.MAPI_RING_PACKET:
                return None
            h = self.hdr[0]
            self.last_ts = h.ts
            return Packet(h.ts, h.caplen, h.wirelen, ffi.buffer(self.data[0], h.caplen)[:],
                          h.ifindex, h.linktype, h.seq)
        finally:
            self._leave()

    def drain(self, timeout=0.2):
        """Take the buffered packets without handing them out (in C, batch-wise): returns
        (packets, captured bytes) taken, or None at the end of the stream."""
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
        return dict(written=st.written, dropped=st.dropped, delivered=st.delivered)

    def release(self):
        """The ring is about to be freed: keep its last counts, read nothing any more.  A
        reader waiting inside the ring is woken and left before this returns."""
        with self._cv:
            ring = self.ring
            if ring is None:
                return
            self.final = self.stats()
            self.ring = None            # no new call enters
            while self._inside:
                lib.mapi_ring_interrupt(ring)
                self._cv.wait(0.05)

    def pending(self):
        return lib.mapi_ring_pending(self.ring) if self.ring is not None else 0

    def interrupt(self):
        if self.ring is not None:
            lib.mapi_ring_interrupt(self.ring)
