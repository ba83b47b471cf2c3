"""Events pushed by the server, consumed with the same calls as local ones (mapi.events):
the queue is mapi.events.EventQueue, filled by the connection's reader thread; when the server
goes away a reader waiting on it gets the MapiError instead of waiting for ever."""
from mapi.errors import MapiError, ETIMEOUT
from mapi.events import Event, EventQueue, EventIterator
from mapi.proto.values import from_value


class RemoteEventQueue(EventQueue):
    def __init__(self, fd, fid):
        super().__init__(fd, fid)
        self.error = None

    def fail(self, error):
        with self._cv:
            self.error = error
            self._wake()

    def get(self, timeout=None):
        with self._cv:
            if not self._cv.wait_for(lambda: self._queue or self.ended or self.error, timeout):
                raise MapiError(ETIMEOUT, "no event from function %d of flow %d within %.3g s"
                                % (self.fid, self.fd, timeout), argument="timeout")
            if self._queue:
                return self._queue.popleft()
            if self.ended:
                return None
            raise self.error

    def _poll_or_wait(self, loop, fut):
        ev, ended = super()._poll_or_wait(loop, fut)
        if ev is None and not ended and self.error is not None:
            self._forget(fut)
            raise self.error
        return ev, ended


def events_of(push):
    """Event tuples of an Events push."""
    return [Event(r.ts, from_value(r.value), r.kind, from_value(r.threshold),
                  r.seq if r.has_seq else None, push.fd, push.fid) for r in push.events]


def iterator(queue):
    return EventIterator(queue)
