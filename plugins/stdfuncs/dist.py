"""DIST(ref, min, max, width, interval=0, reset=False): histogram of another function's result.

ref       (fd, fid) of a function with a numeric result on the same device, applied earlier
          in this flow or in another flow connected before this one (DIST hangs right after
          it and sees exactly its packets).
min, max  the histogram covers [min, max); samples below min and at or above max are counted
          apart (under, over).
width     bin width (MAPI's "interval"): bin k holds [min + k*width, min + (k+1)*width); the
          last bin ends at max.  ceil((max - min) / width) bins, at most 1048576.
interval  0: one sample per packet that reaches the referenced function; only for PKT_COUNTER
          and BYTE_COUNTER, in C, with integer min/max/width.  With reset, DIST of a
          BYTE_COUNTER is the packet size distribution.
          > 0 (ns, or "1s", "100ms"...): one sample per interval of the device's time, as STATS.
reset     False: the sample is the referenced value; True: its change since the previous sample.

Result: Dist(min, max, width, bins, under, over, count), bins a list of counts.
"""
import math
from collections import namedtuple

from mapi._engine import ffi, lib
from mapi.descriptor import Arg, FunctionDescriptor, FunctionInstance
from mapi.errors import MapiError, EBADARG

from .bucket import COUNTER_STEPS, IntervalSampler, ResultRef, check_ref, parse_interval

MAX_BINS = 1 << 20

Dist = namedtuple("Dist", "min max width bins under over count")


class PacketDist(FunctionInstance):
    """Per packet of a counter, in C."""

    kernel = lib.mapi_dist_kernel

    def __init__(self, ctx, ref, step, lo, hi, width, nbins, reset):
        self.ref = ResultRef(ctx, ref)
        self.bins = ffi.new("uint64_t[]", nbins)
        self.c = ffi.new("mapi_dist *", dict(counter=dict(step=step, delta=1 if reset else 0),
                                             min=lo, max=hi, width=width, nbins=nbins,
                                             bins=self.bins))
        self.state = self.c

    def on_join(self):
        self.c.counter.value = self.ref.read()[0] or 0

    def result(self):
        c = self.c
        bins = list(self.bins)
        return (Dist(c.min, c.max, c.width, bins, c.under, c.over, sum(bins) + c.under + c.over),
                self.ref.read()[1])

    def reset(self):
        ffi.memmove(self.bins, bytes(8 * self.c.nbins), 8 * self.c.nbins)
        self.c.under = self.c.over = 0


class IntervalDist(IntervalSampler, FunctionInstance):
    """Per interval of packet time, from the device's ticks."""

    kernel = lib.mapi_pass_kernel

    def __init__(self, ctx, ref, lo, hi, width, nbins, interval_ns, reset):
        self.ref = ResultRef(ctx, ref)
        self.lo, self.hi, self.width = lo, hi, width
        self.bins = [0] * nbins
        self.under = self.over = 0
        self.sample_every(ctx, ref, interval_ns, reset)

    def _add(self, x, times):
        if x < self.lo:
            self.under += times
        elif x >= self.hi:
            self.over += times
        else:
            # floor division: exact for integers; for floats, rounding may not pass the last bin
            self.bins[min(int((x - self.lo) // self.width), len(self.bins) - 1)] += times

    def result(self):
        bins = list(self.bins)
        return (Dist(self.lo, self.hi, self.width, bins, self.under, self.over,
                     sum(bins) + self.under + self.over), self.last_end)

    def reset(self):
        self.bins = [0] * len(self.bins)
        self.under = self.over = 0


def _bins(lo, hi, width):
    q = (hi - lo) / width
    return int(math.ceil(q)) if isinstance(q, float) else -((lo - hi) // width)


def create(ctx, args):
    ref, lo, hi, width, interval, reset = args
    desc, _ = ctx.resolve(*ref)
    nbins = _bins(lo, hi, width)
    if interval == 0:
        return PacketDist(ctx, ref, COUNTER_STEPS[desc.name], lo, hi, width, nbins, reset)
    return IntervalDist(ctx, ref, lo, hi, width, nbins, interval, reset)


def check(ctx, args):
    ref, lo, hi, width, interval, reset = args
    desc = check_ref("DIST", ctx, ref, numeric=True)
    interval = parse_interval("DIST", "interval", interval, allow_zero=True)
    if not hi > lo:
        raise MapiError(EBADARG, "DIST: argument 'max' = %r must be greater than min = %r"
                        % (hi, lo), argument="max")
    if not width > 0:
        raise MapiError(EBADARG, "DIST: argument 'width' = %r must be greater than 0" % (width,),
                        argument="width")
    if _bins(lo, hi, width) > MAX_BINS:
        raise MapiError(EBADARG, "DIST: (max - min) / width = %d bins; at most %d: use a wider "
                        "bin" % (_bins(lo, hi, width), MAX_BINS), argument="width")
    if interval == 0:
        if desc.name not in COUNTER_STEPS:
            raise MapiError(EBADARG, "DIST: per-packet sampling (interval 0) needs a PKT_COUNTER "
                            "or BYTE_COUNTER reference, but (%d, %d) is %s; give an interval such "
                            "as \"1s\"" % (ref[0], ref[1], desc.name), argument="interval")
        for name, v in (("min", lo), ("max", hi), ("width", width)):
            if not isinstance(v, int) or not -2 ** 63 <= v < 2 ** 63:
                raise MapiError(EBADARG, "DIST: argument %r = %r must be a 64-bit integer when "
                                "sampling a counter per packet" % (name, v), argument=name)
    return ref, lo, hi, width, interval, reset


DESCRIPTOR = FunctionDescriptor(
    name="DIST",
    args=(Arg("ref", "F", doc="(fd, fid) of the function to sample"),
          Arg("min", "n", doc="lowest value of the first bin"),
          Arg("max", "n", doc="end of the last bin (exclusive)"),
          Arg("width", "n", doc="bin width (MAPI's interval)"),
          Arg("interval", "t", 0, doc="0: per packet (counters); else ns or \"1s\", \"100ms\""),
          Arg("reset", "b", False, doc="sample the change instead of the value")),
    create=create, check=check, doc=__doc__, result="struct", cost="low", shareable=True,
    stateful=True, anchor="ref",
)
