"""PKT_RATE(interval="1s", size=1000), BIT_RATE(interval="1s", size=1000): meters of the
packets that reach them, in packets per second and bits per second (8 x wire length).

interval  the measuring interval of packet time (ns, or a string with a unit: "1s", "100ms").
size      how many past intervals the history keeps.

Intervals follow the device's ticks (see BUCKET): the first starts at the first packet the
device processes once the meter is connected; a rate is known once its interval is complete
(packet time reached its end), so the interval the stream ends in is never reported.  On a
live device time passes without packets too (the device clock, mapi.ticks): on an idle link
the intervals keep closing and the rate falls to 0 within two intervals.

Result: a Rate, the float rate of the last complete interval (None before the first one),
with .start (interval start, ns), .interval (ns) and .history, the list of (start, rate) of
the last `size` intervals, oldest first; ts = the end of that interval.
"""
from collections import deque

from mapi._engine import ffi, lib
from mapi.descriptor import Arg, FunctionDescriptor, FunctionInstance
from mapi.errors import MapiError, EBADARG

from .bucket import Intervals, Snapshot, parse_interval, repeat_into


class Rate(float):
    """A rate (float) that also carries its interval and the meter's history."""

    def __new__(cls, value, start, interval, history):
        self = float.__new__(cls, value)
        self.start = start
        self.interval = interval
        self.history = history
        return self

    def __reduce__(self):
        return (Rate, (float(self), self.start, self.interval, self.history))


class Meter(FunctionInstance):
    def __init__(self, ctx, kernel, per_unit, interval_ns, size):
        self.kernel = kernel
        self.counter = ffi.new("mapi_counter *")
        self.state = self.counter
        self.tick_ns = interval_ns
        self.per_second = per_unit * 10 ** 9  # rate = counted * per_second / interval_ns, ints
        self.intervals = Intervals(ctx.device, interval_ns)
        self.history = deque(maxlen=size)
        self.lost = 0
        self.base = 0

    def on_tick(self, t_ns):
        first_end, k = self.intervals.closed(self, t_ns)
        counted = self.counter.value - self.base
        self.base = self.counter.value
        start = first_end - self.tick_ns
        ns = self.tick_ns
        self.lost += repeat_into(self.history, Snapshot(start, counted * self.per_second / ns),
                                 lambda i: Snapshot(start + i * ns, 0.0), k)

    def result(self):
        if not self.history:
            return None, 0
        start, rate = self.history[-1]
        return Rate(rate, start, self.tick_ns, list(self.history)), start + self.tick_ns

    def reset(self):
        self.history.clear()

    def info(self):
        return dict(interval_ns=self.tick_ns, size=self.history.maxlen, counted=self.counter.value,
                    intervals_lost=self.lost)


def _check(name):
    def check(ctx, args):
        interval, size = args
        interval = parse_interval(name, "interval", interval)
        if not 1 <= size <= 10 ** 7:
            raise MapiError(EBADARG, "%s: argument 'size' = %d must be between 1 and 10000000"
                            % (name, size), argument="size")
        return interval, size
    return check


def _descriptor(name, kernel, per_unit, what):
    return FunctionDescriptor(
        name=name,
        args=(Arg("interval", "t", "1s", doc="ns, or a string with a unit: \"1s\", \"100ms\""),
              Arg("size", "i", 1000, doc="past intervals kept")),
        create=lambda ctx, args: Meter(ctx, kernel, per_unit, *args),
        check=_check(name), doc="%s: %s per second over an interval.\n\n%s" % (name, what, __doc__),
        result="float", cost="free", shareable=True, stateful=True,
    )


DESCRIPTOR = [
    _descriptor("PKT_RATE", lib.mapi_pkt_counter_kernel, 1, "packets"),
    _descriptor("BIT_RATE", lib.mapi_byte_counter_kernel, 8, "bits (8 x wire length)"),
]
