"""STATS(ref, interval=0, reset=False): count, sum, sum of squares, min and max of another
function's result, sampled either per packet or per interval.

ref       (fd, fid) of a function with a numeric result on the same device, applied earlier
          in this flow or in another flow connected before this one (STATS hangs right after
          it and sees exactly its packets).
interval  0: one sample per packet that reaches the referenced function; only for PKT_COUNTER
          and BYTE_COUNTER, followed in C.  With reset, STATS of a BYTE_COUNTER is the
          statistics of the packets' wire lengths.
          > 0 (ns, or "1s", "100ms"...): one sample per interval of the device's time (packet
          time; live, the device clock too), taken at its end (intervals as BUCKET's; empty
          intervals are samples too; the interval the stream ends in is not).  Any numeric
          reference.
reset     False: the sample is the referenced value; True: its change since the previous
          sample (per packet: what the packet added; per interval: the interval's count) -
          MAPI's reset, without touching the referenced function.

Result: Stats(count, sum, sum2, min, max) with .mean and .variance; min/max None while
count is 0.  Integer samples give exact integer sums.
"""
from mapi._engine import ffi, lib
from mapi.descriptor import Arg, FunctionDescriptor, FunctionInstance
from mapi.errors import MapiError, EBADARG
from mapi.results import Stats

from .bucket import COUNTER_STEPS, IntervalSampler, ResultRef, check_ref, parse_interval


class PacketStats(FunctionInstance):
    """Per packet of a counter, in C."""

    kernel = lib.mapi_stats_kernel

    def __init__(self, ctx, ref, step, reset):
        self.ref = ResultRef(ctx, ref)
        self.c = ffi.new("mapi_stats *")
        self.c.counter.step = step
        self.c.counter.delta = 1 if reset else 0
        self.state = self.c

    def on_join(self):
        self.c.counter.value = self.ref.read()[0] or 0

    def result(self):
        c = self.c
        ts = self.ref.read()[1]       # the counter's last packet: the last sample
        if not c.count:
            return Stats(0, 0, 0, None, None), ts
        return Stats(c.count, (c.sum_hi << 64) | c.sum_lo, (c.sum2_hi << 64) | c.sum2_lo,
                     c.min, c.max), ts

    def reset(self):
        value = self.c.counter.value
        ffi.memmove(self.c, bytes(ffi.sizeof("mapi_stats")), ffi.sizeof("mapi_stats"))
        self.c.counter.value = value


class IntervalStats(IntervalSampler, FunctionInstance):
    """Per interval of packet time, from the device's ticks."""

    kernel = lib.mapi_pass_kernel

    def __init__(self, ctx, ref, interval_ns, reset):
        self.ref = ResultRef(ctx, ref)
        self.sample_every(ctx, ref, interval_ns, reset)
        self.stats = Stats(0, 0, 0, None, None)

    def _add(self, x, times):
        s = self.stats
        self.stats = Stats(s.count + times, s.sum + x * times, s.sum2 + x * x * times,
                           x if s.min is None or x < s.min else s.min,
                           x if s.max is None or x > s.max else s.max)

    def result(self):
        return self.stats, self.last_end

    def reset(self):
        self.stats = Stats(0, 0, 0, None, None)


def create(ctx, args):
    ref, interval, reset = args
    desc, _ = ctx.resolve(*ref)
    if interval == 0:
        return PacketStats(ctx, ref, COUNTER_STEPS[desc.name], reset)
    return IntervalStats(ctx, ref, interval, reset)


def check(ctx, args):
    ref, interval, reset = args
    desc = check_ref("STATS", ctx, ref, numeric=True)
    interval = parse_interval("STATS", "interval", interval, allow_zero=True)
    if interval == 0 and desc.name not in COUNTER_STEPS:
        raise MapiError(EBADARG, "STATS: per-packet sampling (interval 0) needs a PKT_COUNTER or "
                        "BYTE_COUNTER reference, but (%d, %d) is %s; give an interval such as "
                        "\"1s\"" % (ref[0], ref[1], desc.name), argument="interval")
    return ref, interval, reset


DESCRIPTOR = FunctionDescriptor(
    name="STATS",
    args=(Arg("ref", "F", doc="(fd, fid) of the function to sample"),
          Arg("interval", "t", 0, doc="0: per packet (counters); else ns or \"1s\", \"100ms\""),
          Arg("reset", "b", False, doc="sample the change instead of the value")),
    create=create, check=check, doc=__doc__, result="struct", cost="low", shareable=True,
    stateful=True, anchor="ref",
)
