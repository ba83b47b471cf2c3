"""Reusable daemon threads for the devices' readers and processors.

A device runs two threads for as long as it replays or captures.  A process that opens
devices one after another (a server, a test suite, a tool polling files) would otherwise
create two threads per device; each new thread costs a stack mapping and, in glibc, may open
another malloc arena (64 MiB of address space) when the previous device's threads have not
quite finished exiting.  Idle workers wait here instead and take the next job; a worker idle
for IDLE_S seconds exits.  While it runs a job a worker carries the job's thread name.
"""
import os
import threading

IDLE_S = 30.0


class Job:
    """One function run on a worker; join() waits for its end."""

    __slots__ = ("fn", "name", "_done")

    def __init__(self, fn, name):
        self.fn = fn
        self.name = name
        self._done = threading.Event()

    def run(self):
        me = threading.current_thread()
        idle_name, me.name = me.name, self.name
        try:
            self.fn()
        finally:
            self.fn = None                 # drop the device's bound method at once
            me.name = idle_name
            self._done.set()

    def join(self, timeout=None):
        self._done.wait(timeout)

    def is_alive(self):
        return not self._done.is_set()


class _Worker:
    def __init__(self, pool, job):
        self.pool = pool
        self.job = job
        self.wake = threading.Condition(pool.lock)
        self.thread = threading.Thread(target=self._loop, name="mapi-idle", daemon=True)

    def _loop(self):
        pool = self.pool
        while True:
            with pool.lock:
                while self.job is None:
                    if not self.wake.wait(pool.idle_s) and self.job is None:
                        pool.idle.remove(self)
                        return
                job, self.job = self.job, None
            job.run()
            with pool.lock:
                pool.idle.append(self)


class WorkerPool:
    def __init__(self, idle_s=IDLE_S):
        self.idle_s = idle_s
        self.lock = threading.Lock()
        self.idle = []

    def run(self, fn, name):
        """Run fn() on an idle worker (a new one if none is idle); returns its Job."""
        job = Job(fn, name)
        with self.lock:
            if self.idle:
                w = self.idle.pop()
                w.job = job
                w.wake.notify()
                return job
            w = _Worker(self, job)
        w.thread.start()
        return job

    def _after_fork(self):
        # the child has none of the parent's threads: forget their workers
        self.lock = threading.Lock()
        self.idle = []


POOL = WorkerPool()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=POOL._after_fork)


def run(fn, name):
    return POOL.run(fn, name)
