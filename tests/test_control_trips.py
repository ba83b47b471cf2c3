"""tools/control_trips.py splits a control round trip's time into the calling thread's waits for
a core and the rest (bench_server prints both).  The wait is the kernel's own count: a thread
that shares its one core with a busy process waits for about half the time it wants to run."""
import os
import subprocess
import sys
import time

import pytest

from tools.control_trips import waited_ns, waits


def test_waits_of_the_slowest_trips_by_hand():
    trips = [1.0, 2.0, 3.0, 10.0]
    waited = [0.5, 0.5, 1.0, 7.0]
    slow_ms, slow_waited, p99_less = waits(trips, waited, share=0.25)
    assert (slow_ms, slow_waited) == (10.0, 7.0)
    # less their waits the trips take 0.5, 1.5, 2.0, 3.0 ms: the p99 of four is the largest
    assert p99_less == 3.0
    assert waits(trips, waited[:3]) is None         # not measured for every trip
    assert waits([], []) is None


def _busy_waited(seconds):
    w0, t0 = waited_ns(), time.monotonic()
    while time.monotonic() - t0 < seconds:
        pass
    return (waited_ns() - w0) / 1e9


@pytest.mark.skipif(waited_ns() is None, reason="this kernel keeps no schedstat run_delay")
def test_a_thread_sharing_its_core_with_a_busy_process_waits():
    core = sorted(os.sched_getaffinity(0))[-1]
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {core})
    try:
        alone = _busy_waited(0.4)
        hog = subprocess.Popen([sys.executable, "-c", "import os; os.sched_setaffinity(0, {%d})\n"
                                "print(flush=True)\nwhile True: pass" % core],
                               stdout=subprocess.PIPE)
        try:
            hog.stdout.readline()
            shared = _busy_waited(0.4)
        finally:
            hog.kill()
            hog.wait()
    finally:
        os.sched_setaffinity(0, before)
    # alone it runs (a time of running, not of waiting, would be 0.4 s here); beside a busy
    # process each waits about half of the 0.4 s
    assert alone < 0.25, alone
    assert 0.08 < shared - alone < 0.35, (alone, shared)
