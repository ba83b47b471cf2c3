"""Clients' calls before packets: mapid's loop and call workers run at a higher scheduling
priority than the engine's replay and capture threads, so a control call is answered promptly
while the engine keeps both cores busy.  Threads inherit their creator's priority, so the engine
calls that start threads (a replay, a live capture, a filter compile) run at normal priority."""
import contextlib
import os
import threading

CONTROL_NICE = -10


def control_priority():
    """Raise the calling thread's priority (when mapid may; otherwise leave it)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), CONTROL_NICE)
    except (OSError, AttributeError):
        pass


@contextlib.contextmanager
def engine_priority():
    """Run the body at normal priority (threads it starts inherit that), then back."""
    tid = threading.get_native_id()
    try:
        old = os.getpriority(os.PRIO_PROCESS, tid)
    except OSError:
        old = 0
    if old == 0:
        yield
        return
    try:
        os.setpriority(os.PRIO_PROCESS, tid, 0)
    except OSError:
        # a mapid started under `nice` without the right to raise its priority back (not
        # root): the engine runs at the priority it was given
        yield
        return
    try:
        yield
    finally:
        try:
            os.setpriority(os.PRIO_PROCESS, tid, old)
        except OSError:
            pass
