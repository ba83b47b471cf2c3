"""Packets of a TO_BUFFER for a remote client: mapid maps the flow's ring as its local clients
do (mapi_ring_attach) and cuts what is there into PacketBatch messages.  A batch is the ring's
own records copied out in one piece per contiguous span (one memcpy, no per-packet work in
Python); the receiver parses the same layout (docs/protocol.md section 5).  The stream reads
the ring only when gRPC took the previous batch, so a slow client slows a lossless replay or
makes a shared device's ring drop (and count) for that client alone."""
import threading

from mapi._engine import ffi, lib
from mapi.errors import MapiError, ESERVER
from mapi.ring import RingReader

MAX_PACKETS = 4096
MAX_BYTES = 4 << 20


def _addr(p):
    return int(ffi.cast("uintptr_t", p))


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
        self._hdrs = ffi.new("mapi_pkthdr *[]", MAX_PACKETS)
        self._datas = ffi.new("uint8_t *[]", MAX_PACKETS)

    def batches(self, timeout_ms, max_packets=0, max_bytes=0):
        """[(records bytes, count, captured bytes, last ts)] of what the ring has (waiting up to timeout_ms for the
        first packet); [] when nothing came; None at the end of the stream (or once released)."""
        max_packets = min(max_packets or MAX_PACKETS, MAX_PACKETS)
        max_bytes = max(max_bytes or MAX_BYTES, 1 << 16)
        ring = self._enter()
        if ring is None:
            return None
        try:
            n = lib.mapi_ring_next_many(ring, timeout_ms, max_packets, self._hdrs, self._datas)
            if n == lib.MAPI_RING_BREAK:
                lib.mapi_ring_clear_interrupt(ring)
                return [] if self.ring is not None else None
            if n < 0:
                return None
            if n == 0:
                return []
            hdrs = self._hdrs
            out = [(ffi.buffer(ffi.cast("char *", hdrs[a]), nbytes)[:], b - a,
                    sum(h.caplen for h in hdrs[a:b]), hdrs[b - 1].ts)
                   for a, b, nbytes in self._spans(n, max_bytes)]
            self.last_ts = self._hdrs[n - 1].ts
            return out
        finally:
            self._leave()

    def _spans(self, n, max_bytes):
        """(first, end, bytes) index ranges of contiguous records of at most max_bytes each: the
        records of one read lie in increasing memory up to the ring's wrap, found by bisection
        (a record never wraps; a read spans at most the ring)."""
        hdrs = self._hdrs
        out, i = [], 0
        while i < n:
            base = _addr(hdrs[i])
            lo, hi = i, n - 1               # the last j with base <= addr(j) < base + max_bytes
            while lo < hi:
                mid = (lo + hi + 1) // 2
                a = _addr(hdrs[mid])
                if base <= a and a + hdrs[mid].reclen - base <= max_bytes:
                    lo = mid
                else:
                    hi = mid - 1
            end = _addr(hdrs[lo]) + hdrs[lo].reclen
            out.append((i, lo + 1, end - base))
            i = lo + 1
        return out

    def counters(self):
        st = self.stats()
        return st["written"], st["dropped"]

    def close(self):
        ring = self.ring
        self.release()
        if ring is not None:
            lib.mapi_ring_free(ring)
