"""One client of mapid: who it is (SO_PEERCRED), what it owns, and its calls.

Each call of the protocol is a method ``call_<name>`` taking the request's message, the
descriptors that came with it (the method closes or keeps them) and the request id; it returns
(Reply, descriptors to send) or DEFERRED when the reply comes later (wait_offline_device)."""
import logging
import threading
import time

from mapi import api, flow_with
from mapi.descriptor import REQUIRED
from mapi.planslot import PLANNER
from mapi.errors import MapiError, EBADARG, ENOTSUP, EPLUGIN, ETIMEOUT
from mapi.proto import PROTOCOL_VERSION, pb
from mapi.proto.values import from_map, from_value, to_map, to_value
from mapi.proto.wire import close_fds, envelope
from mapi.registry import get_registry

log = logging.getLogger("mapid.session")
DEFERRED = object()
# calls that never wait for the engine (no batch, no graph-wide lock): the loop thread runs
# them itself; connect and close_flow too when they would not wait for the batch under way
# (Engine.waits_for_engine); delete, stats, explain, clients and the others go to a worker
QUICK_CALLS = ("hello", "create_offline_device", "start_offline_device", "wait_offline_device",
               "get_device_info", "devices", "create_flow", "apply_function", "read_results",
               "get_function_info", "describe_function", "check_packets", "stop_device")
ENGINE_CALLS = ("connect", "close_flow")
SERVER_NAME = "mapid 0.1.0"


def program_name(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return "?"


def error_message(exc, out):
    out.code = exc.code
    out.message = str(exc)
    to_map(exc.where, out.where)
    return out


class Session:
    def __init__(self, conn, engine, server, pid, uid, gid, directory):
        self.conn = conn
        self.engine = engine
        self.server = server
        self.directory = directory            # () -> summaries of every client
        self.id = conn.id
        self.pid, self.uid, self.gid = pid, uid, gid
        self.program = program_name(pid)
        self.since = time.time()
        self.flows = set()
        self.replays = {}                     # offered device -> the engine's replay this client uses
        self.greeted = False
        self.remote = False                   # a gRPC client (its uid is REMOTE_UID's)
        self._events = {}                     # (fd, fid) -> [Event] waiting to be pushed
        self._events_lock = threading.Lock()
        self._events_posted = False

    def quick(self, request):
        """May the loop thread answer this request itself (it waits for nothing)?"""
        call = request.WhichOneof("call")
        if call in QUICK_CALLS:
            return True
        if call == "create_flow_with":
            m = request.create_flow_with
            return not m.connect or not self.engine.connect_may_wait(self, m.flow.dev)
        if call in ENGINE_CALLS:
            fd = getattr(request, call).fd
            return fd in self.flows and not self.engine.waits_for_engine(call, fd)
        return False

    def label(self):
        return "pid %d uid %d %s" % (self.pid, self.uid, self.program)

    # --- dispatch -----------------------------------------------------------------------------
    def handle(self, env, fds):
        # a plan the call asks for is built once the answer is out (a replay's connect does
        # not wait for it; built meanwhile it would hold the interpreter the answer needs)
        with PLANNER.after():
            self._handle(env, fds)

    def _handle(self, env, fds):
        call = env.request.WhichOneof("call")
        fds = list(fds)
        try:
            if env.version != PROTOCOL_VERSION:
                raise MapiError(ENOTSUP, "protocol version %d is not supported; mapid speaks "
                                "version %d" % (env.version, PROTOCOL_VERSION), argument="version")
            if call is None:
                raise MapiError(ENOTSUP, "a request without a call (a newer client?)",
                                argument="call")
            if not self.greeted and call != "hello":
                raise MapiError(EBADARG, "the first call on a connection must be hello, not %s"
                                % call, argument="call")
            if call == "create_flow_with":      # its steps go through job control one by one
                result = self.create_flow_with(env.request.create_flow_with, fds, env.id)
            else:
                # job control authorises, runs and records the call (mapi.jobcontrol.control)
                result = self.jobs.call(self, call, getattr(env.request, call), fds, env.id)
        except MapiError as exc:
            close_fds(fds)
            self.reply_error(env.id, exc)
            return
        except Exception as exc:
            close_fds(fds)
            log.exception("client %d: %s failed", self.id, call)
            self.reply_error(env.id, MapiError(EPLUGIN, "mapid: %s failed: %s: %s"
                                               % (call, type(exc).__name__, exc)))
            return
        close_fds(fds)
        if result is DEFERRED:
            return
        reply, out_fds = result
        self.reply(env.id, reply, out_fds)

    def reply(self, rid, reply, fds=()):
        env = envelope(rid, len(fds))
        env.reply.CopyFrom(reply)
        self.conn.send(env, fds)

    def reply_error(self, rid, exc):
        env = envelope(rid)
        error_message(self.engine.public_error(exc), env.error)
        self.conn.send(env)

    @staticmethod
    def value(v):
        return pb.Reply(value=to_value(v)), ()

    @staticmethod
    def done():
        return pb.Reply(done=pb.Empty()), ()

    # --- calls --------------------------------------------------------------------------------
    def call_hello(self, m, fds, rid):
        self.greeted = True
        r = pb.HelloReply(version=min(m.version or PROTOCOL_VERSION, PROTOCOL_VERSION),
                          server=SERVER_NAME, server_pid=_pid(), max_message=self.server.max_message)
        r.you.pid, r.you.uid, r.you.gid = self.pid, self.uid, self.gid
        r.you.program = self.program
        r.you.client_id = self.id
        return pb.Reply(hello=r), ()

    def call_create_offline_device(self, m, fds, rid):
        if len(fds) != 1:
            raise MapiError(EBADARG, "create_offline_device: the client must pass the opened "
                            "trace as one descriptor (%d came)" % len(fds), argument="path")
        fd = fds.pop()
        name = self.engine.open_trace(self, m.path, fd, m.format or None, m.backend or None,
                                      from_map(m.options))
        return pb.Reply(device=pb.DeviceRef(dev=name)), ()

    def call_start_offline_device(self, m, fds, rid):
        self.engine.start_device(self, m.dev)
        return self.done()

    def call_wait_offline_device(self, m, fds, rid):
        name = self.engine.device(self, m.dev)
        try:
            self.engine._call(api.wait_offline_device, name, 0)
            return self.done()
        except MapiError as exc:
            if exc.code != ETIMEOUT:
                raise
        state = {"done": False, "timer": None}

        def complete(errors, timed_out=False):        # loop thread
            if state["done"]:
                return
            state["done"] = True
            if state["timer"] is not None:
                self.server.cancel(state["timer"])
            if timed_out:
                self.reply_error(rid, MapiError(ETIMEOUT, "device %s still replaying after %.3g s"
                                                % (m.dev, m.timeout), argument="timeout"))
            elif errors:
                self.reply_error(rid, errors[0])
            else:
                self.reply(rid, self.done()[0])
        if m.has_timeout:
            self.server.post(lambda: state.__setitem__(
                "timer", None if state["done"] else
                self.server.call_later(m.timeout, lambda: complete(None, True))))
        self.engine.watch_done(name, lambda errors: self.server.post(lambda: complete(errors)))
        return DEFERRED

    def call_stop_device(self, m, fds, rid):
        self.engine.stop_device(self, m.dev)
        return self.done()

    def call_delete_offline_device(self, m, fds, rid):
        self.engine.delete_device(self, m.dev)
        return self.done()

    def call_get_device_info(self, m, fds, rid):
        return self.value(self.engine.device_info(self, m.dev))

    def call_stats(self, m, fds, rid):
        return self.value(self.engine.stats(self, m.dev))

    def call_devices(self, m, fds, rid):
        return self.value(self.engine.visible_devices(self))

    def call_create_flow(self, m, fds, rid):
        fd = self.engine.create_flow(self, m.dev, from_map(m.options))
        return pb.Reply(flow=pb.FlowRef(fd=fd)), ()

    def call_apply_function(self, m, fds, rid):
        if len(fds) != len(m.file_args):
            raise MapiError(EBADARG, "apply_function: %d file arguments announced, %d descriptors "
                            "came" % (len(m.file_args), len(fds)), argument="file_args")
        args = [from_value(v) for v in m.args]
        kwargs = from_map(m.kwargs)
        files = {}
        for where, fd in zip(m.file_args, list(fds)):
            key = int(where) if where.isdigit() else where
            path = args[key] if isinstance(key, int) and key < len(args) else kwargs.get(key, "")
            files[where] = (fd, path)
        fds.clear()
        fid = self.engine.apply_function(self, m.fd, m.name, args, kwargs, files)
        return pb.Reply(function=pb.FunctionRef(fd=m.fd, fid=fid)), ()

    def call_connect(self, m, fds, rid):
        buffers, event_fids = self.engine.connect(self, m.fd)
        reply = pb.Reply()
        out = []
        try:
            for fid, mode, capacity, lossless, ring in buffers:
                reply.connected.buffers.add(fid=fid, mode=mode, capacity=capacity, lossless=lossless)
                out.extend(self.engine.export_ring(ring))
        except OSError:
            close_fds(out)
            raise
        reply.connected.event_fids.extend(event_fids)
        reply.connected.SetInParent()
        for fid in event_fids:
            self.engine.set_event_sink(m.fd, fid, self._sink(m.fd, fid))
        if event_fids:
            name = self.engine.device_of_flow(m.fd)
            if self.engine.device_object(name).offline:
                self.engine.watch_done(name, lambda errors: self.server.post(
                    lambda: self._events_end(m.fd, event_fids)))
        return reply, out

    def create_flow_with(self, m, fds, rid):
        """CreateFlowWith: create_flow, each apply_function and connect (mapi.flow_with.run),
        each step authorised, run and recorded by job control as the call of its name; one
        answer.  The descriptors of the functions' file arguments come in the functions' order."""
        announced = sum(len(f.file_args) for f in m.functions)
        if announced != len(fds):
            raise MapiError(EBADARG, "create_flow_with: %d file arguments announced, %d "
                            "descriptors came" % (announced, len(fds)), argument="file_args")
        passed = list(fds)
        fds.clear()
        steps = []
        for f in m.functions:             # each step's own descriptors; its call takes them
            steps.append((f.name, f, passed[:len(f.file_args)]))
            passed = passed[len(f.file_args):]

        def create(dev, options):
            return self.jobs.call(self, "create_flow", m.flow, [], rid)[0].flow.fd

        def apply(fd, name, msg, step_fds):
            msg.fd = fd
            # its decision goes into the next step's commit: one commit fewer per function,
            # and every decision is still committed before the one answer
            return self.jobs.call(self, "apply_function", msg, step_fds, rid,
                                  answered=False)[0].function.fid

        def connect(fd):
            return self.jobs.call(self, "connect", pb.FlowRef(fd=fd), [], rid)

        def close(fd):
            self.jobs.call(self, "close_flow", pb.FlowRef(fd=fd), [], rid)

        try:
            fd, fids, connected = flow_with.run(m.flow.dev, steps, m.connect, None, create,
                                                apply, connect, close)
        finally:
            for _, _, step_fds in steps:   # those of steps that did not run
                close_fds(step_fds)
        if not m.connect:
            self.jobs.commit()              # the functions' decisions, before the answer
        reply = pb.Reply(flow_with=pb.FlowWith(fd=fd, fids=fids))
        if connected is None:
            return reply, ()
        reply.flow_with.connected.CopyFrom(connected[0].connected)
        reply.flow_with.connected.SetInParent()
        return reply, connected[1]

    def call_read_results(self, m, fds, rid):
        value, ts = self.engine.read_results(self, m.fd, m.fid)
        r = pb.Reply()
        to_value(value, r.results.value)
        r.results.ts = ts or 0
        return r, ()

    def call_close_flow(self, m, fds, rid):
        self.engine.close_flow(self, m.fd)
        return self.done()

    def call_get_flow_info(self, m, fds, rid):
        return self.value(self.engine.flow_info(self, m.fd))

    def call_get_function_info(self, m, fds, rid):
        return self.value(self.engine.function_info(self, m.fd, m.fid))

    def call_explain(self, m, fds, rid):
        return self.value(self.engine.explain(self, m.dev, self.directory.label_of))

    def call_clients(self, m, fds, rid):
        return self.value(self.directory.summaries())

    def call_describe_function(self, m, fds, rid):
        d = get_registry().function(m.name)
        args = [dict(name=a.name, type=a.type, required=a.default is REQUIRED,
                     default=None if a.default is REQUIRED else a.default) for a in d.args]
        return self.value(dict(name=d.name, args=args, result=d.result, filters=d.filters,
                               cost=d.cost, shareable=d.shareable, plugin=d.plugin))

    def call_check_packets(self, m, fds, rid):
        self.engine.check_packets(self, m.fd, m.fid)

    # --- events -------------------------------------------------------------------------------
    def _sink(self, fd, fid):
        def sink(ev):                          # the engine's processor thread: never block
            with self._events_lock:
                self._events.setdefault((fd, fid), []).append(ev)
                if self._events_posted:
                    return
                self._events_posted = True
            self.server.post(self._push_events)
        return sink

    def _push_events(self):
        with self._events_lock:
            pending, self._events = self._events, {}
            self._events_posted = False
        for (fd, fid), evs in pending.items():
            env = envelope()
            push = env.push.events
            push.fd, push.fid = fd, fid
            for ev in evs:
                rec = push.events.add(ts=ev.ts or 0, kind=str(ev.kind), seq=ev.seq or 0,
                                      has_seq=ev.seq is not None)
                to_value(ev.value, rec.value)
                to_value(ev.threshold, rec.threshold)
            self.conn.send(env, push=True)

    def _events_end(self, fd, fids):
        self._push_events()
        for fid in fids:
            env = envelope()
            env.push.events_end.fd, env.push.events_end.fid = fd, fid
            self.conn.send(env, push=True)

    # --- observability and the end ----------------------------------------------------------
    def summary(self, counts=None):
        """This client's flows and totals; `counts` caches each device's per-flow counts
        across the clients of one listing."""
        flows, packets, drops, nbytes, wire = [], 0, 0, 0, 0
        counts = {} if counts is None else counts
        for fd in sorted(self.flows):
            name = self.engine.device_of_flow(fd)
            try:
                info = self.engine.flow_info(self, fd)
                if name is None or info["status"] == "closed":
                    continue                    # closed meanwhile (the client is leaving)
                if name not in counts:
                    counts[name] = self.engine.flow_counts(name)
            except MapiError:
                continue
            if info.get("status") == "closed":      # closed under us: nothing of it is kept
                continue
            pin, pout, bin_, bout = counts[name].get(fd, (0, 0, 0, 0))
            rings = self.engine.ring_stats(fd).values()
            f = dict(fd=fd, device=info["device"], status=info["status"],
                     functions=[x["name"] for x in info["functions"]], packets_in=pin,
                     packets_out=pout, bytes_in=bin_, bytes_out=bout,
                     buffered=sum(r[0] for r in rings),
                     buffer_bytes=sum(r[3] for r in rings), drops=sum(r[1] for r in rings))
            flows.append(f)
            packets += pin
            wire += bin_
            drops += f["drops"]
            nbytes += f["buffer_bytes"]
        return dict(client=self.id, pid=self.pid, uid=self.uid, gid=self.gid,
                    program=self.program, since=self.since, flows=flows, packets=packets,
                    bytes=wire, buffer_bytes=nbytes, drops=drops)

    def cleanup(self):
        """The client is gone: its flows close (files flushed), its devices go."""
        for fd in sorted(self.flows, reverse=True):   # watchers (THRESHOLD) before the watched
            try:
                self.engine.close_flow(self, fd)
            except Exception as exc:
                log.warning("client %d: closing flow %d: %s", self.id, fd, exc)
        for dev in self.engine.owned_devices(self):
            try:
                self.engine.delete_device(self, dev)
            except Exception as exc:
                log.warning("client %d: deleting device %s: %s", self.id, dev, exc)
        self.jobs.client_gone(self)


def _pid():
    import os
    return os.getpid()
