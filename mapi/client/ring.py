"""A TO_BUFFER ring of the server, mapped into this process: packets are read in place with
the engine's own ring code (mapi.ring.RingReader over mapi_ring_attach), no copy and no
message per packet.  When the server goes away a waiting read raises its MapiError."""
from mapi._engine import ffi, lib
from mapi.errors import MapiError, ESERVER
from mapi.proto.wire import close_fds
from mapi.ring import RingReader


class RemoteRing(RingReader):
    def __init__(self, fds, mode, connection, fd, fid):
        shm, data, space = fds
        ring = lib.mapi_ring_attach(shm, data, space)    # owns the descriptors from now on
        if ring == ffi.NULL:
            raise MapiError(ESERVER, "the server passed a ring for function %d of flow %d that "
                            "this process cannot map" % (fid, fd))
        super().__init__(ring, mode, self._server_gone)
        self.connection = connection

    def _server_gone(self):
        if self.connection.dead is not None:
            raise self.connection.dead

    def _interrupted(self, ring):
        # the server went away: raise before the interruption is cleared, so it stays for
        # every other thread waiting on this ring (a second reader must not sleep on for ever)
        self._server_gone()
        super()._interrupted(ring)

    def result(self):
        return self.stats(), self.last_ts

    def close(self):
        ring = self.ring
        self.release()
        if ring is not None:
            lib.mapi_ring_free(ring)


def attach_all(connected, fds, connection, fd):
    """{fid: RemoteRing} for the buffers of a connect reply (3 descriptors each, in order)."""
    out = {}
    try:
        for i, b in enumerate(connected.buffers):
            out[b.fid] = RemoteRing(fds[3 * i:3 * i + 3], b.mode, connection, fd, b.fid)
    except MapiError:
        close_fds(fds[3 * len(out):])
        for r in out.values():
            r.close()
        raise
    return out
