"""A TO_BUFFER ring of the server, mapped into this process: packets are read in place with
the engine's own ring code (mapi_ring_next), no copy and no message per packet."""
from mapi._engine import ffi, lib
from mapi.api import Packet
from mapi.constants import NOWAIT
from mapi.errors import MapiError, ESERVER
from mapi.proto.wire import close_fds


class RingReader:
    def __init__(self, fds, mode, connection, fd, fid):
        shm, data, space = fds
        ring = lib.mapi_ring_attach(shm, data, space)    # owns the descriptors from now on
        if ring == ffi.NULL:
            raise MapiError(ESERVER, "the server passed a ring for function %d of flow %d that "
                            "this process cannot map" % (fid, fd))
        self.ring = ring
        self.mode = mode
        self.connection = connection
        self.hdr = ffi.new("mapi_pkthdr **")
        self.data = ffi.new("uint8_t **")
        self.last_ts = 0

    def _broken(self, rc):
        """MAPI_RING_BREAK: the server went away (or someone interrupted the wait)."""
        if self.connection.dead is not None:
            raise self.connection.dead
        lib.mapi_ring_clear_interrupt(self.ring)

    def next_packet(self, timeout=None):
        if self.ring is None:
            raise MapiError(ESERVER, "this buffer's flow is closed")
        if self.mode == NOWAIT:
            ms = 0
        elif timeout is None:
            ms = -1
        else:
            ms = max(0, int(timeout * 1000))
        rc = lib.mapi_ring_next(self.ring, ms, self.hdr, self.data)
        if rc == lib.MAPI_RING_BREAK:
            self._broken(rc)
        if rc != lib.MAPI_RING_PACKET:
            return None
        h = self.hdr[0]
        self.last_ts = h.ts
        return Packet(h.ts, h.caplen, h.wirelen, ffi.buffer(self.data[0], h.caplen)[:], h.ifindex,
                      h.linktype, h.seq)

    def drain(self, timeout=0.2):
        """Take the buffered packets without handing them out (in C): (packets, bytes), or
        None at the end of the stream."""
        if self.ring is None:
            return None
        counts = ffi.new("uint64_t[2]")
        rc = lib.mapi_ring_drain(self.ring, int(timeout * 1000), counts, counts + 1)
        if rc == lib.MAPI_RING_BREAK:
            self._broken(rc)
            return counts[0], counts[1]
        if rc < 0:
            return None
        return counts[0], counts[1]

    def fileno(self):
        return lib.mapi_ring_fd(self.ring)

    def result(self):
        st = ffi.new("mapi_ring_stats *")
        lib.mapi_ring_get_stats(self.ring, st)
        return dict(written=st.written, dropped=st.dropped, delivered=st.delivered), self.last_ts

    def interrupt(self):
        if self.ring is not None:
            lib.mapi_ring_interrupt(self.ring)

    def close(self):
        ring, self.ring = self.ring, None
        if ring is not None:
            lib.mapi_ring_free(ring)


def attach_all(connected, fds, connection, fd):
    """{fid: RingReader} for the buffers of a connect reply (3 descriptors each, in order)."""
    out = {}
    try:
        for i, b in enumerate(connected.buffers):
            out[b.fid] = RingReader(fds[3 * i:3 * i + 3], b.mode, connection, fd, b.fid)
    except MapiError:
        close_fds(fds[3 * len(out):])
        for r in out.values():
            r.close()
        raise
    return out
