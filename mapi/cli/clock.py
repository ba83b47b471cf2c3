"""CLI_CLOCK: the node that cuts a run into intervals for `mapi run --interval`.

One CLI_CLOCK sits in a flow of its own on each device of the run.  At every interval end it
reads the results of the functions it watches (its *targets*) and hands a Snapshot to the
command through a queue.  Reads happen in the engine's thread between two (sub-)batches, so a
snapshot is one consistent instant of every function.

  offline (packet time): the device's ticks cut batches at first packet + k * interval, so an
      interval holds exactly the packets whose timestamps fall in it (tshark -z io,stat's rows);
      intervals without packets come out with the next packet; the stream's end closes the
      last, partial interval.
  live (wall clock): checked after every batch; the capture backends hand the engine a batch
      (empty when idle) every few milliseconds, so rows keep their cadence on an idle link.

The function is registered at run time by the command (it watches CLI-owned targets, so it is
no part of the standard library); its one argument is the id of a Clock made beforehand.
"""
import itertools
import threading
import time
from collections import namedtuple

from mapi import hookimpl
from mapi._engine import lib
from mapi.descriptor import Arg, FunctionDescriptor, FunctionInstance

NAME = "CLI_CLOCK"
# One reading of a target function: its result and the packets it saw / let through.
Reading = namedtuple("Reading", "value ts pkts_in pkts_out")
# Readings of every target at the end of [start_ns, end_ns); `repeat` > 1: that many intervals
# closed at once (no packet in the later ones); partial: the stream ended inside it.
Snapshot = namedtuple("Snapshot", "start_ns end_ns readings repeat partial")

_clocks = {}
_ids = itertools.count(1)
_lock = threading.Lock()


class Clock:
    """What one CLI_CLOCK node reports to: its targets [(fd, fid)], interval, clock kind and
    a callback taking each Snapshot (called in the engine's thread: keep it short)."""

    def __init__(self, targets, interval_ns, wall, emit):
        self.targets = list(targets)
        self.interval_ns = interval_ns
        self.wall = wall
        self.emit = emit
        with _lock:
            self.id = next(_ids)
            _clocks[self.id] = self

    def forget(self):
        with _lock:
            _clocks.pop(self.id, None)

    def read(self):
        import mapi
        out = []
        for fd, fid in self.targets:
            try:
                r = mapi.read_results(fd, fid)
                info = mapi.get_function_info(fd, fid)
            except mapi.MapiError:          # its flow is gone
                out.append(None)
                continue
            out.append(Reading(r.value, r.ts, info.get("pkts_in"), info.get("pkts_out")))
        return out


class ClockNode(FunctionInstance):
    kernel = lib.mapi_pass_kernel

    def __init__(self, ctx, clock):
        self.clock = clock
        self.device = ctx.device
        self.ns = clock.interval_ns
        self.tick_ns = 0 if clock.wall else self.ns
        self.next_end = None          # wall clock: end of the interval under way
        self.ended = False

    # packet time ------------------------------------------------------------------------------
    def on_tick(self, t_ns):
        first_end = self.device.next_tick(self)    # the first boundary this call covers
        if first_end is None or first_end > t_ns:
            first_end = t_ns
        k = (t_ns - first_end) // self.ns + 1
        self.clock.emit(Snapshot(first_end - self.ns, first_end, self.clock.read(), k, False))

    # wall clock -------------------------------------------------------------------------------
    def after_batch(self, batch):
        if not self.clock.wall:
            return
        now = time.time_ns()
        if self.next_end is None:       # intervals on the clock's grid: 1s rows start at :00
            self.next_end = (now // self.ns + 1) * self.ns
            return
        if now >= self.next_end:
            k = (now - self.next_end) // self.ns + 1
            self.clock.emit(Snapshot(self.next_end - self.ns, self.next_end, self.clock.read(), k,
                                     False))
            self.next_end += k * self.ns

    def end(self):
        if self.ended:
            return
        self.ended = True
        if self.clock.wall:
            if self.next_end is None:
                return
            start = self.next_end - self.ns
        else:
            nxt = self.device.next_tick(self)
            if nxt is None:               # not one packet
                return
            start = nxt - self.ns
        self.clock.emit(Snapshot(start, start + self.ns, self.clock.read(), 1, True))

    def info(self):
        return dict(interval_ns=self.ns, clock="wall" if self.clock.wall else "packet",
                    targets=len(self.clock.targets))


def _create(ctx, args):
    with _lock:
        clock = _clocks.get(args[0])
    if clock is None:
        from mapi.errors import MapiError, EBADARG
        raise MapiError(EBADARG, "%s: no clock %r (made by the mapi command only)"
                        % (NAME, args[0]), argument="clock")
    return ClockNode(ctx, clock)


DESCRIPTOR = FunctionDescriptor(
    name=NAME, args=(Arg("clock", "i", doc="id of a mapi.cli.clock.Clock"),),
    create=_create, doc=__doc__, result="none", cost="free", shareable=False, stateful=True)


class _Plugin:
    """The pluggy plugin that declares CLI_CLOCK (registered once per process)."""

    @hookimpl
    def scampi_functions(self):
        return [DESCRIPTOR]


def register():
    """Declare CLI_CLOCK to the registry of this process (once)."""
    from mapi.registry import get_registry
    reg = get_registry()
    with _lock:
        if NAME not in reg.functions:
            reg.register(_Plugin(), name="mapi-cli")
