"""Batches handed from packet sources to the engine.

A Batch wraps a C ``mapi_batch`` whose packets live in memory the source owns (a read buffer or
a mapped file); ``keep`` holds that memory alive until the engine releases the batch.
"""
import threading
import weakref

from ._engine import ffi, lib

BATCH_CAP = 65536          # packets per batch; also the engine's selection-vector size


class Batch:
    # clock_ns: live devices, the device clock when the source handed the batch over
    __slots__ = ("c", "keep", "pool", "clock_ns", "__weakref__")

    def __init__(self, pool):
        self.c = ffi.gc(lib.mapi_batch_new(BATCH_CAP), lib.mapi_batch_free)
        if self.c == ffi.NULL:
            raise MemoryError("cannot allocate a packet batch")
        self.keep = None
        self.pool = pool
        self.clock_ns = 0

    @property
    def n(self):
        return self.c.n

    @property
    def linktype(self):
        return self.c.linktype

    def release(self):
        keep, self.keep = self.keep, None
        if keep is not None and hasattr(keep, "release"):
            keep.release()
        pool = self.pool
        if pool is not None:
            pool.put(self)


class BatchPool:
    """A bounded set of batches: a source blocks when all are in flight (back-pressure).
    Closing it lets go of every batch (those in flight when they come back), so the batches'
    C arrays are freed at once rather than by the cycle collector (batch <-> pool)."""

    def __init__(self, count=6):
        self._free = [Batch(self) for _ in range(count)]
        self._cv = threading.Condition()
        self._closed = False

    def get(self, timeout=None):
        with self._cv:
            while not self._free and not self._closed:
                self._cv.wait(timeout)
            if self._closed:
                return None
            return self._free.pop()

    def put(self, batch):
        with self._cv:
            if self._closed:
                batch.pool = None
                return
            self._free.append(batch)
            self._cv.notify()

    def close(self):
        with self._cv:
            self._closed = True
            for batch in self._free:
                batch.pool = None
            self._free.clear()
            self._cv.notify_all()


class RefCounted:
    """Packet memory shared by the batches parsed from it: free() runs when the last holder
    releases it.  Subclasses set ``refs`` and ``lock``."""

    __slots__ = ()

    def acquire(self):
        with self.lock:
            self.refs += 1
        return self

    def release(self):
        with self.lock:
            self.refs -= 1
            last = self.refs == 0
        if last:
            self.free()

    def free(self):
        raise NotImplementedError


def anonymous_memory(size):
    """Writable zeroed memory of `size` bytes that supports the buffer protocol.  Large
    buffers are their own anonymous mapping: freed, they go back to the system at once,
    whereas megabyte bytearrays come from the malloc heap, whose top cannot shrink below a
    small block allocated after them (devices opened and closed in turn would let the heap's
    address space creep up by the buffers' size each time)."""
    if size >= MAPPED_BUFFER_MIN:
        import mmap
        # private, not mmap's default MAP_SHARED (shmem: its first touch costs twice a private
        # page's), and huge pages where the kernel gives them on request: a fresh 32 MB of
        # read buffers is faulted in in ~5 ms instead of ~23 ms on this VM
        mem = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        try:
            mem.madvise(mmap.MADV_HUGEPAGE)
        except (AttributeError, OSError):
            pass
        return mem
    return bytearray(size)


MAPPED_BUFFER_MIN = 256 << 10


class Buffer(RefCounted):
    """A reusable read buffer shared by the batches parsed from it; once the last batch lets
    go, on_free(buffer) hands it back to its owner.  The owner (a source holding its
    buffers) is referenced weakly, so the two form no cycle for the garbage collector."""

    __slots__ = ("data", "cdata", "refs", "lock", "on_free")

    def __init__(self, size, on_free):
        self.data = anonymous_memory(size)
        self.cdata = ffi.from_buffer(self.data)
        self.refs = 0
        self.lock = threading.Lock()
        try:
            self.on_free = weakref.WeakMethod(on_free)
        except TypeError:                 # a plain function: nothing to cycle through
            self.on_free = lambda: on_free

    def free(self):
        on_free = self.on_free()
        if on_free is not None:
            on_free(self)
