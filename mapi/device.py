"""Devices: a packet source, its global graph and the replay machinery.

Replay is a two-stage pipeline so both cores work: a reader thread parses the source into
batches, a processor thread runs the compiled plan over each batch (one C call per batch when
every node has a C kernel).  Both threads spend their time in C with the GIL released.
Time (packet time; on a live device also the device clock): mapi.ticks.
"""
import queue
import threading

from ._engine import ffi
from .batch import BatchPool
from .errors import MapiError, EBUSY, ENOTSTARTED, ETIMEOUT, EPLUGIN
from .organizer import Graph
from .planslot import PLANNER, PlanSlot
from .plan_runner import PlanRunner
from . import mapper, workers
from .ticks import LiveTime, Ticks
from .lazylog import getLogger

log = getLogger("mapi.device")

_END = object()
JOIN_TIMEOUT_S = 10.0
PUBLISH_TIMEOUT_S = 30.0          # a live connect waits this long at most for its plan


def _add_values(a, b):
    if a is None:
        return b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a + b
    return b


class Device(PlanRunner):
    def __init__(self, name, source, backend, offline=True):
        self.name = name
        self.source = source
        self.backend = backend
        self.offline = offline
        self.graph = Graph()
        self.plan = None
        self.plan_version = -1                 # graph version of the plan installed
        self.plan_lock = threading.Lock()      # held by the engine while it runs a batch
        self.next_plan = PlanSlot()            # built, not yet installed
        self._retired = []                     # [(graph version, nodes)] closed flows left
        self._retired_lock = threading.Lock()
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
        self._told_for = {}            # id(instance) -> the device link type it was told for
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
        packet is the first of a batch run after its plan was installed.  wait=False (connect):
        a running device's plan is built by mapi.planslot's planner thread; a replay returns at
        once, a live device once that plan is published (the engine's next batch runs it);
        wait=True (close) returns once the new plan is installed, so nothing still runs what
        the old one used."""
        if self.hardware is not None:
            # placing nodes reconfigures the card, which runs beside the plan: between batches
            with self.plan_lock:
                if self.plan is not None:
                    self.plan.harvest()
                self._replace_hardware()
                self._build()
                self._install_pending()
            return
        if wait:
            PLANNER.cancel(self)            # the build below covers the connects before it
            self._build()
            with self.plan_lock:
                self._install_pending()
        elif self.state == "running":
            with self.graph.lock:
                version = self.graph.version
            # the engine installs it; a live connect waits for it to be published
            PLANNER.request(self, self._build_and_offer, waited=not self.offline)
            if not self.offline:
                # live: a packet that arrives once connect returned goes through the new plan
                # (the engine installs a published plan before its next batch)
                if not self.next_plan.wait_published(version, PUBLISH_TIMEOUT_S):
                    raise MapiError(ETIMEOUT, "device %s: the new plan was not built within "
                                    "%g s" % (self.name, PUBLISH_TIMEOUT_S))
        else:
            self._build_and_offer()

    def retire_waits(self, nodes):
        """Does retiring `nodes` wait for the batch under way (see retire)?"""
        return self.hardware is not None or self.state != "running" or any(
            getattr(n.instance, "closes_output", False) for n in nodes)

    def retire(self, nodes):
        """A flow closed and `nodes` left the graph: re-plan, then close their instances once
        no plan the engine may still run holds them.  While a replay runs, the engine closes
        them as it installs the new plan (between two batches) and the caller does not wait
        for the batch under way (nor, on a replay, for the new plan's build: the planner makes
        it, in mapid once the answer is out), unless one of them completes output outside the
        process (a file, an export: the caller expects it done) or hardware is reconfigured."""
        if self.retire_waits(nodes):
            self.replan()
            self._close_nodes(nodes)
            return
        with self.graph.lock:
            version = self.graph.version      # any plan of this version or later lacks them
        with self._retired_lock:
            self._retired.append((version, nodes))
        if self.offline:
            # a replay: built by the planner as for a connect (in mapid once the answer is
            # out); installed by the engine before its next batch, or by the planner when the
            # engine is between batches or done, and the nodes are closed then.  A live
            # device builds here: the close of its last flow stops it right after this
            PLANNER.request(self, self._build_and_offer)
            return
        PLANNER.cancel(self)                  # the build below covers the connects before it
        self._build()
        self._offer()

    def settle(self):
        """Before the device goes (flows closed, it is being deleted): no build of its plan is
        left queued or running in the planner, and the plan without the closed flows is
        published (the engine installs it before it ends, or this installs it once the engine
        is done), so every closed flow's functions are closed by the time the device is."""
        PLANNER.settle(self)
        with self._retired_lock:
            pending = bool(self._retired)
        if pending:
            self._build()
            self._offer()

    def _close_nodes(self, nodes):
        for node in nodes:
            self.forget(node.instance)        # its id may be reused by a later instance
            node.instance.close()

    def _close_retired(self):
        """Holding plan_lock: close what left the graph before the installed plan was built."""
        with self._retired_lock:
            if not self._retired:
                return
            due = [nodes for v, nodes in self._retired if v <= self.plan_version]
            self._retired = [(v, nodes) for v, nodes in self._retired if v > self.plan_version]
        for nodes in due:
            try:
                self._close_nodes(nodes)
            except Exception:
                log.exception("closing the functions of a closed flow on %s failed", self.name)

    def _build_and_offer(self):
        with self.graph.lock:
            version = self.graph.version
        try:
            self._build()
        except Exception as exc:
            self.next_plan.failed(version, exc)
            raise
        self._offer()

    def _offer(self):
        """Install the published plan now if the engine is between batches or done; otherwise
        the engine installs it before its next batch."""
        if self.plan_lock.acquire(blocking=False):
            try:                            # the engine is between batches (or not running)
                self._install_pending()
            finally:
                self.plan_lock.release()
        elif self.done.is_set():           # the engine's last install may have run first
            with self.plan_lock:
                self._install_pending()

    def _build(self):
        """Compile the graph as it is now and publish the plan for the engine."""
        with self.graph.lock:
            version, plan = self.graph.version, self.graph.compile()
        self.next_plan.publish(version, plan)

    def _install_pending(self):
        """Holding plan_lock (between two batches): the published plan replaces the running one."""
        new = self.next_plan.take()
        if new is None:
            self._close_retired()
            return
        old = self.plan
        if old is not None:
            old.harvest()
        self.plan = new
        self.plan_version = new.version
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
        self._close_retired()

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
        told = self._told_for
        for node in plan.nodes:
            # a node's input link type follows from the device's and its ancestors, which
            # never change: told once per device link type (not a walk up per node per plan)
            if told.get(id(node.instance)) != linktype:
                told[id(node.instance)] = linktype
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
        self._told_for.pop(id(inst), None)
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
            with self.plan_lock:              # flows closed while the engine ended
                self._install_pending()

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
