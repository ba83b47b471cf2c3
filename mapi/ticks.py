"""Time in a device: when the functions that work per interval of time (BUCKET, PKT_RATE and
BIT_RATE, THRESHOLD's intervals, STATS/DIST per interval, the CLI's --interval: the plan's *tick
nodes*) see a boundary pass, and what time the derived-batch producers (DEFRAG, COOKING,
FLOW_REPORT) run their timeouts on.

Offline, time is packet time and nothing else: a node's boundaries are the first packet it sees
+ k * tick_ns; the engine cuts a batch where packet time crosses one, runs the packets before
it, then calls on_tick(latest boundary crossed).  Intervals without packets close together
with the next packet (on_tick covers several boundaries at once).

Live, time also passes without packets.  The device clock (DeviceClock: CLOCK_REALTIME, the
clock the kernel stamps packets with, never going backwards) is read when each batch is taken
from the source, and by the engine thread when no batch came by the next boundary.  The
engine's time is the later of packet time and that clock minus the source's delivery lag (a
packet captured before it has been handed over by then), so an idle link still closes its
intervals: rates decay to 0, BUCKET keeps its cadence, a THRESHOLD on intervals fires on time,
and producers expire what they hold (they get an empty batch whose clock_ns is that time).
A packet that arrives after its interval was closed by the clock counts in the interval
under way.
"""
import threading
import time

from ._engine import ffi

# How late a live source may hand over a packet after the kernel stamped it (TPACKET_V3
# retires a block after its 10 ms timeout; recvmmsg returns at once); a source may say
# otherwise with a `clock_lag_ns` attribute.
DEFAULT_LAG_NS = 50 * 10 ** 6
# The engine thread of a live device wakes at least this often without batches (seconds).
WAKE_S = 0.1


class DeviceClock:
    """CLOCK_REALTIME in nanoseconds, never going backwards: if the system clock is stepped
    back, the device's time stands still until real time catches up (packet timestamps, which
    the kernel takes from the same clock, step back with it and count in the interval under
    way); a step forward closes the intervals in between at once, as packets would."""

    def __init__(self):
        self._last = 0
        self._lock = threading.Lock()

    def now(self):
        t = time.time_ns()
        with self._lock:
            if t < self._last:
                return self._last
            self._last = t
            return t


class Ticks:
    """The next boundary of every tick node of a device's plan (keyed by instance)."""

    def __init__(self):
        self._next = {}                # id(instance) -> next boundary (ns)

    def next_tick(self, inst):
        return self._next.get(id(inst))

    def forget(self, inst):
        self._next.pop(id(inst), None)

    def first_boundary(self, plan, t_ns):
        """The earliest next boundary of the plan's tick nodes (None without any); a node
        that never saw time starts its grid at t_ns."""
        nxt = None
        for node in plan.tick_nodes:
            key = id(node.instance)
            t = self._next.get(key)
            if t is None:
                t = self._next[key] = t_ns + node.instance.tick_ns
            if nxt is None or t < nxt:
                nxt = t
        return nxt

    def earliest(self, plan):
        """The earliest boundary still to come, among nodes that saw time (None: none)."""
        known = [self._next[id(n.instance)] for n in plan.tick_nodes if id(n.instance) in self._next]
        return min(known) if known else None

    def fire(self, plan, ts):
        """Time reached ts: every node whose boundary passed gets on_tick(its latest boundary
        at or before ts), once, however many boundaries that covers."""
        for node in plan.tick_nodes:
            inst = node.instance
            key = id(inst)
            t = self._next.get(key)
            if t is not None and ts >= t:
                step = inst.tick_ns
                last = t + ((ts - t) // step) * step
                inst.on_tick(last)
                self._next[key] = last + step


class EmptyBatch:
    """The batch (.c) that says time passed on a live device: no packet, clock_ns set."""

    __slots__ = ("c",)

    def __init__(self):
        self.c = ffi.new("mapi_batch *")


class LiveTime:
    """A live device's time: packet time or the device clock minus the source's lag,
    whichever is later; advance() lets the plan see it move."""

    def __init__(self, source, ticks):
        self.clock = DeviceClock()
        self.lag_ns = getattr(source, "clock_lag_ns", DEFAULT_LAG_NS)
        self.ticks = ticks
        self.time_ns = 0
        self.empty = EmptyBatch()

    def now(self):
        """What the engine may take as passed: every packet stamped before it was handed over."""
        return self.clock.now() - self.lag_ns

    def saw(self, ts):
        """Packets up to ts went through the plan (their boundaries closed with them)."""
        if ts > self.time_ns:
            self.time_ns = ts

    def wake_s(self, plan):
        """How long the engine thread may wait for a batch: until the next boundary has
        passed on the clock (and the lag), at most WAKE_S."""
        nxt = self.ticks.earliest(plan) if plan is not None else None
        if nxt is None:
            return WAKE_S
        return min(WAKE_S, max(0.001, (nxt - self.now()) / 1e9))

    def advance(self, plan, t, run, linktype):
        """Time moves on to t (if later): producers see the first boundary it passes, the
        boundaries close, producers see t.  run(plan, c) runs the plan over a batch of the
        device's link type.  Returns the empty batch (for after_batch)."""
        self.empty.c.linktype = linktype
        if t > self.time_ns:
            nxt = self.ticks.first_boundary(plan, t)
            if nxt is not None and nxt <= t:
                self._time_pass(plan, nxt, run)
                self.ticks.fire(plan, t)
            self._time_pass(plan, t, run)
            self.time_ns = t
        return self.empty

    def _time_pass(self, plan, t, run):
        """The empty batch, clock_ns = t, through the plan: producers run their timeouts (one
        under another reads that one's batch, which says the same time meanwhile)."""
        c = self.empty.c
        c.n = 0
        c.clock_ns = t
        if not plan.producers:
            return
        made = [plan.c.nodes[i].made for i in plan.producers]
        for m in made:
            m.clock_ns = t
        try:
            run(plan, c)
        finally:
            for m in made:
                m.clock_ns = 0
