"""mapi_ring_warm: a live flow's ring is faulted in by a thread of its own (mapid calls it at
connect), so the capture thread does not zero new pages on its first lap.  The memfd's allocated
blocks (fstat, as tmpfs counts them) are the independent measure of what was faulted in."""
import os
import time

from mapi._engine import ffi, lib

MiB = 1 << 20


def allocated(ring):
    return os.fstat(lib.mapi_ring_shm_fd(ring)).st_blocks * 512


def wait_allocated(ring, at_least, timeout=20.0):
    deadline = time.monotonic() + timeout
    while allocated(ring) < at_least and time.monotonic() < deadline:
        time.sleep(0.01)
    return allocated(ring)


def new_ring(size):
    ring = lib.mapi_ring_new(size, 0)
    assert ring != ffi.NULL
    return ffi.gc(ring, lib.mapi_ring_free)


def test_warm_faults_in_the_whole_ring():
    ring = new_ring(8 * MiB)
    # a fresh ring holds its control page only
    assert allocated(ring) <= 4096
    assert lib.mapi_ring_warm(ring, 64 * MiB) == 0
    assert wait_allocated(ring, 8 * MiB + 4096) == 8 * MiB + 4096
    # once per ring
    assert lib.mapi_ring_warm(ring, 64 * MiB) == -1


def test_warm_stops_at_max_bytes():
    ring = new_ring(8 * MiB)
    assert lib.mapi_ring_warm(ring, 2 * MiB + 100) == 0    # whole pages only
    assert wait_allocated(ring, 2 * MiB + 4096) == 2 * MiB + 4096
    time.sleep(0.2)                                         # nothing more comes
    assert allocated(ring) == 2 * MiB + 4096


def test_freed_while_warming():
    # the ring is freed at once, its warming thread still running: it stops, nothing faults
    for _ in range(20):
        ring = lib.mapi_ring_new(256 * MiB, 0)
        assert lib.mapi_ring_warm(ring, 256 * MiB) == 0
        lib.mapi_ring_free(ring)


def test_reader_side_does_not_warm():
    ring = new_ring(MiB)
    reader = lib.mapi_ring_attach(os.dup(lib.mapi_ring_shm_fd(ring)), os.dup(lib.mapi_ring_fd(ring)),
                                  os.dup(lib.mapi_ring_space_fd(ring)))
    assert reader != ffi.NULL
    try:
        assert lib.mapi_ring_warm(reader, MiB) == -1
    finally:
        lib.mapi_ring_free(reader)
