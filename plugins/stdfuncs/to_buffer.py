"""TO_BUFFER(mode=WAIT, size=32 MiB): keep the packets that reach it for get_next_pkt()/loop().

WAIT: get_next_pkt blocks until a packet comes (None at the end of the stream); NOWAIT: it
returns None at once when none is buffered.  A WAIT buffer on an offline device is lossless (the
replay waits for the reader); otherwise a full buffer drops and counts (result "dropped"), so a
slow reader loses only its own packets and never holds anyone up."""
from mapi._engine import ffi, lib
from mapi.constants import WAIT, NOWAIT
from mapi.descriptor import Arg, FunctionDescriptor, FunctionInstance
from mapi.errors import MapiError, EBADARG
from mapi.ring import RingReader


class ToBuffer(FunctionInstance):
    kernel = lib.mapi_ring_kernel

    def __init__(self, ctx, mode, size):
        self.mode = mode
        lossless = ctx.device.offline and mode == WAIT
        ring = lib.mapi_ring_new(size, 1 if lossless else 0)
        if ring == ffi.NULL:
            raise MemoryError("TO_BUFFER: cannot allocate %d bytes" % size)
        # freed by close(), or with this instance if it is never closed (found by make test-asan)
        self.ring = ffi.gc(ring, lib.mapi_ring_free)
        self.state = self.ring
        self.reader = RingReader(self.ring, mode)

    def next_packet(self, timeout=None):
        return self.reader.next_packet(timeout)

    def drain(self, timeout=0.2):
        """Take the buffered packets without handing them out (in C, batch-wise): returns
        (packets, captured bytes) taken, or None at the end of the stream."""
        return self.reader.drain(timeout)

    def drain_all(self, timeout=1.0):
        """drain() to the end of the stream: (packets, captured bytes)."""
        return self.reader.drain_all(timeout)

    def fileno(self):
        return lib.mapi_ring_fd(self.ring)

    def result(self):
        return self.reader.stats(), self.reader.last_ts

    def end(self):
        lib.mapi_ring_end(self.ring)

    def unblock(self):
        lib.mapi_ring_detach(self.ring)

    def close(self):
        ring, self.ring = self.ring, ffi.NULL
        self.reader.release()
        if ring != ffi.NULL:
            ffi.release(ring)            # mapi_ring_free, now

    def info(self):
        return dict(mode=self.mode, pending=self.reader.pending())


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
