"""mapid's engine: the in-process MAPI engine (devices, organizer, mapper) run on behalf of
clients.  Every call the server makes into mapi.api goes through this module, which adds what
a shared server needs: who owns which device and flow, descriptors the clients opened, and
device names and paths as each client knows them.  Files the clients pass: mapi.server.files;
mixed in: what clients see (mapi.server.views), the devices the server offers
(mapi.server.offered).
"""
import logging
import os
import re
import threading

from mapi import api, events as mapi_events
from mapi._engine import ffi, lib
from mapi.constants import WAIT
from mapi.errors import MapiError, EBADARG, ELIMIT, ENODEV, ENOFLOW, ENOPKTS, ENOTSUP, EPERM
from mapi.events import EventQueue
from mapi.registry import PROBE_BYTES, get_registry

from .files import PassedPath, bind_passed_files, check_descriptor
from .priority import engine_priority
from .offered import OfferedDevices
from .views import Views

log = logging.getLogger("mapid.engine")
_ALIAS = re.compile(r"\boffline\d+\b")


# of a live flow's ring, faulted in at connect (mapi_ring_warm): the drop-in's whole live ring;
# of a larger one the rest as packets come (a selective flow may never fill a big ring, and its
# memory is only taken when used)
WARM_BYTES = 16 << 20


class Engine(Views, OfferedDevices):
    def __init__(self, limits=None, live_defaults=None):
        self.lock = threading.RLock()
        self.limits = dict(limits or {})
        self.live_defaults = dict(live_defaults or {})   # backend name -> create_flow options
        self.aliases = {}          # engine device name -> the name clients know (offered devices)
        self.private = {}          # engine device name -> (session, PassedPath of its trace)
        self.shared = {}           # public name -> SharedDevice
        self.flows = {}            # fd -> session
        self.flow_files = {}       # fd -> [PassedPath] (TO_FILE targets)
        self.buffers = {}          # fd -> {fid: ring pointer}
        self.flow_device = {}      # fd -> engine device name
        self.flow_fids = {}        # fd -> [fid] of the functions applied
        self.watchers = {}         # engine device name -> [callback(errors)]
        # held while flows close (their instances are freed) and while anything walks every
        # node's instance (stats' per-flow drops, metrics): the engine does not guard that
        self.graph_lock = threading.RLock()

    # --- names as clients know them -----------------------------------------------------------
    def public(self, v):
        """v with engine device names replaced by the clients' names (and passed paths as
        plain text)."""
        if isinstance(v, str):
            return _ALIAS.sub(lambda m: self.aliases.get(m.group(0), m.group(0)), str(v))
        if isinstance(v, dict):
            return {k: self.public(x) for k, x in v.items()}
        if isinstance(v, list):
            return [self.public(x) for x in v]
        if isinstance(v, tuple) and not hasattr(v, "_fields"):
            return tuple(self.public(x) for x in v)
        return v

    def public_error(self, exc):
        return MapiError(exc.code, self.public(str(exc)), **self.public(dict(exc.where)))

    def _call(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except MapiError as exc:
            raise self.public_error(exc) from None

    # --- devices ------------------------------------------------------------------------------
    def open_trace(self, session, path, fd, fmt, backend, options):
        """An offline device on a trace the client opened (its descriptor fd): the backend reads
        the descriptor; the name is the client's, for messages."""
        check_descriptor(fd, False, "create_offline_device", path)
        passed = PassedPath(path, fd)
        try:
            if backend is None:
                backend = self._backend_of(passed)
            name = self._call(api.create_offline_device, passed, fmt, backend, **options)
        except BaseException:
            passed.close()
            raise
        with self.lock:
            self.private[name] = (session, passed)
        return name

    @staticmethod
    def _backend_of(passed):
        """The backend that reads a passed trace, chosen from its first bytes as the registry
        chooses for a name; a pipe is read once, so nothing may peek at it: the savefile backend."""
        if not passed.regular():
            return "savefile"
        reg = get_registry()
        return reg.offline_backend(passed, head=passed.head(PROBE_BYTES)).name

    def device(self, session, dev, use="use"):
        """The engine's name for the device a client names, if that client may use it."""
        with self.lock:
            sd = self.shared.get(dev)
            if sd is not None:
                if use == "delete":
                    raise MapiError(EPERM, "device %s is offered by the server and cannot be "
                                    "deleted by a client" % dev, argument="dev")
                return self._replay_of(session, sd, use)
            owner = self.private.get(dev)
            if owner is not None and owner[0] is not session:
                raise MapiError(EPERM, "device %s belongs to another client" % dev, argument="dev")
            if owner is None and use == "delete":
                raise MapiError(ENODEV, "no offline device %r of this client" % dev, argument="dev")
            return dev

    def stop_device(self, session, dev):
        """End the packet stream of a device now (the CLI's -c, --duration, Ctrl-C): a client's
        own device, or a shared one where every flow is this client's (others' would end too)."""
        name = self.device(session, dev)
        with self.lock:
            others = [fd for fd in self._flows_on(name) if self.flows.get(fd) is not session]
        if others:
            raise MapiError(EPERM, "device %s also runs %d flows of other clients: stopping it "
                            "would end their packets too; close your flows instead"
                            % (dev, len(others)), argument="dev")
        self._call(api.stop_device, name)

    def delete_device(self, session, dev):
        name = self.device(session, dev, "delete")
        with self.graph_lock:
            for fd in self._flows_on(name):
                self.forget_flow(fd)
            self._call(api.delete_offline_device, name)
        with self.lock:
            _, passed = self.private.pop(name)
        passed.close()

    def _flows_on(self, name):
        try:
            return list(api.get_device_info(name)["flows"])
        except MapiError:
            return []

    def owned_devices(self, session):
        with self.lock:
            return [n for n, (s, _) in self.private.items() if s is session]

    def visible_devices(self, session):
        with self.lock:
            private = {n for n, (s, _) in self.private.items() if s is not session}
            hidden = private | {n for sd in self.shared.values() for n in [sd.engine_name, *sd.retired]}
        names = [n for n in api.devices() if n not in hidden]
        return sorted(names + list(self.shared))

    def device_object(self, name):
        return api.find_device(name)

    def watch_done(self, name, callback):
        """callback(errors) once the offline device `name` finished (at once if it has)."""
        dev = self.device_object(name)
        with self.lock:
            if dev.done.is_set():
                fire = True
            else:
                fire = False
                first = name not in self.watchers
                self.watchers.setdefault(name, []).append(callback)
                if first:
                    threading.Thread(target=self._watch, args=(name, dev), daemon=True,
                                     name="mapid-watch-%s" % name).start()
        if fire:
            callback(list(dev.errors))

    def _watch(self, name, dev):
        dev.done.wait()
        with self.lock:
            callbacks = self.watchers.pop(name, [])
        for cb in callbacks:
            try:
                cb(list(dev.errors))
            except Exception:
                log.exception("device-done callback of %s failed", name)

    # --- flows --------------------------------------------------------------------------------
    def create_flow(self, session, dev, options):
        limit = self.limits.get("flows_per_client")
        if limit and len(session.flows) >= limit:
            raise MapiError(ELIMIT, "this client has %d flows open, the server's limit "
                            "(limits.flows_per_client) is %d" % (len(session.flows), limit),
                            argument="dev")
        name = self.device(session, dev, "flow")
        backend = dev.split(":", 1)[0] if ":" in dev else ""
        opts = dict(self.live_defaults.get(backend, {}))
        opts.update(options)
        fd = self._call(api.create_flow, name, **opts)
        with self.lock:
            self.flows[fd] = session
            self.flow_device[fd] = name
            session.flows.add(fd)
        return fd

    def check_flow(self, session, fd, what="fd"):
        with self.lock:
            owner = self.flows.get(fd)
        if owner is None:
            raise MapiError(ENOFLOW, "no flow with descriptor %r" % (fd,), argument=what)
        if owner is not session:
            raise MapiError(EPERM, "flow %d belongs to another client" % fd, argument=what)

    def apply_function(self, session, fd, name, args, kwargs, files):
        """files: {position or keyword: (descriptor, client path)} for "w" arguments."""
        self.check_flow(session, fd)
        desc = self._call(get_registry().function, name)
        args = list(args)
        for i, p in enumerate(desc.args):
            value = args[i] if i < len(args) else kwargs.get(p.name)
            if p.type == "F" and isinstance(value, (tuple, list)) and value:
                self.check_flow(session, value[0], p.name)
        held = []
        try:
            args, kwargs = bind_passed_files(session, desc, args, kwargs, files, held)
            fid = self._call(api.apply_function, fd, name, *args, **kwargs)
        except BaseException:
            self._release(held)
            raise
        with self.lock:
            self.flow_fids.setdefault(fd, []).append(fid)
            self.flow_files.setdefault(fd, []).extend(held)
        return fid

    def connect(self, session, fd):
        """Connect; returns ([(fid, mode, capacity, lossless, ring)], [event fids]).  Waits for
        no batch: the flow's plan is installed between two batches by the engine itself."""
        self.check_flow(session, fd)
        with self.lock:
            name = self.flow_device[fd]
        dev = self.device_object(name)
        if not dev.offline and dev.state == "created":
            with engine_priority():             # a live device starts capturing here
                self._call(api.connect, fd)
        else:
            # nothing starts: the call keeps its priority (at the engine's it would queue
            # behind every busy thread of the machine)
            self._call(api.connect, fd)
        with self.lock:
            fids = list(self.flow_fids.get(fd, ()))
            private = name in self.private
        buffers, event_fids = [], []
        for fid in fids:
            inst = api.function_instance(fd, fid)
            if inst.kernel is lib.mapi_ring_kernel:
                ring = ffi.cast("mapi_ring *", inst.state)
                mode = inst.info().get("mode", WAIT)
                # only a client's own replay may wait for that client; shared devices never do
                lossless = bool(private and dev.offline and mode == WAIT)
                if not lossless:
                    # no wait for the batch under way: a writer that found the new ring full
                    # re-reads the mode after each slice of its wait
                    lib.mapi_ring_set_lossless(ring, 0)
                if not dev.offline:
                    # a live capture's first lap would zero every new page of the ring from
                    # the capture thread, a fault per 4 KiB (8 fresh 64 MiB rings: most of
                    # mapid's CPU and the socket's drops); a thread of the ring's does it now
                    lib.mapi_ring_warm(ring, WARM_BYTES)
                buffers.append((fid, mode, int(lib.mapi_ring_capacity(ring)), lossless, ring))
            elif isinstance(getattr(inst, "events", None), EventQueue):
                event_fids.append(fid)
        with self.lock:
            self.buffers[fd] = {b[0]: b[4] for b in buffers}
        limit = self.limits.get("buffer_bytes_per_client")
        total = self.buffer_bytes(session)
        if limit and total > limit:
            self.close_flow(session, fd)
            raise MapiError(ELIMIT, "flow %d closed: its buffers would bring this client's to %d "
                            "bytes, the server's limit (limits.buffer_bytes_per_client) is %d"
                            % (fd, total, limit), argument="fd")
        return buffers, event_fids

    def buffer_bytes(self, session):
        with self.lock:
            rings = [r for fd in session.flows for r in self.buffers.get(fd, {}).values()]
        return sum(int(lib.mapi_ring_capacity(r)) for r in rings)

    def ring_stats(self, fd):
        """{fid: (written, dropped, delivered, bytes)} of a flow's buffers."""
        st = ffi.new("mapi_ring_stats *")
        out = {}
        with self.lock:                         # close_flow frees rings only after popping them
            for fid, ring in self.buffers.get(fd, {}).items():
                lib.mapi_ring_get_stats(ring, st)
                out[fid] = (st.written, st.dropped, st.delivered, st.bytes)
        return out

    @staticmethod
    def export_ring(ring):
        """Duplicates of the ring's memfd, data eventfd and space eventfd, to pass on."""
        return [os.dup(lib.mapi_ring_shm_fd(ring)), os.dup(lib.mapi_ring_fd(ring)),
                os.dup(lib.mapi_ring_space_fd(ring))]

    def set_event_sink(self, fd, fid, sink):
        mapi_events.set_event_callback(fd, fid, sink)

    def close_flow(self, session, fd):
        self.check_flow(session, fd)
        with self.graph_lock:
            info = api.get_flow_info(fd)
            with self.lock:
                self.buffers.pop(fd, None)      # nobody reads its rings once they may be freed
            try:
                if info["status"] != "closed":
                    self._call(api.close_flow, fd)
            finally:
                self.forget_flow(fd)
                with self.lock:
                    for sd in self.shared.values():
                        if info.get("device") in sd.retired:
                            self._drop_retired(sd)

    def forget_flow(self, fd):
        with self.lock:
            session = self.flows.pop(fd, None)
            self.flow_device.pop(fd, None)
            self.flow_fids.pop(fd, None)
            held = self.flow_files.pop(fd, [])
            self.buffers.pop(fd, None)
        if session is not None:
            session.flows.discard(fd)
        self._release(held)

    @staticmethod
    def _release(held):
        for passed in held:
            passed.close()

    # --- reading ------------------------------------------------------------------------------
    def read_results(self, session, fd, fid):
        self.check_flow(session, fd)
        r = self._call(api.read_results, fd, fid)
        return self.public(r.value), r.ts

    def check_packets(self, session, fd, fid):
        """The error get_next_pkt gives on a function that is not a shared ring."""
        self.check_flow(session, fd)
        inst = self._call(api.function_instance, fd, fid)
        if getattr(inst, "next_packet", None) is None:
            raise MapiError(ENOPKTS, "function %d of flow %d keeps no packets; apply "
                            "TO_BUFFER and pass its id" % (fid, fd), argument="fid")
        raise MapiError(ENOTSUP, "function %d of flow %d keeps packets in a way the server "
                        "cannot share with its client" % (fid, fd), argument="fid")

    def connect_may_wait(self, session, dev):
        """Would connecting a new flow on the device a client names wait for the engine (as
        waits_for_engine says of connect)?  Asked before the flow exists: nothing is opened or
        created here; a name that is no device yet says no (its create_flow fails, or opens a
        live device that has not started)."""
        with self.lock:
            sd = self.shared.get(dev)
            name = sd.engine_name if sd is not None else dev
        try:
            d = self.device_object(name)
        except MapiError:
            return False
        return d.state == "running" and d.hardware is not None

    def waits_for_engine(self, call, fd):
        """Would `call` on flow fd wait for the batch under way on its device, or work at length?
        While packets flow, connect only where placing a node reconfigures hardware; close_flow
        there too, and where the flow completes output outside mapid (a file, an export: done
        when close returns) or is the last of a live device (which then stops) or of a retired
        replay (deleted with it), as mapi.device.Device.retire and mapi.api.close_flow do.
        Otherwise the plan without the flow is built once the answer is out, and the caller may
        answer at once."""
        with self.lock:
            name = self.flow_device.get(fd)
        try:
            dev = self.device_object(name) if name is not None else None
        except MapiError:
            return True
        if dev is None or dev.state != "running":
            return False
        if dev.hardware is not None:
            return True
        if call == "connect":
            return False
        try:
            flow = api._flow(fd)
        except MapiError:
            return False                        # already gone: the call says so at once
        if len(dev.flows) <= 1 and (not dev.offline or any(
                name in sd.retired for sd in list(self.shared.values()))):
            return True                         # the device stops, or a retired replay goes
        # the flow's nodes: those retire() gets are among them
        return dev.retire_waits(list(flow.nodes.values()))

    def start_device(self, session, dev):
        with engine_priority():                 # the replay threads start here
            self._call(api.start_offline_device, self.device(session, dev, "start"))

    def device_of_flow(self, fd):
        """The engine's name of a flow's device (None once the flow is gone)."""
        with self.lock:
            return self.flow_device.get(fd)
