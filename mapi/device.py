"""Devices: a packet source, its global graph and the replay machinery.

Replay is a two-stage pipeline so both cores work: a reader thread parses the source into
batches, a processor thread runs the compiled plan over each batch (one C call per batch when
every node has a C kernel).  Both threads spend their time in C with the GIL released.
Time (packet time; on a live device also the device clock): mapi.ticks.
"""
import queue
import threading

from ._engine import ffi, lib
from .batch import BatchPool
from .descriptor import PacketSource
from .errors import MapiError, EBUSY, ENOTSTARTED, ETIMEOUT, EPLUGIN
from .organizer import Graph
from .planslot import PlanSlot
from . import mapper, workers
from .ticks import LiveTime, Ticks
from .lazylog import getLogger

log = getLogger("mapi.device")

_END = object()
JOIN_TIMEOUT_S = 10.0


def _add_values(a, b):
    if a is None:
        return b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a + b
    return b


class DerivedView:
    """The device as a function placed after producers in its flow sees it: the link type and
    snaplen of what they hand on (and no link-layer details of the source when that changed).
    Everything else is the device's."""

    def __init__(self, device, producers):
        self._device = device
        self._producers = producers          # [(descriptor, args)] in flow order

    def _derived(self):
        lt, snap = self._device.linktype, self._device.snaplen
        for desc, args in self._producers:
            lt2, snap2 = desc.derives(lt, args)
            if lt2 != lt:
                snap = 262144
            lt, snap = lt2, (snap if snap2 is None else snap2)
        return lt, snap

    @property
    def linktype(self):
        return self._derived()[0]

    @property
    def snaplen(self):
        return self._derived()[1]

    @property
    def source(self):
        if self.linktype == self._device.linktype:
            return self._device.source
        return PacketSource()               # no header details of another link layer

    def __getattr__(self, name):
        return getattr(self._device, name)


def device_for(device, functions):
    """What a function after `functions` [(descriptor, args)] of its flow sees as its device."""
    producers = [(d, a) for d, a in functions if d.derives is not None]
    return DerivedView(device, producers) if producers else device


class Device:
    def __init__(self, name, source, backend, offline=True):
        self.name = name
        self.source = source
        self.backend = backend
        self.offline = offline
        self.graph = Graph()
        self.plan = None
        self.plan_lock = threading.Lock()      # held by the engine while it runs a batch
        self.next_plan = PlanSlot()            # built, not yet installed
        self.state = "created"
        self.errors = []               # MapiErrors met during replay (results stay readable)
        self.flows = {}
        self.pool = BatchPool(6)
        self.queue = queue.Queue(maxsize=4)
        self.done = threading.Event()
        self.threads = []
        self.linktype = source.linktype
        self.snaplen = source.snaplen
        self.packets = 0
        self.bytes = 0                 # wire bytes
        self.captured_bytes = 0
        self.batches = 0
        self.first_ts = None
        self.last_ts = 0
        self._sums = ffi.new("uint64_t[2]")
        self._seen_linktype = {}       # id(instance) -> link type it was told about
        self._joined = set()           # id(instance) of those whose on_join() ran
        self._told = (None, None)      # (plan, link type) every node of it was told about
        self.ticks = Ticks()
        self.live = None if offline else LiveTime(source, self.ticks)   # time without packets
        self._stop = False
        self.hw_config = None

    # --- graph changes ------------------------------------------------------------------------
    @property
    def hardware(self):
        return mapper.hardware_of(self.source)

    def replan(self, wait=True):
        """Re-place and recompile after flows came or went.  The caller builds the new plan (not
        the engine thread) and it is installed between two batches: at once when the engine is
        between batches, otherwise by the engine itself before its next batch.  A flow's first
        packet is the first of a batch run after its plan was installed.  wait=False (connect)
        returns without waiting for the batch under way; wait=True (close) returns once the new
        plan is installed, so nothing still runs what the old one used."""
        if self.hardware is not None:
            # placing nodes reconfigures the card, which runs beside the plan: between batches
            with self.plan_lock:
                if self.plan is not None:
                    self.plan.harvest()
                self._replace_hardware()
                self._build()
                self._install_pending()
            return
        self._build()
        if wait:
            with self.plan_lock:
                self._install_pending()
        elif self.plan_lock.acquire(blocking=False):
            try:                            # the engine is between batches (or not running)
                self._install_pending()
            finally:
                self.plan_lock.release()

    def _build(self):
        """Compile the graph as it is now and publish the plan for the engine."""
        with self.graph.lock:
            version, plan = self.graph.version, self.graph.compile()
        self.next_plan.publish(version, plan)

    def _install_pending(self):
        """Holding plan_lock (between two batches): the published plan replaces the running one."""
        new = self.next_plan.take()
        if new is None:
            return
        old = self.plan
        if old is not None:
            old.harvest()
        self.plan = new
        for node in new.nodes:
            inst = node.instance
            if id(inst) not in self._joined:
                # the engine is between two batches: the moment a function that follows
                # another's result reads the value it starts from
                self._joined.add(id(inst))
                on_join = getattr(inst, "on_join", None)
                if on_join is not None:
                    on_join()
        self._tell_linktypes(new, self.linktype)

    def _replace_hardware(self):
        nodes = self.graph.nodes()
        before = {}
        for n in nodes:
            if n.hw_id is not None and n.desc.result != "none":
                try:
                    before[n.serial] = self.hardware.hw_result(n.hw_id)[0]
                except Exception:
                    pass
        # once packets flow, a stateful node keeps its home: its history lives there
        sticky = {n.serial for n in nodes
                  if self.state == "running" and n.desc.stateful and n.hw_id is None
                  and n.placement == mapper.SOFTWARE and n.hits_in > 0}
        self.hw_config = mapper.place(self.graph, self.source, sticky=sticky)
        for n in nodes:
            if n.serial in before and n.hw_id is None:
                n.carry = _add_values(n.carry, before[n.serial])    # moved to software

    def result(self, node):
        """(value, ts) of a node wherever it runs."""
        value = ts = None
        if node.hw_id is not None and node.desc.result != "none":
            try:
                value, ts = self.hardware.hw_result(node.hw_id)
            except KeyError:              # superset filters keep their result in software
                value = None
        if value is None:
            value, ts = node.instance.result()
        if node.carry is not None:
            value = _add_values(node.carry, value)
        return value, ts

    def _tell_linktypes(self, plan, linktype):
        for node in plan.nodes:
            self._tell_linktype(node.instance, plan.input_linktype(node, linktype))

    def _tell_linktype(self, inst, linktype):
        if self._seen_linktype.get(id(inst)) != linktype:
            self._seen_linktype[id(inst)] = linktype
            inst.on_linktype(linktype)

    def next_tick(self, inst):
        """Next tick boundary (ns) of inst, None before it saw time pass.  During
        inst.on_tick(t) it is still the first boundary that call covers, so
        (t - next_tick) // inst.tick_ns + 1 boundaries were crossed."""
        return self.ticks.next_tick(inst)

    def forget(self, inst):
        self._joined.discard(id(inst))
        self._seen_linktype.pop(id(inst), None)
        self.ticks.forget(inst)

    # --- replay -------------------------------------------------------------------------------
    @property
    def running(self):
        return self.state == "running"

    def start(self):
        if self.state != "created":
            raise MapiError(EBUSY, "device %s was already started (state: %s); create a new "
                            "offline device to replay the file again" % (self.name, self.state))
        self.state = "running"
        if self.plan is None:
            self.replan()
        # reused worker threads (mapi.workers): a device lifecycle creates no thread
        self.threads = [workers.run(self._processor, "mapi-engine-%s" % self.name),
                        workers.run(self._reader, "mapi-reader-%s" % self.name)]

    def _reader(self):
        try:
            while not self._stop:
                batch = self.pool.get()
                if batch is None:
                    break
                try:
                    more = self.source.next_batch_into(batch)
                except MapiError as exc:
                    self.pool.put(batch)
                    self.errors.append(exc)
                    log.warning("%s", exc)
                    break
                if not more:
                    self.pool.put(batch)
                    break
                batch.clock_ns = self.live.clock.now() if self.live is not None else 0
                self.queue.put(batch)
        except Exception as exc:       # never let a source bug kill the process silently
            log.exception("reader of %s failed", self.name)
            self.errors.append(MapiError(EPLUGIN, "reading %s failed: %s: %s"
                                         % (self.name, type(exc).__name__, exc)))
        finally:
            self.queue.put(_END)

    def _processor(self):
        try:
            while True:
                try:
                    batch = self.queue.get(timeout=self.live and self.live.wake_s(self.plan))
                except queue.Empty:       # live, no batch by the next boundary: time passed
                    if not self._stop:
                        self.run_time(self.live.now())
                    continue
                if batch is _END:
                    break
                try:
                    if not self._stop:
                        self.run_batch(batch)
                finally:
                    batch.release()
        except Exception as exc:
            log.exception("engine of %s failed", self.name)
            self.errors.append(MapiError(EPLUGIN, "processing %s failed: %s: %s"
                                         % (self.name, type(exc).__name__, exc)))
        finally:
            with self.plan_lock:
                self._install_pending()
                plan = self.plan
                if plan is not None and not self._stop:
                    self._drain(plan)
                for inst in (plan.instances if plan else []):
                    try:
                        inst.end()
                    except Exception as exc:
                        log.exception("end() of %r failed", inst)
                        self.errors.append(MapiError(EPLUGIN, "ending %r failed: %s" % (inst, exc)))
            self.state = "done"
            self.done.set()

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

    def run_time(self, t_ns):
        """Live, no batch came: time reached t_ns (the device clock minus the lag)."""
        with self.plan_lock:
            plan = self.plan
            if plan is not None:
                empty = self.live.advance(plan, t_ns, self._run, self.linktype)
                for inst in plan.instances:
                    inst.after_batch(empty)

    def wait(self, timeout=None):
        if self.state == "created":
            raise MapiError(ENOTSTARTED, "device %s was never started; call start_offline_device first"
                            % self.name)
        if not self.done.wait(timeout):
            raise MapiError(ETIMEOUT, "device %s still replaying after %.3g s" % (self.name, timeout))
        if self.errors:
            raise self.errors[0]

    def stop(self):
        self._stop = True
        self.pool.close()

    def close(self):
        """Stop the replay or capture, wait for the device's threads and close the source.
        An offline source is closed only once its reader thread has left it (the reader may
        be parsing a mapped window); a live source's close() is what wakes its reader."""
        self.stop()
        if self.offline:
            self._join()
            self.source.close()
        else:
            self.source.close()
            self._join()

    def _join(self, timeout=JOIN_TIMEOUT_S):
        me = threading.current_thread().name
        for job in self.threads:
            if job.name != me:             # close() called from the device's own thread
                job.join(timeout)
                if job.is_alive():
                    log.error("%s: %s did not stop within %.0f s", self.name, job.name, timeout)
        self.threads = [job for job in self.threads if job.is_alive()]

    def info(self):
        d = dict(name=self.name, backend=self.backend, state=self.state, offline=self.offline,
                 clock="packet time" if self.live is None else
                 "packet time and the device clock (lag %g ms)" % (self.live.lag_ns / 1e6),
                 linktype=self.linktype, snaplen=self.snaplen, packets=self.packets,
                 bytes=self.bytes, captured_bytes=self.captured_bytes, first_ts=self.first_ts,
                 last_ts=self.last_ts or None, batches=self.batches, flows=sorted(self.flows),
                 errors=[str(e) for e in self.errors])
        d.update(self.source.info())
        if self.hardware is not None:
            try:
                d["hardware"] = self.hardware.hw_info()
            except Exception as exc:
                d["hardware"] = {"error": str(exc)}
        return d

    def stats(self):
        s = dict(ps_recv=self.packets, ps_drop=0, ps_ifdrop=0)
        s.update(self.source.stats())
        s["flow_drops"] = self.flow_drops()
        return s

    def flow_drops(self):
        """Packets each flow's own buffers dropped (a slow reader loses only its own)."""
        drops = {}
        for n in self.graph.nodes():
            value = n.instance.result()[0]
            if isinstance(value, dict) and "dropped" in value and n.desc.result == "packets":
                for fd, _ in n.owners:
                    drops[fd] = drops.get(fd, 0) + value["dropped"]
        return drops


class _Piece:
    """A batch-like view (.c) of part of a batch."""

    __slots__ = ("c",)

    def __init__(self):
        self.c = ffi.new("mapi_batch *")
