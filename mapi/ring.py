"""Reading a TO_BUFFER ring (mapi/csrc/ring.c) from Python: the flow's owner in this process
(TO_BUFFER's instance) or a ring of mapid mapped into this process (mapi.client).  Packets are
read in place; drain() counts them in C without handing them out."""
from ._engine import ffi, lib
from .api import Packet
from .constants import NOWAIT


class RingReader:
    """on_break(): called when a wait was interrupted (mapi_ring_interrupt); it may raise."""

    def __init__(self, ring, mode, on_break=None):
        self.ring = ring
        self.mode = mode
        self.on_break = on_break
        self.hdr = ffi.new("mapi_pkthdr **")
        self.data = ffi.new("uint8_t **")
        self.last_ts = 0
        self.final = dict(written=0, dropped=0, delivered=0)   # stats once the ring is gone

    def _interrupted(self):
        if self.on_break is not None:
            self.on_break()
        lib.mapi_ring_clear_interrupt(self.ring)

    def next_packet(self, timeout=None):
        """The next packet (None: nothing within the timeout, or the end of the stream)."""
        if self.ring is None:
            return None
        if self.mode == NOWAIT:
            ms = 0
        elif timeout is None:
            ms = -1
        else:
            ms = max(0, int(timeout * 1000))
        rc = lib.mapi_ring_next(self.ring, ms, self.hdr, self.data)
        if rc == lib.MAPI_RING_BREAK:
            self._interrupted()
        if rc != lib.MAPI_RING_PACKET:
            return None
        h = self.hdr[0]
        self.last_ts = h.ts
        return Packet(h.ts, h.caplen, h.wirelen, ffi.buffer(self.data[0], h.caplen)[:], h.ifindex,
                      h.linktype, h.seq)

    def drain(self, timeout=0.2):
        """Take the buffered packets without handing them out (in C, batch-wise): returns
        (packets, captured bytes) taken, or None at the end of the stream."""
        if self.ring is None:
            return None
        counts = ffi.new("uint64_t[2]")
        rc = lib.mapi_ring_drain(self.ring, int(timeout * 1000), counts, counts + 1)
        if rc == lib.MAPI_RING_BREAK:
            self._interrupted()
        elif rc < 0:
            return None
        return counts[0], counts[1]

    def drain_all(self, timeout=1.0):
        """drain() to the end of the stream: (packets, captured bytes)."""
        packets = nbytes = 0
        while True:
            got = self.drain(timeout)
            if got is None:
                return packets, nbytes
            packets += got[0]
            nbytes += got[1]

    def fileno(self):
        return lib.mapi_ring_fd(self.ring)

    def stats(self):
        if self.ring is None:
            return dict(self.final)
        st = ffi.new("mapi_ring_stats *")
        lib.mapi_ring_get_stats(self.ring, st)
        return dict(written=st.written, dropped=st.dropped, delivered=st.delivered)

    def release(self):
        """The ring is about to be freed: keep its last counts, read nothing any more."""
        if self.ring is not None:
            self.final = self.stats()
            self.ring = None

    def pending(self):
        return lib.mapi_ring_pending(self.ring) if self.ring is not None else 0

    def interrupt(self):
        if self.ring is not None:
            lib.mapi_ring_interrupt(self.ring)
