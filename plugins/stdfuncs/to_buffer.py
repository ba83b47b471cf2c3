"""TO_BUFFER(mode=WAIT, size=32 MiB): keep the packets that reach it for get_next_pkt()/loop().

WAIT: get_next_pkt blocks until a packet comes (None at the end of the stream); NOWAIT: it
returns None at once when none is buffered.  A WAIT buffer on an offline device is lossless (the
replay waits for the reader); otherwise a full buffer drops and counts (result "dropped"), so a
slow reader loses only its own packets and never holds anyone up."""
from mapi._engine import ffi, lib
from mapi.packet import Packet
from mapi.constants import WAIT, NOWAIT
from mapi.descriptor import Arg, FunctionDescriptor, FunctionInstance
from mapi.errors import MapiError, EBADARG


class ToBuffer(FunctionInstance):
    kernel = lib.mapi_ring_kernel

    def __init__(self, ctx, mode, size):
        self.mode = mode
        lossless = ctx.device.offline and mode == WAIT
        self.ring = lib.mapi_ring_new(size, 1 if lossless else 0)
        if self.ring == ffi.NULL:
            raise MemoryError("TO_BUFFER: cannot allocate %d bytes" % size)
        self.state = self.ring
        self.hdr = ffi.new("mapi_pkthdr **")
        self.data = ffi.new("uint8_t **")
        self.last_ts = 0

    def next_packet(self, timeout=None):
        if self.ring == ffi.NULL:
            return None
        if self.mode == NOWAIT:
            ms = 0
        elif timeout is None:
            ms = -1
        else:
            ms = max(0, int(timeout * 1000))
        rc = lib.mapi_ring_next(self.ring, ms, self.hdr, self.data)
        if rc != lib.MAPI_RING_PACKET:
            return None
        h = self.hdr[0]
        self.last_ts = h.ts
        return Packet(h.ts, h.caplen, h.wirelen, ffi.buffer(self.data[0], h.caplen)[:], h.ifindex,
                      h.linktype, h.seq)

    def drain(self, timeout=0.2):
        """Take the buffered packets without handing them out (in C, batch-wise): returns
        (packets, captured bytes) taken, or None at the end of the stream."""
        if self.ring == ffi.NULL:
            return None
        counts = ffi.new("uint64_t[2]")
        rc = lib.mapi_ring_drain(self.ring, int(timeout * 1000), counts, counts + 1)
        if rc < 0:
            return None
        return counts[0], counts[1]

    def fileno(self):
        return lib.mapi_ring_fd(self.ring)

    def result(self):
        st = ffi.new("mapi_ring_stats *")
        lib.mapi_ring_get_stats(self.ring, st)
        return dict(written=st.written, dropped=st.dropped, delivered=st.delivered), self.last_ts

    def end(self):
        lib.mapi_ring_end(self.ring)

    def unblock(self):
        lib.mapi_ring_detach(self.ring)

    def close(self):
        ring, self.ring = self.ring, ffi.NULL
        if ring != ffi.NULL:
            lib.mapi_ring_free(ring)

    def info(self):
        return dict(mode=self.mode, pending=lib.mapi_ring_pending(self.ring) if self.ring != ffi.NULL else 0)


def check(ctx, args):
    mode, size = args
    if mode not in (WAIT, NOWAIT):
        raise MapiError(EBADARG, "TO_BUFFER: mode must be mapi.WAIT or mapi.NOWAIT, got %r" % (mode,),
                        argument="mode")
    if size < (1 << 20) or size > (1 << 34):
        raise MapiError(EBADARG, "TO_BUFFER: size must be between 1 MiB and 16 GiB, got %d" % size,
                        argument="size")
    return args


DESCRIPTOR = FunctionDescriptor(
    name="TO_BUFFER",
    args=(Arg("mode", "c", WAIT, choices=(WAIT, NOWAIT)), Arg("size", "i", 32 << 20)),
    create=lambda ctx, args: ToBuffer(ctx, *args),
    check=check, doc=__doc__, result="packets", cost="high", shareable=False,
)
