"""BUCKET(ref, interval, reset=False, size=1000): periodic snapshots of another function's result.

ref       (fd, fid) of a function of any flow on the same device (MAPI's fd, fid).
interval  packet time between snapshots: an integer number of nanoseconds, or a string with a
          unit: "1s", "100ms", "250us", "10ns", "1.5s", "2m", "1h".
reset     False: each snapshot is the referenced result at the end of its interval.
          True: the change over the interval (MAPI's reset=1, per-interval counts) - computed as
          a difference, so the referenced function, which other flows may share, is never reset.
          Needs a numeric (u64/float) reference.
size      how many snapshots are kept (the oldest go first; MAPI's ring held 1000).

Intervals follow the device's ticks: the first starts at the first packet the device processes
once BUCKET is connected, each lasts exactly `interval`, and a snapshot sees exactly the packets
whose timestamps lie before its interval's end (the device cuts batches there).  Intervals
without packets are there too (the same value, or 0 with reset).  When the stream ends, the
interval it ended in is appended as the last entry (info()["partial_last"] then says so).
On a live device the device clock also closes intervals (mapi.ticks): BUCKET keeps its cadence
on an idle link, its grid starting when the device's time first reached it.

Result: the list of (start, value) snapshots, start = interval start in ns since the epoch;
ts = the end of the last complete interval.

This module also holds what the functions that consume other results share (STATS, DIST,
BINOP, THRESHOLD, meters): duration parsing, reference checks and reading, and interval
bookkeeping on the device's ticks.
"""
from collections import deque, namedtuple

from mapi._engine import lib
from mapi.descriptor import Arg, FunctionDescriptor, FunctionInstance
from mapi.errors import MapiError, EBADARG

NUMERIC_RESULTS = ("u64", "float")
# References whose result a kernel anchored right after them can follow packet by packet.
COUNTER_STEPS = {"PKT_COUNTER": lib.MAPI_STEP_PACKETS, "BYTE_COUNTER": lib.MAPI_STEP_WIRELEN}

_UNITS = {"ns": 1, "us": 10 ** 3, "ms": 10 ** 6, "s": 10 ** 9, "m": 60 * 10 ** 9,
          "h": 3600 * 10 ** 9}

Snapshot = namedtuple("Snapshot", "start value")


def parse_interval(fname, argname, value, allow_zero=False):
    """A duration argument -> integer nanoseconds (int: ns; str: number + unit)."""
    def bad(why):
        raise MapiError(EBADARG, "%s: argument %r = %r: %s; give nanoseconds as an integer or a "
                        "string with a unit (ns, us, ms, s, m, h), e.g. \"1s\" or \"100ms\""
                        % (fname, argname, value, why), argument=argname)
    if isinstance(value, bool):
        bad("not a duration")
    if isinstance(value, int):
        ns = value
    elif isinstance(value, str):
        text = value.strip().lower()
        unit = next((u for u in sorted(_UNITS, key=len, reverse=True) if text.endswith(u)), None)
        if unit is None:
            bad("no unit")
        from fractions import Fraction
        try:
            amount = Fraction(text[:-len(unit)].strip())
        except (ValueError, ZeroDivisionError):
            bad("not a number")
        ns = amount * _UNITS[unit]
        if ns.denominator != 1:
            bad("not a whole number of nanoseconds")
        ns = int(ns)
    else:
        bad("not a duration")
    if ns < 0 or (ns == 0 and not allow_zero):
        bad("must be %s" % ("0 or more" if allow_zero else "more than 0"))
    if ns >= 2 ** 62:
        bad("too long")
    return ns


def check_ref(fname, ctx, ref, argname="ref", numeric=False):
    """Apply-time check of an (fd, fid) reference; returns the referenced descriptor."""
    fd, fid = ref
    try:
        desc, _ = ctx.resolve(fd, fid)
    except MapiError as exc:
        raise MapiError(exc.code, "%s: argument %r = (%d, %d): %s" % (fname, argname, fd, fid, exc),
                        argument=argname)
    from mapi.api import get_flow_info
    where = get_flow_info(fd)["device"]
    if where != ctx.device.name:
        raise MapiError(EBADARG, "%s: argument %r = (%d, %d) is on device %s, but flow %d is on "
                        "%s; both flows must watch the same device"
                        % (fname, argname, fd, fid, where, ctx.fd, ctx.device.name),
                        argument=argname)
    if numeric and desc.result not in NUMERIC_RESULTS:
        raise MapiError(EBADARG, "%s: argument %r = (%d, %d) is %s, whose result is %s; %s needs a "
                        "numeric result (u64 or float), e.g. PKT_COUNTER or BYTE_COUNTER"
                        % (fname, argname, fd, fid, desc.name, desc.result, fname),
                        argument=argname)
    return desc


class ResultRef:
    """Reads the current result of another function, wherever it runs."""

    def __init__(self, ctx, ref):
        self.fd, self.fid = ref
        self._resolve = ctx.resolve
        self._device = ctx.device

    def node(self):
        try:
            return self._resolve(self.fd, self.fid)[1]
        except MapiError:             # its flow was closed meanwhile
            return None

    def read(self):
        """(value, ts) now; (None, 0) while its flow is not connected or after it closed."""
        node = self.node()
        if node is None:
            return None, 0
        result = getattr(self._device, "result", None)
        return result(node) if result is not None else node.instance.result()


class IntervalSampler:
    """Mixin: sample another function's result once per interval of packet time and feed each
    closed interval to self._add(value, times) (the change over the interval in reset mode)."""

    def sample_every(self, ctx, ref, interval_ns, reset):
        self.tick_ns = interval_ns
        self.reset_mode = reset
        self.intervals = Intervals(ctx.device, interval_ns)
        self.prev = None
        self.last_end = 0

    def on_join(self):
        self.prev = self.ref.read()[0]

    def on_tick(self, t_ns):
        first_end, k = self.intervals.closed(self, t_ns)
        value = self.ref.read()[0]
        if value is None:
            return
        if self.reset_mode:
            first, later = value - (self.prev or 0), 0
        else:
            first = later = value
        self.prev = value
        self._add(first, 1)
        if k > 1:
            self._add(later, k - 1)
        self.last_end = t_ns


class Intervals:
    """The intervals the device's ticks close.  The device calls on_tick(t) once when packet
    time passes one or more boundaries (t: the latest); this tells how many closed."""

    def __init__(self, device, interval_ns):
        self.device = device
        self.ns = interval_ns
        self.last_end = None

    def _device_next(self, inst):
        """The device's next boundary for inst; during on_tick(t), the first one t covers."""
        return self.device.next_tick(inst)

    def closed(self, inst, t_ns):
        """on_tick(t_ns) -> (first_end, k): k >= 1 intervals ended, at first_end,
        first_end + ns, ..., t_ns.  No packet fell between first_end and t_ns."""
        if self.last_end is not None:
            first = self.last_end + self.ns
        else:
            first = self._device_next(inst)
            if first is None or first > t_ns or (t_ns - first) % self.ns:
                first = t_ns
        self.last_end = t_ns
        return first, (t_ns - first) // self.ns + 1

    def current_start(self, inst):
        """Start of the interval under way (None before the device saw a packet)."""
        if self.last_end is not None:
            return self.last_end
        nxt = self._device_next(inst)
        return None if nxt is None else nxt - self.ns


def repeat_into(entries, first, rest, k):
    """Append `first`, then k - 1 times `rest` (lazily: only what a bounded deque keeps);
    returns how many entries fell out."""
    cap = entries.maxlen
    lost = max(0, len(entries) + k - cap)
    if k > cap:
        entries.clear()
        for i in range(k - cap, k):
            entries.append(rest(i))
        return lost
    entries.append(first)
    for i in range(1, k):
        entries.append(rest(i))
    return lost


class Bucket(FunctionInstance):
    kernel = lib.mapi_pass_kernel

    def __init__(self, ctx, ref, interval_ns, reset, size):
        self.ref = ResultRef(ctx, ref)
        self.tick_ns = interval_ns
        self.reset_mode = reset
        self.intervals = Intervals(ctx.device, interval_ns)
        self.entries = deque(maxlen=size)
        self.lost = 0
        self.partial_last = False
        self.prev = None              # referenced value at the previous boundary

    def on_join(self):
        self.prev = self.ref.read()[0]

    def on_tick(self, t_ns):
        first_end, k = self.intervals.closed(self, t_ns)
        self._record(first_end - self.tick_ns, k, self.ref.read()[0])

    def _record(self, start, k, value):
        ns = self.tick_ns
        if self.reset_mode:
            first = None if value is None else value - (self.prev or 0)
            later = None if value is None else 0
        else:
            first = later = value
        if value is not None:
            self.prev = value
        self.lost += repeat_into(self.entries, Snapshot(start, first),
                                 lambda i: Snapshot(start + i * ns, later), k)

    def end(self):
        start = self.intervals.current_start(self)
        if start is not None and not self.partial_last:
            self.partial_last = True
            self._record(start, 1, self.ref.read()[0])

    def result(self):
        return list(self.entries), self.intervals.last_end or 0

    def info(self):
        return dict(interval_ns=self.tick_ns, reset=self.reset_mode, size=self.entries.maxlen,
                    snapshots_lost=self.lost, partial_last=self.partial_last)


def check(ctx, args):
    ref, interval, reset, size = args
    check_ref("BUCKET", ctx, ref, numeric=reset)
    interval = parse_interval("BUCKET", "interval", interval)
    if not 1 <= size <= 10 ** 7:
        raise MapiError(EBADARG, "BUCKET: argument 'size' = %d must be between 1 and 10000000"
                        % size, argument="size")
    return ref, interval, reset, size


DESCRIPTOR = FunctionDescriptor(
    name="BUCKET",
    args=(Arg("ref", "F", doc="(fd, fid) of the function to snapshot"),
          Arg("interval", "t", doc="ns, or a string with a unit: \"1s\", \"100ms\""),
          Arg("reset", "b", False, doc="per-interval change instead of the value"),
          Arg("size", "i", 1000, doc="snapshots kept")),
    create=lambda ctx, args: Bucket(ctx, *args),
    check=check, doc=__doc__, result="list", cost="free", shareable=True, stateful=True,
)
