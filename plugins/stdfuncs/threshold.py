"""THRESHOLD(kind, ref, value, interval=0, count=0): asynchronous events when another
function's result crosses a value (read them with mapi.set_event_callback, mapi.get_next_event
or ``async for ev in mapi.events(fd, fid)``; see mapi.events).

kind      mapi.GREATER (result > value), mapi.LESS (result < value) or mapi.EQUAL (== value).
ref       (fd, fid) of a function with a numeric result on the same device: applied earlier
          in this flow, or in another flow connected before this one.  THRESHOLD hangs right
          after it and sees exactly its packets.
value     the threshold (a number).
interval  0: level mode - an event each time the condition turns true (it was false before:
          a crossing, not a level).  > 0 (ns, or "1s", "100ms"...): delta mode (MAPI's
          *_D_BOUND) - the condition is judged on each interval's change of the result, at most
          one event per interval; intervals follow the device's ticks as BUCKET's (on a live
          device they close on time without packets: LESS and EQUAL fire on an idle link).
count     stop after this many events (0: no limit).

Which packet, which timestamp:
- PKT_COUNTER / BYTE_COUNTER references are followed packet by packet in C: GREATER and EQUAL
  fire at the exact packet that crosses (PKT_COUNTER: the (value - count before)-th packet;
  BYTE_COUNTER: by cumulative wire length; EQUAL only if the sum hits the value exactly), with
  its timestamp and device-wide index (seq).  In delta mode GREATER fires at the packet that
  takes the interval's count above the value; EQUAL and LESS are judged when the interval is
  complete (ts = its end, seq None).  A counter never decreases, so level-mode LESS is refused.
- Any other numeric reference is judged after every batch and at each of the reference's
  ticks (level mode) or at the interval ends (delta mode); ts is the result's own ts (level)
  or the interval end (delta); seq is None.  A result that carries its own series (PKT_RATE
  and BIT_RATE: .history and .interval) is judged interval by interval, ts = interval end.
Before any packet, the condition is taken on the reference's value when THRESHOLD joined (a
counter's 0), so a result already beyond the value when THRESHOLD starts raises no event.

Result: the number of events raised; ts = the last event's ts.
"""
import math
import operator

from mapi._engine import ffi, lib
from mapi.constants import EQUAL, GREATER, LESS
from mapi.descriptor import Arg, FunctionDescriptor, FunctionInstance
from mapi.errors import MapiError, EBADARG
from mapi.events import Event, EventQueue

from .bucket import COUNTER_STEPS, Intervals, ResultRef, check_ref, parse_interval

_TEST = {GREATER: operator.gt, LESS: operator.lt, EQUAL: operator.eq}
UNLIMITED = 2 ** 64 - 1


class Threshold(FunctionInstance):
    def __init__(self, ctx, kind, ref, value, interval_ns, count):
        desc, node = ctx.resolve(*ref)
        self.fd, self.fid = ctx.fd, ctx.fid
        self.kind = kind
        self.value = value
        self.test = _TEST[kind]
        self.ref = ResultRef(ctx, ref)
        self.events = EventQueue(ctx.fd, ctx.fid)
        self.pending = []             # events of the batch under way
        self.fired = 0
        self.last_ts = 0
        self.delta = interval_ns > 0
        self.intervals = Intervals(ctx.device, interval_ns) if self.delta else None
        self.step = COUNTER_STEPS.get(desc.name)
        self._remaining = count if count else UNLIMITED
        if self.step is not None:
            self.c = ffi.new("mapi_threshold *")
            self.c.step = self.step
            self.c.remaining = self._remaining
            if kind == GREATER:
                self.c.kind = lib.MAPI_THRESHOLD_GREATER
                self.c.threshold = math.floor(value)       # v > x  <=>  v > floor(x) for integers
            elif kind == EQUAL and not self.delta:
                self.c.kind = lib.MAPI_THRESHOLD_EQUAL
                self.c.threshold = int(value)
            else:
                self.c.kind = lib.MAPI_THRESHOLD_NONE       # judged at interval ends
            self.kernel = lib.mapi_threshold_kernel
            self.state = self.c
        else:
            self.c = None
            self.kernel = lib.mapi_pass_kernel
            self.prev_cond = None     # unknown until the reference has a value
            self.seen_ts = 0          # end of the last interval of a series already judged
        if self.delta:
            self.tick_ns = interval_ns
        elif self.step is None:       # judge right after the reference's own ticks
            self.tick_ns = getattr(node.instance, "tick_ns", 0) if node is not None else 0
        self.base = None              # delta mode: the value at the start of the interval

    # --- events -----------------------------------------------------------------------------
    @property
    def remaining(self):
        return self.c.remaining if self.c is not None else self._remaining

    def _raise(self, ts, value, seq=None):
        if self.remaining == 0:
            return
        if self.c is not None:
            if self.c.remaining != UNLIMITED:
                self.c.remaining -= 1
        elif self._remaining != UNLIMITED:
            self._remaining -= 1
        self.pending.append(Event(ts, value, self.kind, self.value, seq, self.fd, self.fid))

    def _drain_kernel(self):
        c = self.c
        if c is None or not c.nevents:
            return
        for i in range(c.nevents):
            e = c.events[i]
            self.pending.append(Event(e.ts, e.value, self.kind, self.value, e.seq, self.fd,
                                      self.fid))
        c.nevents = 0

    def _publish(self):
        self._drain_kernel()
        if self.pending:
            batch, self.pending = self.pending, []
            self.fired += len(batch)
            self.last_ts = batch[-1].ts
            self.events.publish(batch)

    # --- engine hooks -----------------------------------------------------------------------
    def _current(self):
        if self.c is not None:
            return self.c.value, 0
        return self.ref.read()

    def on_join(self):
        value, _ = self.ref.read()
        if self.c is not None:
            self.c.value = value or 0
            if self.delta:
                self.c.base = self.c.value
        elif value is not None:
            self.prev_cond = bool(self.test(value, self.value))
            self._new_points(value, 0)          # a series' past is not news
        self.base = self._current()[0]

    def on_tick(self, t_ns):
        if self.delta:
            self._drain_kernel()      # crossings before this boundary come first
            first_end, k = self.intervals.closed(self, t_ns)
            value = self._current()[0]
            self._judge_intervals(first_end, k, value)
        else:
            self._judge_level(t_ns)

    def _judge_intervals(self, first_end, k, value):
        if value is None:
            return
        change = value - (self.base if self.base is not None else 0)
        self.base = value
        if self.c is not None:
            self.c.base = self.c.value
        judged_here = (self.c is None) or self.kind != GREATER    # counter GREATER fired in C
        if not judged_here:
            return
        ns = self.intervals.ns
        if self.test(change, self.value):
            self._raise(first_end, change)
        if k > 1 and self.test(0, self.value):                     # the empty intervals after it
            # a long silence closes millions of intervals: make only the events the queue takes
            room = max(0, min(k - 1, self.events.room() - len(self.pending)))
            for i in range(1, room + 1):
                self._raise(first_end + i * ns, 0)
            self.events.dropped += k - 1 - room

    def _judge_level(self, now_ts):
        if self.c is not None:
            return
        value, ts = self.ref.read()
        if value is None:
            return
        for t, v in self._new_points(value, ts or now_ts):
            cond = bool(self.test(v, self.value))
            if cond and self.prev_cond is not True:
                self._raise(t, v)
            self.prev_cond = cond

    def _new_points(self, value, ts):
        """The values the reference took since the last look.  A result that carries its own
        series (a meter's Rate: .history [(start, value)] and .interval) gives every interval
        it closed, even several at once; any other result gives its current value."""
        history, step = getattr(value, "history", None), getattr(value, "interval", None)
        if history is None or not step:
            return [(ts, value)]
        points = [(start + step, v) for start, v in history if start + step > self.seen_ts]
        if points:
            self.seen_ts = points[-1][0]
        return points

    def after_batch(self, batch):
        if not self.delta and batch.c.n:
            self._judge_level(batch.c.ts[batch.c.n - 1])
        self._publish()

    def end(self):
        self._publish()
        self.events.end()

    def unblock(self):
        self.events.end()

    def close(self):
        self.events.end()

    def result(self):
        return self.fired, self.last_ts

    def info(self):
        d = dict(kind=self.kind, value=self.value, mode="delta" if self.delta else "level",
                 per_packet=self.c is not None, events=self.fired,
                 remaining=None if self.remaining == UNLIMITED else self.remaining)
        d.update(self.events.info())
        if self.c is not None:
            d["events_dropped"] += self.c.dropped
        return d


def check(ctx, args):
    kind, ref, value, interval, count = args
    desc = check_ref("THRESHOLD", ctx, ref, numeric=True)
    interval = parse_interval("THRESHOLD", "interval", interval, allow_zero=True)
    if count < 0:
        raise MapiError(EBADARG, "THRESHOLD: argument 'count' = %d must be 0 (no limit) or more"
                        % count, argument="count")
    if desc.name in COUNTER_STEPS:
        if value < 0:
            raise MapiError(EBADARG, "THRESHOLD: argument 'value' = %r: a %s never goes below 0"
                            % (value, desc.name), argument="value")
        if kind == LESS and interval == 0:
            raise MapiError(EBADARG, "THRESHOLD: LESS on %s can never fire: a counter only grows; "
                            "give an interval to judge each interval's count" % desc.name,
                            argument="kind")
        if kind == EQUAL and value != int(value):
            raise MapiError(EBADARG, "THRESHOLD: EQUAL %r on %s can never fire: a count is a whole "
                            "number" % (value, desc.name), argument="value")
        if value >= 2 ** 62:
            raise MapiError(EBADARG, "THRESHOLD: argument 'value' = %r is out of range"
                            % (value,), argument="value")
    return kind, ref, value, interval, count


DESCRIPTOR = FunctionDescriptor(
    name="THRESHOLD",
    args=(Arg("kind", "c", choices=(GREATER, LESS, EQUAL),
              doc="mapi.GREATER, mapi.LESS, mapi.EQUAL"),
          Arg("ref", "F", doc="(fd, fid) of the function to watch"),
          Arg("value", "n", doc="the threshold"),
          Arg("interval", "t", 0, doc="0: the value itself; else judge each interval's change"),
          Arg("count", "i", 0, doc="stop after this many events (0: no limit)")),
    create=lambda ctx, args: Threshold(ctx, *args),
    check=check, doc=__doc__, result="events", cost="low", shareable=False, stateful=True,
    anchor="ref",
)
