"""Event functions (THRESHOLD) of a distributed flow, judged on the combined value: no sensor
sees the sum, so the client reads the referenced result from every sensor (POLL seconds apart),
adds it up and raises an event when the condition turns true (a crossing, as THRESHOLD's level
mode).  Its events come through the usual calls (set_event_callback, get_next_event)."""
import operator
import threading
import time

from mapi.constants import EQUAL, GREATER, LESS
from mapi.errors import MapiError, EBADARG, ENOTSUP
from mapi.events import Event

from .events import RemoteEventQueue

POLL = 0.05
_TEST = {GREATER: operator.gt, LESS: operator.lt, EQUAL: operator.eq}


class CombinedThreshold:
    def __init__(self, fd, fid, read, args, kwargs):
        names = ("kind", "ref", "value", "interval", "count")
        given = dict(zip(names, args))
        given.update(kwargs)
        unknown = set(given) - set(names)
        if unknown or not {"kind", "ref", "value"} <= set(given):
            raise MapiError(EBADARG, "THRESHOLD(kind, ref, value, interval=0, count=0) on a "
                            "distributed flow: got %r" % (sorted(given),), argument="args")
        if given.get("interval", 0):
            raise MapiError(ENOTSUP, "THRESHOLD on a distributed flow judges the combined value "
                            "(level mode): interval must be 0", argument="interval")
        if given["kind"] not in _TEST:
            raise MapiError(EBADARG, "THRESHOLD: kind must be GREATER, LESS or EQUAL, not %r"
                            % (given["kind"],), argument="kind")
        self.fd, self.fid = fd, fid
        self.kind, self.ref, self.value = given["kind"], tuple(given["ref"]), given["value"]
        self.remaining = given.get("count", 0) or None
        self.read = read                       # () -> combined Result of the reference
        self.queue = RemoteEventQueue(fd, fid)
        self.fired = 0
        self.last_ts = 0
        self._prev = None
        self._stop = threading.Event()
        self._thread = None

    def start(self):
        self._thread = threading.Thread(target=self._watch, daemon=True,
                                        name="mapi-threshold-%d.%d" % (self.fd, self.fid))
        self._thread.start()

    def check(self):
        """Judge the combined value once (the watcher's step)."""
        try:
            r = self.read()
        except MapiError:
            return
        if r.value is None:
            return
        cond = _TEST[self.kind](r.value, self.value)
        if cond and self._prev is False and (self.remaining is None or self.remaining > 0):
            self.fired += 1
            self.last_ts = r.ts or 0
            if self.remaining is not None:
                self.remaining -= 1
            self.queue.publish([Event(r.ts, r.value, self.kind, self.value, None, self.fd, self.fid)])
        self._prev = cond

    def _watch(self):
        while not self._stop.wait(POLL):
            self.check()

    def result(self):
        return self.fired, self.last_ts

    def info(self):
        return dict(name="THRESHOLD", kind=self.kind, value=self.value, ref=self.ref,
                    events=self.fired, judged="combined value, by the client", poll=POLL,
                    since=time.time())

    def stop(self):
        self._stop.set()
        self.queue.end()
