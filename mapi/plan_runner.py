"""Running a device's compiled plan over its batches: one C call per batch when every node has
a C kernel, a Python node's process() between the C stretches otherwise; batches cut where
packet time crosses a node's tick; producers drained at the end of the stream.  The engine
thread calls run_batch() with the device's plan lock held only inside it."""
from ._engine import ffi, lib
from .errors import MapiError, EPLUGIN


class PlanRunner:
    """Mixed into mapi.device.Device, whose plan, plan lock, hardware, ticks, live clock and
    counters it uses."""

    def run_batch(self, batch):
        c = batch.c
        n = c.n
        with self.plan_lock:
            if self.next_plan.waiting():
                self._install_pending()
            plan = self.plan
            if plan.tick_nodes:
                self._run_with_ticks(plan, batch)
            else:
                self._run_piece(plan, batch)
            if self.live is not None:
                if n:
                    self.live.saw(c.ts[n - 1])
                self.live.advance(plan, batch.clock_ns - self.live.lag_ns, self._run,
                                  self.linktype)
            for inst in plan.instances:
                inst.after_batch(batch)
        self.packets += n
        self.batches += 1
        if n:
            raw = batch.c
            lib.mapi_batch_sums(raw, self._sums, self._sums + 1)
            self.bytes += self._sums[0]
            self.captured_bytes += self._sums[1]
            if self.first_ts is None:
                self.first_ts = raw.ts[0]
            self.last_ts = raw.ts[n - 1]

    def _run_piece(self, plan, batch):
        """Packets of one interval: through the hardware (a card's units, whose counters
        are then read at the boundary that follows), then the plan over what it delivers."""
        c = batch.c
        if self.hardware is not None:
            out = self.hardware.process(batch)      # the card's units; what crosses the bus
            c = getattr(out, "c", out)
        if c.linktype != self.linktype:
            self.linktype = c.linktype
        if self._told[0] is not plan or self._told[1] != c.linktype:    # once, not per piece
            self._tell_linktypes(plan, c.linktype)
            self._told = (plan, c.linktype)
        self._run(plan, c)

    def _run(self, plan, c):
        if lib.mapi_plan_begin(plan.c, c) < 0:
            raise MapiError(EPLUGIN, "batch of %d packets exceeds the plan's capacity" % c.n)
        self._run_range(plan, c, 0, plan.n)

    def _run_range(self, plan, c, i, to):
        while i < to:
            i = lib.mapi_plan_run(plan.c, c, i, to)
            if i < 0:
                raise MapiError(EPLUGIN, "engine plan failed")
            if i < to:
                node = plan.entry_node(i)
                cn = plan.c.nodes[i]
                nin = plan.c.slot_n[cn.in_slot]
                sel = plan.c.slots[cn.in_slot]
                out = plan.c.slots[cn.out_slot]
                inb = lib.mapi_plan_input(plan.c, i, c)
                nout = node.instance.process(inb, sel, nin, out) if nin else 0
                cn.pkts_in += nin
                cn.pkts_out += nout
                if plan.c.count_bytes and nin:
                    cn.bytes_in += lib.mapi_sel_bytes(inb, sel, nin)
                    cn.bytes_out += lib.mapi_sel_bytes(inb, out, nout)
                plan.c.slot_n[cn.out_slot] = nout
                i += 1

    def _drain(self, plan):
        """End of stream: each producer, in plan order (so one under another has had all its
        input), releases what it holds and its subtree runs over that."""
        empty = ffi.new("mapi_batch *", {"linktype": self.linktype})
        for i in plan.producers:
            while True:
                n = lib.mapi_plan_drain(plan.c, i)
                if n < 0:
                    raise MapiError(EPLUGIN, "draining %s failed" % plan.entry_node(i).name)
                if n == 0:
                    break
                self._run_range(plan, empty, i + 1, plan.c.nodes[i].subtree_end)

    def _run_with_ticks(self, plan, batch):
        """Cut the batch where packet time crosses a tick of some node, so time-driven results
        (BUCKET, meters, timeouts, a card's counters) see exactly the packets before the
        boundary."""
        c = batch.c
        start = 0
        piece = None
        while start < c.n:
            nxt = self.ticks.first_boundary(plan, c.ts[start])
            cut = lib.mapi_batch_find_ts(c, start, nxt)
            if cut == c.n and start == 0:
                self._run_piece(plan, batch)
            elif cut > start:
                piece = piece or _Piece()
                lib.mapi_batch_slice(c, start, cut - start, piece.c)
                self._run_piece(plan, piece)
            if cut >= c.n:
                break
            self.ticks.fire(plan, c.ts[cut])
            start = cut


class _Piece:
    """A batch-like view (.c) of part of a batch."""

    __slots__ = ("c",)

    def __init__(self):
        self.c = ffi.new("mapi_batch *")
