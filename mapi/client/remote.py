"""RemoteMapi: the MAPI calls of mapi.api, answered by mapid.

Same names, arguments, results and errors as the in-process calls; what differs is where the
work happens.  Files the server must read or write (a trace, TO_FILE's target) are opened here,
with this process's rights, and passed as descriptors.  TO_BUFFER rings are mapped into this
process and read in place; events arrive pushed and wait in local queues."""
import os
import threading

from mapi import flow_with
from mapi.api import Result
from mapi.errors import MapiError, EBADARG, ENOTSUP, EOPEN
from mapi.proto import pb
from mapi.proto.values import from_value, to_map, to_value

from .connection import Connection
from .credentials import env_token, load_library_request, present, read_token
from .events import RemoteEventQueue, events_of, iterator
from .passing import pass_files, passing
from .packet_calls import DeviceQueries, PacketCalls
from .ring import attach_all


def parse_url(url):
    """The socket path of a MAPI_SERVER value: unix:/path, unix:///path or a plain path."""
    if url.startswith("unix://"):
        return url[len("unix://"):]
    if url.startswith("unix:"):
        return url[len("unix:"):]
    if "://" in url:
        raise MapiError(ENOTSUP, "MAPI server %r: give unix:PATH (this machine) or "
                        "grpcs://HOST:PORT (remote, mutual TLS)" % url, argument="url")
    return url


class LiveDevice:
    """What open_live_device gives with a server: the device's name, its info and stats."""

    def __init__(self, client, name):
        self.client = client
        self.name = name

    def info(self):
        return self.client.get_device_info(self.name)

    def stats(self):
        return self.client.stats(self.name)

    def __repr__(self):
        return "LiveDevice(%r on %s)" % (self.name, self.client.url)


class _Flow:
    __slots__ = ("dev", "names", "rings", "queues")

    def __init__(self, dev):
        self.dev = dev
        self.names = {}           # fid -> function name
        self.rings = {}           # fid -> RingReader
        self.queues = {}          # fid -> RemoteEventQueue


class RemoteMapi(PacketCalls, DeviceQueries):
    def __init__(self, url):
        self.url = url
        self.path = parse_url(url)
        self._conn = None
        self._lock = threading.RLock()
        self._flows = {}
        self._queues = {}         # (fd, fid) -> RemoteEventQueue (events may come before connect's reply)
        self._holders = {}        # live device -> the flow that holds it open (open_live_device)
        self._described = {}
        self._token = None
        self.rights = None        # what the server granted the credentials presented

    # --- the connection -----------------------------------------------------------------------
    def connection(self):
        with self._lock:
            c = self._conn
            if c is None or c.dead is not None or c.pid != os.getpid():
                if c is not None and c.pid == os.getpid():
                    c.close()
                elif c is not None:              # a forked child: the parent's connection stays
                    _close_quietly(c.sock)
                # descriptors of a gone server mean nothing
                self._flows, self._queues, self._holders = {}, {}, {}
                c = self._conn = Connection(self.path, self._on_push, self._on_dead)
                token = self._token or env_token()
                if token:                        # credentials, once per connection
                    self.rights = present(c, token)
            return c

    def _call(self, field, msg=None, fds=()):
        req = pb.Request()
        getattr(req, field).CopyFrom(msg if msg is not None else pb.Empty())
        return self.connection().call_fds(req, fds)

    def _reply(self, field, msg=None, fds=()):
        return self._call(field, msg, fds)[0]

    def _value(self, field, msg=None):
        return from_value(self._reply(field, msg).value)

    def _on_push(self, push, fds):
        kind = push.WhichOneof("kind")
        if kind == "events":
            self._queue(push.events.fd, push.events.fid).publish(events_of(push.events))
        elif kind == "events_end":
            self._queue(push.events_end.fd, push.events_end.fid).end()

    def _on_dead(self, error):
        with self._lock:
            flows = list(self._flows.values())
            queues = list(self._queues.values())
        for f in flows:
            for r in f.rings.values():
                r.interrupt()
        for q in queues:
            q.fail(error)

    def _queue(self, fd, fid):
        with self._lock:
            q = self._queues.get((fd, fid))
            if q is None:
                q = self._queues[(fd, fid)] = RemoteEventQueue(fd, fid)
            return q

    def close(self):
        with self._lock:
            c, self._conn = self._conn, None
        if c is not None:
            c.close()

    # --- devices ------------------------------------------------------------------------------
    def create_offline_device(self, path, fmt=None, backend=None, **options):
        if not isinstance(path, (str, bytes, os.PathLike)):
            raise MapiError(EBADARG, "create_offline_device: path must be a file name, not %r"
                            % (path,), argument="path")
        path = os.fsdecode(path)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise MapiError(EOPEN, "cannot open %s: %s" % (path, exc.strerror), file=path) from None
        try:
            msg = pb.CreateOfflineDevice(path=path, format=fmt or "", backend=backend or "")
            to_map(options, msg.options)
            return self._reply("create_offline_device", msg, [fd]).device.dev
        finally:
            os.close(fd)

    def start_offline_device(self, dev):
        self._reply("start_offline_device", pb.DeviceRef(dev=dev))
        return 0

    def stop_device(self, dev):
        self._reply("stop_device", pb.DeviceRef(dev=dev))
        return 0

    def wait_offline_device(self, dev, timeout=None):
        msg = pb.WaitOfflineDevice(dev=dev, timeout=timeout or 0, has_timeout=timeout is not None)
        self._reply("wait_offline_device", msg)
        return 0

    def delete_offline_device(self, dev):
        self._reply("delete_offline_device", pb.DeviceRef(dev=dev))
        self._forget_flows_of(dev)
        return 0

    def open_live_device(self, name, **options):
        """Open (or reuse) the live device `name` on the server.  A flow of this client holds it
        open (no function, never connected) until this client's first own flow on it takes
        over: as in-process, the device then lives until its last flow closes.  Returns a
        LiveDevice (name, info(), stats())."""
        if not isinstance(name, str):
            raise MapiError(EBADARG, "open_live_device: device must be a name, not %r" % (name,),
                            argument="name")
        with self._lock:
            held = name in self._holders
        if not held:
            msg = pb.CreateFlow(dev=name)
            to_map(options, msg.options)
            fd = self._reply("create_flow", msg).flow.fd
            with self._lock:
                if name in self._holders:     # another thread of this process was first
                    extra = fd
                else:
                    self._holders[name], extra = fd, None
            if extra is not None:
                self._reply("close_flow", pb.FlowRef(fd=extra))
        return LiveDevice(self, name)

    # --- flows --------------------------------------------------------------------------------
    def create_flow(self, dev, **options):
        if not isinstance(dev, str):
            raise MapiError(EBADARG, "create_flow: device must be a name, not %r" % (dev,),
                            argument="dev")
        msg = pb.CreateFlow(dev=dev)
        to_map(options, msg.options)
        fd = self._reply("create_flow", msg).flow.fd
        with self._lock:
            self._flows[fd] = _Flow(dev)
            holder = self._holders.pop(dev, None)
        if holder is not None:              # open_live_device's hold: this flow keeps it now
            self._reply("close_flow", pb.FlowRef(fd=holder))
        return fd

    def describe_function(self, name):
        d = self._described.get(name)
        if d is None:
            d = self._described[name] = self._value("describe_function", pb.FunctionName(name=name))
        return d

    def _apply_message(self, fd, name, args, kwargs, fds, created):
        """The ApplyFunction of a call, its files opened here (mapi.client.passing)."""
        if not isinstance(name, str):
            raise MapiError(EBADARG, "function name must be a string, not %r" % (name,),
                            argument="name")
        args, kwargs, files = pass_files(self.describe_function(name), args, kwargs, fds,
                                         created)
        msg = pb.ApplyFunction(fd=fd, name=name, file_args=files)
        for a in args:
            to_value(a, msg.args.add())
        to_map(kwargs, msg.kwargs)
        return msg

    def apply_function(self, fd, name, *args, **kwargs):
        with passing() as (fds, created):
            msg = self._apply_message(fd, name, args, kwargs, fds, created)
            fid = self._reply("apply_function", msg, fds).function.fid
        with self._lock:
            flow = self._flows.get(fd)
            if flow is not None:
                flow.names[fid] = name
        return fid

    def create_flow_with(self, dev, functions=(), connect=True, **options):
        """One CreateFlowWith request (mapi.flow_with): (fd, [fid, ...])."""
        if not isinstance(dev, str):
            raise MapiError(EBADARG, "create_flow: device must be a name, not %r" % (dev,),
                            argument="dev")
        steps = flow_with.steps_of(functions)
        msg = pb.CreateFlowWith(flow=pb.CreateFlow(dev=dev), connect=bool(connect))
        to_map(options, msg.flow.options)
        with passing() as (fds, created):
            for i, (name, args, kwargs) in enumerate(steps):
                try:
                    msg.functions.append(self._apply_message(0, name, args, kwargs, fds,
                                                             created))
                except MapiError as exc:
                    raise flow_with.failed(exc, flow_with.step_name(i, len(steps), name),
                                           closed=False) from None
            reply, ring_fds = self._call("create_flow_with", msg, fds)
        made = reply.flow_with
        fd, fids = made.fd, list(made.fids)
        with self._lock:
            flow = self._flows[fd] = _Flow(dev)
            flow.names.update(zip(fids, (name for name, _, _ in steps)))
            holder = self._holders.pop(dev, None)
        if holder is not None:              # open_live_device's hold: this flow keeps it now
            self._reply("close_flow", pb.FlowRef(fd=holder))
        if made.HasField("connected"):
            self._attach(fd, made.connected, ring_fds)
        return fd, fids

    def connect(self, fd):
        reply, fds = self._call("connect", pb.FlowRef(fd=fd))
        self._attach(fd, reply.connected, fds)
        return 0

    def _attach(self, fd, connected, fds):
        """A connect's answer: map its rings, listen for its events."""
        conn = self.connection()
        rings = attach_all(connected, fds, conn, fd)
        if rings or connected.event_fids:
            conn.need_reader()              # their readers wait outside calls
        with self._lock:
            flow = self._flows.setdefault(fd, _Flow(None))
            flow.rings.update(rings)
            for fid in connected.event_fids:
                flow.queues[fid] = self._queue(fd, fid)

    def _flow(self, fd):
        with self._lock:
            return self._flows.get(fd)

    def read_results(self, fd, fid):
        r = self._reply("read_results", pb.FunctionRef(fd=fd, fid=fid)).results
        flow = self._flow(fd)
        ring = flow.rings.get(fid) if flow is not None else None
        # a buffer's ts is its reader's last packet, and the reader is this process
        return Result(from_value(r.value), ring.last_ts if ring is not None else r.ts)

    def function_instance(self, fd, fid):
        """A connected TO_BUFFER's ring reader (next_packet, drain, fileno, ring)."""
        flow = self._flow(fd)
        ring = flow.rings.get(fid) if flow is not None else None
        if ring is None:
            self._reply("check_packets", pb.FunctionRef(fd=fd, fid=fid))
        return ring

    def close_flow(self, fd):
        self._reply("close_flow", pb.FlowRef(fd=fd))
        self._forget(fd)
        return 0

    def _forget(self, fd):
        with self._lock:
            flow = self._flows.pop(fd, None)
            queues = [self._queues.pop(k) for k in list(self._queues) if k[0] == fd]
        for q in queues:
            q.end()
        if flow is not None:
            for r in flow.rings.values():
                r.close()

    def get_flow_info(self, fd):
        return self._value("get_flow_info", pb.FlowRef(fd=fd))

    def get_function_info(self, fd, fid):
        return self._value("get_function_info", pb.FunctionRef(fd=fd, fid=fid))

    # --- events -------------------------------------------------------------------------------
    def _events_queue(self, fd, fid):
        flow = self._flow(fd)
        if flow is not None and fid in flow.queues:
            return flow.queues[fid]
        info = self.get_function_info(fd, fid)        # the server's error for a bad fd/fid
        raise MapiError(ENOTSUP, "function %d of flow %d is %s, which delivers no events; apply "
                        "THRESHOLD and pass its id" % (fid, fd, info["name"]), argument="fid")

    def set_event_callback(self, fd, fid, fn):
        if fn is not None and not callable(fn):
            raise MapiError(EBADARG, "set_event_callback: fn must be callable or None, not %r"
                            % (fn,), argument="fn")
        self._events_queue(fd, fid).set_callback(fn)
        return 0

    def get_next_event(self, fd, fid, timeout=None):
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                    or timeout < 0):
            raise MapiError(EBADARG, "get_next_event: timeout must be None or seconds >= 0, not %r"
                            % (timeout,), argument="timeout")
        return self._events_queue(fd, fid).get(timeout)

    def events(self, fd, fid):
        return iterator(self._events_queue(fd, fid))

    # --- job control ----------------------------------------------------------------------------
    def authenticate(self, token):
        self._token = read_token(token)
        with self._lock:
            c = self._conn
            fresh = c is None or c.dead is not None or c.pid != os.getpid()
        if fresh:
            self.connection()
        else:
            self.rights = present(c, self._token)
        return self.rights

    def load_library(self, path, kind="sandboxed", place="host", name=None):
        req = load_library_request(path, kind, place, name)
        return from_value(self.connection().call(req).value)

    # --- the server's view --------------------------------------------------------------------
    def explain_data(self, dev):
        return self._value("explain", pb.DeviceRef(dev=dev))

    def clients(self):
        return self._value("clients")


def _close_quietly(sock):
    """Close this process's copy of a socket (no shutdown: another process still uses it)."""
    try:
        sock.close()
    except OSError:
        pass
