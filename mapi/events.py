"""Asynchronous events: what THRESHOLD (and any function whose instance has an ``events``
queue) delivers.  Three ways to consume them; each sees every event, in packet-time order:

    mapi.set_event_callback(fd, fid, fn)        fn(event) from the engine's processor thread,
                                                once per event, after the batch that raised it
    ev = mapi.get_next_event(fd, fid, timeout=None)   blocking read; None at the end of the
                                                stream (or when the flow closes)
    async for ev in mapi.events(fd, fid): ...   the same as an asyncio async iterator

Events wait in a bounded queue per function (EventQueue.CAPACITY); when nobody reads, further
events are dropped and counted (get_function_info(...)["events_dropped"]).  A registered
callback takes every event instead of the queue (events queued before it was set are handed
to it first).  A callback must be quick: it runs on the engine's thread; an exception it
raises is logged and counted, never lets the engine die.
"""
import sys
import threading
import types
from collections import deque, namedtuple

from .errors import MapiError, EBADARG, ETIMEOUT, ENOTSUP
from .lazylog import getLogger

log = getLogger("mapi.events")

# ts: ns since the epoch (the crossing packet, or the end of the judged interval);
# value: the value that met the condition; kind: mapi.GREATER/LESS/EQUAL; threshold: the
# configured value; seq: device-wide index of the crossing packet (None when judged at an
# interval end or at batch granularity); fd, fid: the function that raised it.
Event = namedtuple("Event", "ts value kind threshold seq fd fid")


class EventQueue:
    """Events of one function instance: written by the engine's thread, read by anyone."""

    CAPACITY = 65536

    def __init__(self, fd, fid, capacity=CAPACITY):
        self.fd = fd
        self.fid = fid
        self.capacity = capacity
        self.dropped = 0
        self.published = 0
        self.callback_errors = 0
        self.ended = False
        self._queue = deque()
        self._cv = threading.Condition()
        self._callback = None
        self._waiters = []            # (loop, future) of async readers

    # --- producer side (the engine's processor thread) ----------------------------------------
    def publish(self, events):
        """Hand over the events of one batch (already in packet-time order)."""
        with self._cv:
            callback = self._callback
            if callback is not None:
                backlog = list(self._queue)
                self._queue.clear()
            else:
                for ev in events:
                    if len(self._queue) >= self.capacity:
                        self.dropped += 1
                    else:
                        self._queue.append(ev)
                self.published += len(events)
                self._wake()
                return
        self.published += len(events)
        for ev in backlog + list(events):
            try:
                callback(ev)
            except Exception:
                self.callback_errors += 1
                log.exception("event callback of function %d of flow %d failed", self.fid, self.fd)

    def end(self):
        """No event will come any more: blocked readers get None, async iterators stop."""
        with self._cv:
            if self.ended:
                return
            callback = self._callback
            backlog = []
            if callback is not None:
                backlog = list(self._queue)
                self._queue.clear()
        for ev in backlog:
            try:
                callback(ev)
            except Exception:
                self.callback_errors += 1
                log.exception("event callback of function %d of flow %d failed", self.fid, self.fd)
        with self._cv:
            self.ended = True
            self._wake()

    def _wake(self):
        self._cv.notify_all()
        waiters, self._waiters = self._waiters, []
        for loop, fut in waiters:
            try:
                loop.call_soon_threadsafe(_resolve_future, fut)
            except RuntimeError:      # that event loop is closed; nobody waits there any more
                pass

    # --- consumer side ------------------------------------------------------------------------
    def set_callback(self, fn):
        with self._cv:
            self._callback = fn

    def get(self, timeout=None):
        """The next event; None once the stream ended and the queue is empty."""
        with self._cv:
            if not self._cv.wait_for(lambda: self._queue or self.ended, timeout):
                raise MapiError(ETIMEOUT, "no event from function %d of flow %d within %.3g s"
                                % (self.fid, self.fd, timeout), argument="timeout")
            return self._queue.popleft() if self._queue else None

    def _poll_or_wait(self, loop, fut):
        """(event, ended) at once, or register fut to be resolved when something arrives."""
        with self._cv:
            if self._queue:
                return self._queue.popleft(), False
            if self.ended:
                return None, True
            self._waiters.append((loop, fut))
            return None, None

    def _forget(self, fut):
        with self._cv:
            self._waiters = [(l, f) for l, f in self._waiters if f is not fut]

    def pending(self):
        return len(self._queue)

    def room(self):
        """How many more events one publish() can take without dropping."""
        if self._callback is not None:
            return self.capacity
        return max(0, self.capacity - len(self._queue))

    def info(self):
        return dict(events_published=self.published, events_pending=len(self._queue),
                    events_dropped=self.dropped, callback_errors=self.callback_errors,
                    events_ended=self.ended)


def _resolve_future(fut):
    if not fut.done():
        fut.set_result(None)


class EventIterator:
    """``async for ev in mapi.events(fd, fid)``: ends with the stream or the flow."""

    def __init__(self, queue):
        self._queue = queue

    def __aiter__(self):
        return self

    async def __anext__(self):
        import asyncio                   # only async users pay for importing it
        loop = asyncio.get_running_loop()
        while True:
            fut = loop.create_future()
            ev, ended = self._queue._poll_or_wait(loop, fut)
            if ev is not None:
                return ev
            if ended:
                raise StopAsyncIteration
            try:
                await fut
            finally:
                self._queue._forget(fut)


def _queue_of(fd, fid):
    from .api import find_node
    _, node = find_node(fd, fid)
    queue = getattr(node.instance, "events", None)
    if not isinstance(queue, EventQueue):
        raise MapiError(ENOTSUP, "function %d of flow %d is %s, which delivers no events; apply "
                        "THRESHOLD and pass its id" % (fid, fd, node.name), argument="fid")
    return queue


def set_event_callback(fd, fid, fn):
    """Call fn(event) for every event of function fid of flow fd (None: stop calling it)."""
    if fn is not None and not callable(fn):
        raise MapiError(EBADARG, "set_event_callback: fn must be callable or None, not %r" % (fn,),
                        argument="fn")
    _queue_of(fd, fid).set_callback(fn)
    return 0


def get_next_event(fd, fid, timeout=None):
    """Block until the next event of function fid of flow fd; None at the end of the stream.
    With a timeout (seconds) and nothing in time: MapiError(ETIMEOUT)."""
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                or timeout < 0):
        raise MapiError(EBADARG, "get_next_event: timeout must be None or seconds >= 0, not %r"
                        % (timeout,), argument="timeout")
    return _queue_of(fd, fid).get(timeout)


def events(fd, fid):
    """An async iterator over the events of function fid of flow fd."""
    return EventIterator(_queue_of(fd, fid))


class _CallableModule(types.ModuleType):
    """``mapi.events`` is this module and, called, the async iterator: mapi.events(fd, fid)."""

    def __call__(self, fd, fid):
        return events(fd, fid)


sys.modules[__name__].__class__ = _CallableModule
