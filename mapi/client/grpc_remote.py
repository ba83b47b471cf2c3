"""GrpcMapi: the MAPI calls answered by a remote mapid over gRPC with mutual TLS.

    mapi.use_server("grpcs://s1.example:7000", ca="ca.pem", cert="me.pem", key="me.key")
    MAPI_SERVER=grpcs://s1.example:7000 MAPI_TLS_CA=... MAPI_TLS_CERT=... MAPI_TLS_KEY=...

Same names, arguments, results and errors as in-process.  Differences: traces and TO_FILE
paths are the sensor's files (under its --remote-traces / --remote-output), packets come as a
stream of batches, and flows survive the server: descriptors are this client's own, and when
the server went away (killed, restarted, unreachable) the next call opens a new session and
re-creates every flow there from what was applied (its counters start again from zero:
get_flow_info's "restarted" lists when).  A flow on an offline device this client created
cannot be re-created (the replay is gone): its calls then raise MapiError(ESERVER)."""
import itertools
import threading
import time

from mapi import flow_with
from mapi.api import Result
from mapi.errors import MapiError, EBADARG, ENOFLOW, ENOTSUP, ESERVER, ETIMEOUT
from mapi.proto import pb
from mapi.proto.values import from_value, to_map, to_value

from .credentials import env_token, load_library_request, read_token
from .events import RemoteEventQueue, events_of, iterator
from .grpc_channel import TLSConfig, parse, target
from .grpc_packets import StreamReader
from .grpc_session import GrpcSession
from .packet_calls import DeviceQueries, PacketCalls

WAIT_SLICE = 2.0             # a long wait_offline_device is several calls of this length
RETRY_INTERVAL = 0.5         # a server found gone is tried again at most this often


class _Flow:
    def __init__(self, fd, dev, options):
        self.fd, self.dev, self.options = fd, dev, options
        self.functions = []          # (name, args, kwargs), fid = index + 1
        self.connected = False
        self.gen = 0                 # the session it lives in
        self.sfd = None              # its descriptor there
        self.lost = None             # MapiError: it could not be re-created
        self.restarted = []          # wall-clock times it was re-created (counters from zero)
        self.readers = {}            # fid -> StreamReader
        self.queues = {}             # fid -> RemoteEventQueue


class GrpcMapi(PacketCalls, DeviceQueries):
    def __init__(self, url, ca=None, cert=None, key=None, deadline=None, tls=None, token=None):
        host, port, dev = parse(url)
        if dev:
            raise MapiError(EBADARG, "%s names a device; a server URL is grpcs://HOST:PORT "
                            "(devices are named in create_flow)" % url, argument="url")
        self.url = "grpcs://%s:%d" % (host, port)
        self.target = target(host, port)
        self.tls = tls or TLSConfig(ca, cert, key, deadline)
        self._creds = None
        self._session = None
        self._gen = 0
        self._lock = threading.RLock()
        self._fds = itertools.count(1)
        self._issued = 0
        self._flows = {}
        self._by_server = {}         # (gen, server fd) -> fd
        self._own_devices = {}       # device name -> gen it was created in
        self._described = {}
        self.down_since = None       # wall-clock time the server was found gone
        self._failed = None          # (monotonic time, MapiError) of the last failed attempt
        # credentials presented on every new session (job control); else MAPI_TOKEN's
        self._token = read_token(token) if token else None
        self.rights = None

    # --- the session --------------------------------------------------------------------------
    def session(self):
        """The live session, or a new one (flows re-created there); MapiError(ESERVER) when
        the server cannot be reached within the deadline."""
        with self._lock:
            s = self._session
            if s is not None and s.dead is None:
                return s
            if s is not None:
                s.close()
                self._session = None
            if self._creds is None:
                self._creds = self.tls.credentials()
            now = time.monotonic()
            if self._failed is not None and now - self._failed[0] < RETRY_INTERVAL:
                raise self._failed[1]           # tried a moment ago: answer at once
            try:
                s = GrpcSession(self.url, self.target, self._creds, self.tls.deadline,
                                self._on_push, self._on_dead)
            except MapiError as exc:
                if self.down_since is None:
                    self.down_since = time.time()
                self._failed = (time.monotonic(), exc)
                raise
            self._failed = None
            token = self._token or env_token()
            if token:                   # job control: the credentials, once per session
                try:
                    self.rights = from_value(self._call(
                        "authenticate", pb.Authenticate(token=token), session=s).value)
                except MapiError:
                    s.close()
                    raise
            self._gen += 1
            self._session = s
            self.down_since = None
            if self._flows:
                self._recreate(s)
            return s

    connection = session

    def restarted(self, fd):
        """When flow fd was re-created in a new session (its counters started again)."""
        f = self._flows.get(fd)
        return list(f.restarted) if f is not None else []

    def alive(self):
        s = self._session
        return s is not None and s.dead is None

    def _on_dead(self, error):
        if self.down_since is None:
            self.down_since = time.time()
        flows = list(self._flows.values())      # no lock: session() may hold it, waiting for us
        for f in flows:
            for r in f.readers.values():
                r.fail(error)
            for q in f.queues.values():
                q.fail(error)

    def _on_push(self, push):
        kind = push.WhichOneof("kind")
        if kind not in ("events", "events_end"):
            return
        msg = getattr(push, kind)
        with self._lock:
            fd = self._by_server.get((self._gen, msg.fd))
            flow = self._flows.get(fd)
        q = flow.queues.get(msg.fid) if flow is not None else None
        if q is None:
            return
        if kind == "events":
            q.publish([e._replace(fd=fd) for e in events_of(msg)])
        else:
            q.end()

    def _call(self, field, msg=None, timeout=None, session=None):
        req = pb.Request()
        getattr(req, field).CopyFrom(msg if msg is not None else pb.Empty())
        return (session or self.session()).call(req, timeout)

    def _value(self, field, msg=None):
        return from_value(self._call(field, msg).value)

    def close(self):
        with self._lock:
            s, self._session = self._session, None
            flows = list(self._flows.values())
        for f in flows:
            for r in f.readers.values():
                r.close()
        if s is not None:
            s.close()

    # --- re-creating flows in a new session -------------------------------------------------
    def _recreate(self, s):
        now = time.time()
        for fd in sorted(self._flows):
            f = self._flows[fd]
            if f.lost is not None:
                continue
            if f.dev in self._own_devices and self._own_devices[f.dev] != self._gen:
                f.lost = MapiError(ESERVER, "flow %d was on %s, an offline device of the session "
                                   "that ended when %s went away" % (fd, f.dev, self.url),
                                   argument="fd")
                continue
            try:
                self._bind(s, f)
            except MapiError as exc:
                f.lost = MapiError(exc.code, "flow %d could not be re-created on %s: %s"
                                   % (fd, self.url, exc), argument="fd")
                continue
            f.restarted.append(now)

    def _bind(self, s, f):
        """Create flow f in session s from its recipe, its functions and its connect (if it
        was connected) in one request (create_flow_with)."""
        msg = pb.CreateFlowWith(flow=pb.CreateFlow(dev=f.dev), connect=f.connected)
        to_map(f.options, msg.flow.options)
        for i, (name, args, kwargs) in enumerate(f.functions):
            try:
                msg.functions.append(self._apply_message(f, name, args, kwargs))
            except MapiError as exc:        # before anything was sent: no flow to close
                raise flow_with.failed(exc, flow_with.step_name(i, len(f.functions), name),
                                       closed=False) from None
        made = self._call("create_flow_with", msg, session=s).flow_with
        f.sfd = made.fd
        f.gen = self._gen
        self._by_server[(self._gen, f.sfd)] = f.fd
        if f.connected:
            self._attach(s, f, made.connected)

    # --- devices ------------------------------------------------------------------------------
    def create_offline_device(self, path, fmt=None, backend=None, **options):
        """A replay of the sensor's file `path` (relative to its --remote-traces directory)."""
        msg = pb.CreateOfflineDevice(path=str(path), format=fmt or "", backend=backend or "")
        to_map(options, msg.options)
        dev = self._call("create_offline_device", msg).device.dev
        self._own_devices[dev] = self._gen
        return dev

    def start_offline_device(self, dev):
        self._call("start_offline_device", pb.DeviceRef(dev=dev))
        return 0

    def stop_device(self, dev):
        self._call("stop_device", pb.DeviceRef(dev=dev))
        return 0

    def wait_offline_device(self, dev, timeout=None):
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            left = WAIT_SLICE if end is None else min(WAIT_SLICE, max(0.0, end - time.monotonic()))
            msg = pb.WaitOfflineDevice(dev=dev, timeout=left, has_timeout=True)
            try:
                self._call("wait_offline_device", msg, timeout=left + self.tls.deadline)
                return 0
            except MapiError as exc:
                if exc.code != ETIMEOUT or (end is not None and time.monotonic() >= end):
                    raise

    def delete_offline_device(self, dev):
        self._call("delete_offline_device", pb.DeviceRef(dev=dev))
        self._own_devices.pop(dev, None)
        self._forget_flows_of(dev)
        return 0

    def open_live_device(self, name, **options):
        raise MapiError(ENOTSUP, "open_live_device: with a MAPI server the server opens devices; "
                        "create a flow on %r instead" % (name,), argument="name")

    def authenticate(self, token):
        """Present `token` (or @FILE) now and on every session after this one."""
        self._token = read_token(token)
        with self._lock:
            s = self._session
        if s is None or s.dead is not None:
            self.session()                  # a new session presents it
        else:
            self.rights = self._value("authenticate", pb.Authenticate(token=self._token))
        return self.rights

    def load_library(self, path, kind="sandboxed", place="host", name=None):
        req = load_library_request(path, kind, place, name)
        return self._value("load_library", req.load_library)

    def explain_data(self, dev):
        return self._value("explain", pb.DeviceRef(dev=dev))

    def clients(self):
        return self._value("clients")

    def describe_function(self, name):
        d = self._described.get(name)
        if d is None:
            d = self._described[name] = self._value("describe_function", pb.FunctionName(name=name))
        return d

    # --- flows --------------------------------------------------------------------------------
    def create_flow(self, dev, **options):
        if not isinstance(dev, str):
            raise MapiError(EBADARG, "create_flow: device must be a name, not %r" % (dev,),
                            argument="dev")
        s = self.session()
        with self._lock:
            f = _Flow(next(self._fds), dev, dict(options))
            self._issued = f.fd
            self._bind(s, f)
            self._flows[f.fd] = f
        return f.fd

    def create_flow_with(self, dev, functions=(), connect=True, **options):
        """One create_flow_with request (mapi.flow_with): (fd, [fid, ...])."""
        if not isinstance(dev, str):
            raise MapiError(EBADARG, "create_flow: device must be a name, not %r" % (dev,),
                            argument="dev")
        steps = flow_with.steps_of(functions)
        s = self.session()
        with self._lock:
            f = _Flow(next(self._fds), dev, dict(options))
            f.functions = list(steps)
            f.connected = bool(connect)
            self._bind(s, f)
            self._issued = f.fd
            self._flows[f.fd] = f
        return f.fd, list(range(1, len(steps) + 1))

    def _flow(self, fd):
        """(session, flow) of a descriptor of this client, re-created first if it must be."""
        s = self.session()
        with self._lock:
            f = self._flows.get(fd)
        if f is None:
            raise MapiError(ENOFLOW, "no flow with descriptor %r" % (fd,), argument="fd")
        if f.lost is not None:
            raise f.lost
        return s, f

    def _server_args(self, name, args, kwargs):
        """args with (fd, fid) references to this client's flows as the server's."""
        desc = self.describe_function(name)
        refs = [(i, a["name"]) for i, a in enumerate(desc["args"]) if a["type"] == "F"]
        args, kwargs = list(args), dict(kwargs)
        for i, pname in refs:
            for holder, key in ((args, i), (kwargs, pname)):
                if (key in holder if isinstance(holder, dict) else key < len(holder)):
                    ref = holder[key]
                    if isinstance(ref, (tuple, list)) and len(ref) == 2 and ref[0] in self._flows:
                        target_flow = self._flows[ref[0]]
                        if target_flow.lost is not None:
                            raise target_flow.lost
                        holder[key] = (target_flow.sfd, ref[1])
        return args, kwargs

    def _apply_message(self, f, name, args, kwargs):
        sargs, skwargs = self._server_args(name, args, kwargs)
        msg = pb.ApplyFunction(fd=f.sfd or 0, name=name)
        for a in sargs:
            to_value(a, msg.args.add())
        to_map(skwargs, msg.kwargs)
        return msg

    def _apply(self, s, f, name, args, kwargs):
        msg = self._apply_message(f, name, args, kwargs)
        return self._call("apply_function", msg, session=s).function.fid

    def apply_function(self, fd, name, *args, **kwargs):
        if not isinstance(name, str):
            raise MapiError(EBADARG, "function name must be a string, not %r" % (name,),
                            argument="name")
        s, f = self._flow(fd)
        fid = self._apply(s, f, name, args, kwargs)
        f.functions.append((name, tuple(args), dict(kwargs)))
        return fid

    def _connect(self, s, f):
        self._attach(s, f, self._call("connect", pb.FlowRef(fd=f.sfd), session=s).connected)

    def _attach(self, s, f, reply):
        """A connect's answer: stream its buffers, listen for its events."""
        for b in reply.buffers:
            r = f.readers.get(b.fid)
            if r is None:
                r = f.readers[b.fid] = StreamReader(b.mode, f.fd, b.fid)
            r.attach(s, f.sfd)
        for fid in reply.event_fids:
            q = f.queues.get(fid)
            if q is None:
                q = f.queues[fid] = RemoteEventQueue(f.fd, fid)
            q.error = None

    def connect(self, fd):
        s, f = self._flow(fd)
        self._connect(s, f)
        f.connected = True
        return 0

    def read_results(self, fd, fid):
        s, f = self._flow(fd)
        r = self._call("read_results", pb.FunctionRef(fd=f.sfd, fid=fid), session=s).results
        reader = f.readers.get(fid)
        return Result(from_value(r.value), reader.last_ts if reader is not None else r.ts)

    def function_instance(self, fd, fid):
        """A connected TO_BUFFER's packet reader (next_packet, next_batch, drain, drain_all)."""
        s, f = self._flow(fd)
        reader = f.readers.get(fid)
        if reader is None:
            self._call("check_packets", pb.FunctionRef(fd=f.sfd, fid=fid), session=s)
        return reader

    def close_flow(self, fd):
        with self._lock:
            f = self._flows.get(fd)
        if f is None:
            raise MapiError(ENOFLOW, "no flow with descriptor %r" % (fd,), argument="fd")
        try:
            if f.lost is None and self.alive() and f.gen == self._gen:
                self._call("close_flow", pb.FlowRef(fd=f.sfd))
        finally:
            self._forget(fd)
        return 0

    def _forget(self, fd):
        with self._lock:
            f = self._flows.pop(fd, None)
        if f is None:
            return
        for r in f.readers.values():
            r.close()
        for q in f.queues.values():
            q.end()

    def get_flow_info(self, fd):
        with self._lock:
            f = self._flows.get(fd)
        if f is None:
            if isinstance(fd, int) and 0 < fd <= self._issued:
                return dict(fd=fd, status="closed")
            raise MapiError(ENOFLOW, "no flow with descriptor %r" % (fd,), argument="fd")
        s, f = self._flow(fd)
        info = self._value("get_flow_info", pb.FlowRef(fd=f.sfd))
        info.update(fd=fd, server=self.url, server_fd=f.sfd, restarted=list(f.restarted))
        return info

    def get_function_info(self, fd, fid):
        s, f = self._flow(fd)
        info = self._value("get_function_info", pb.FunctionRef(fd=f.sfd, fid=fid))
        info["restarted"] = list(f.restarted)
        return info

    # --- events -------------------------------------------------------------------------------
    def _events_queue(self, fd, fid):
        s, f = self._flow(fd)
        if fid in f.queues:
            return f.queues[fid]
        info = self.get_function_info(fd, fid)
        raise MapiError(ENOTSUP, "function %d of flow %d is %s, which delivers no events; apply "
                        "THRESHOLD and pass its id" % (fid, fd, info["name"]), argument="fid")

    def set_event_callback(self, fd, fid, fn):
        if fn is not None and not callable(fn):
            raise MapiError(EBADARG, "set_event_callback: fn must be callable or None, not %r"
                            % (fn,), argument="fn")
        self._events_queue(fd, fid).set_callback(fn)
        return 0

    def get_next_event(self, fd, fid, timeout=None):
        return self._events_queue(fd, fid).get(timeout)

    def events(self, fd, fid):
        return iterator(self._events_queue(fd, fid))

