"""Distributed flows (MAPI 2.0's DiMAPI): one flow over several sensors.

    fd = mapi.create_flow("grpcs://s1:7000/eth0, grpcs://s2:7000/eth1")
    cnt = mapi.apply_function(fd, "PKT_COUNTER")          # applied on every sensor
    mapi.connect(fd)
    r = mapi.read_results(fd, cnt)
    r.value, r.ts                 # the combined value (mapi.client.combine), the latest ts
    r.sensors                     # {sensor: Result or None}: each sensor's own value
    r.partial, r.missing          # True and {sensor: since (epoch s)} when some did not answer
    r.restarted                   # {sensor: [times]}: re-created there, counting from zero

Every call goes to all sensors at once and returns when all answered or their deadline passed
(MAPI_RPC_TIMEOUT, 5 s); a sensor that did not answer is named (missing), never waited for
longer.  A sensor that comes back (a restarted mapid, a network that heals) is reconnected in
the background (REVIVE seconds apart) and the flow is re-created there from what was applied.
TLS material: create_flow(scope, ca=, cert=, key=, deadline=) or MAPI_TLS_CA/CERT/KEY.
Credentials (job control): create_flow(scope, token=TOKEN or "@FILE"), or MAPI_TOKEN /
MAPI_TOKEN_FILE; presented to every sensor on every session, refused ones name the sensor.
Descriptors of distributed flows start at mapi.SCOPE_FD_BASE; mapi's calls route them here."""
import itertools
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait

from mapi import flow_with
from mapi import SCOPE_FD_BASE
from mapi.api import Result
from mapi.lazylog import getLogger
from mapi.errors import MapiError, EBADARG, ECLOSED, ENOFLOW, ENOFUNC, ESERVER, ETIMEOUT

from .combine import PARTIAL_ARGS, combine, cut
from .credentials import read_token
from .grpc_channel import TLSConfig, is_remote, parse
from .grpc_remote import GrpcMapi
from .packet_calls import PacketCalls
from .scope_events import CombinedThreshold
from .scope_packets import MergedPackets

log = getLogger("mapi.distributed")   # a library does not print: "mapi" gets its NullHandler
REVIVE = 1.0
GONE = (ESERVER, ETIMEOUT)


class DistributedResult(Result):
    """A Result (value, ts) with each sensor's part: sensors, partial, missing, restarted."""


class Sensor:
    def __init__(self, name, client, dev):
        self.name, self.client, self.dev = name, client, dev
        self.fd = None                  # the flow's descriptor in its client
        self.fids = {}                  # the flow's fid -> the sensor's fid
        self.missing_since = None

    def since(self):
        return self.missing_since or self.client.down_since or time.time()


class DFlow:
    def __init__(self, fd, scope, sensors, options):
        self.fd, self.scope, self.sensors, self.options = fd, scope, sensors, options
        self.functions = []             # (name, sensor args, sensor kwargs, hints) or a threshold
        self.connected = False
        self.closed = False
        self.mergers = {}


def parse_scope(scope):
    """[(name, server url, device)] of "grpcs://h1:p1/dev1, grpcs://h2:p2/dev2"."""
    out = []
    for part in scope.split(","):
        part = part.strip()
        if not part:
            continue
        if not is_remote(part):
            raise MapiError(EBADARG, "scope %r: every sensor is grpcs://HOST:PORT/DEVICE, not %r"
                            % (scope, part), argument="dev")
        host, port, dev = parse(part)
        if not dev:
            raise MapiError(EBADARG, "scope %r: %s names no device (grpcs://HOST:PORT/DEVICE)"
                            % (scope, part), argument="dev")
        out.append((part, "grpcs://%s:%d" % (host, port), dev))
    if len({n for n, _, _ in out}) != len(out):
        raise MapiError(EBADARG, "scope %r names a sensor twice" % (scope,), argument="dev")
    return out


class Distributed(PacketCalls):
    def __init__(self):
        self.lock = threading.RLock()
        self.clients = {}               # (server url, TLS settings) -> GrpcMapi
        self.flows = {}
        self._fds = itertools.count(SCOPE_FD_BASE)
        self.pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="mapi-scope")
        self._reviver = None

    # --- fan-out ------------------------------------------------------------------------------
    def _fan(self, flow, fn, sensors=None):
        """({name: value}, {name: MapiError}) of fn(sensor) on every sensor at once; waits at
        most the deadline (plus a reconnection's) for each."""
        sensors = flow.sensors if sensors is None else sensors
        futures = {self.pool.submit(self._one, flow, s, fn): s for s in sensors}
        limit = max(s.client.tls.deadline for s in sensors) * 2 + 1 if sensors else 0
        wait(futures, timeout=limit)
        ok, failed = {}, {}
        for fut, s in futures.items():
            if not fut.done():
                failed[s.name] = MapiError(ETIMEOUT, "sensor %s did not answer within %.3g s"
                                           % (s.name, limit))
                s.missing_since = s.missing_since or time.time()
                continue
            exc = fut.exception()
            if exc is None:
                ok[s.name] = fut.result()
                s.missing_since = None
            elif isinstance(exc, MapiError) and exc.code in GONE:
                failed[s.name] = exc
                s.missing_since = s.since()
            else:
                failed[s.name] = exc
        return ok, failed

    def _one(self, flow, s, fn):
        self._ensure(flow, s)
        return fn(s)

    def _ensure(self, flow, s):
        """Create the flow on a sensor (at its creation, or later on one that was not
        reachable then): its functions and connect in one request."""
        if s.fd is not None or flow.closed:
            return
        entries = [(fid, e) for fid, e in enumerate(flow.functions, 1)
                   if not isinstance(e, CombinedThreshold)]
        steps = [dict(name=name, args=list(self._refs(s, args)), kwargs=self._refs(s, kwargs))
                 for _, (name, args, kwargs, _) in entries]
        fd, fids = s.client.create_flow_with(s.dev, steps, flow.connected, **flow.options)
        s.fids.update(zip((fid for fid, _ in entries), fids))
        s.fd = fd

    @staticmethod
    def _raise_errors(flow, failed, what):
        """Errors other than a sensor being away are the caller's: raise them, naming sensors.
        Sensors away are named in the log (and in results, get_flow_info: missing)."""
        away = sorted(n for n, e in failed.items() if isinstance(e, MapiError) and e.code in GONE)
        if away and len(away) < len(flow.sensors):
            log.warning("flow %d: %s without sensor(s) %s (not answering; set up there when "
                        "they come back)", flow.fd, what, ", ".join(away))
        bad = {n: e for n, e in failed.items() if not (isinstance(e, MapiError) and e.code in GONE)}
        if bad:
            name, exc = next(iter(bad.items()))
            if not isinstance(exc, MapiError):
                raise exc
            raise MapiError(exc.code, "%s on sensor %s: %s" % (what, name, exc),
                            sensor=name, **exc.where)
        if failed and len(failed) == len(flow.sensors):
            raise MapiError(ESERVER, "%s: no sensor answered (%s)" % (
                what, "; ".join("%s: %s" % kv for kv in failed.items())), argument="fd")

    def _refs(self, s, value):
        """(fd, fid) references to distributed flows as the sensor's own."""
        if isinstance(value, dict):
            return {k: self._refs(s, v) for k, v in value.items()}
        is_ref = isinstance(value, (tuple, list)) and len(value) == 2 and \
            isinstance(value[0], int) and value[0] in self.flows
        if isinstance(value, (tuple, list)) and not is_ref:
            return type(value)(self._refs(s, v) for v in value) if isinstance(value, tuple) else \
                [self._refs(s, v) for v in value]
        if isinstance(value, (tuple, list)):
            target = next((t for t in self.flows[value[0]].sensors if t.name == s.name), None)
            if target is None or target.fd is None:
                raise MapiError(EBADARG, "flow %d has no sensor %s (or not yet)" % (value[0], s.name),
                                argument="ref")
            return (target.fd, target.fids.get(value[1], value[1]))
        return value

    # --- flows --------------------------------------------------------------------------------
    def create_flow(self, scope, ca=None, cert=None, key=None, deadline=None, token=None,
                    **options):
        flow = self._new_flow(scope, ca, cert, key, deadline, token, options)
        return self._set_up(flow, "create_flow")

    def create_flow_with(self, scope, functions=(), connect=True, ca=None, cert=None, key=None,
                         deadline=None, token=None, **options):
        """The flow with its functions (and connected) on every sensor at once, one
        create_flow_with request each (mapi.flow_with): (fd, [fid, ...]).  With a THRESHOLD
        (combined here, over the sensors' values) the steps are made as separate calls."""
        steps = flow_with.steps_of(functions)
        flow = self._new_flow(scope, ca, cert, key, deadline, token, options)
        for i, (name, args, kwargs) in enumerate(steps):
            try:
                desc = self._describe(flow, name)
            except MapiError as exc:
                raise flow_with.failed(exc, flow_with.step_name(i, len(steps), name),
                                       closed=False) from None
            if desc["result"] == "events":
                self._drop_idle_clients()
                return flow_with.one_by_one(self, scope, functions, connect, dict(
                    options, ca=ca, cert=cert, key=key, deadline=deadline, token=token))
            widen = PARTIAL_ARGS.get(name)
            sargs, skwargs, hints = widen(args, kwargs) if widen else (tuple(args), dict(kwargs),
                                                                       None)
            flow.functions.append((name, sargs, skwargs, hints))
        flow.connected = bool(connect)
        return self._set_up(flow, "create_flow_with"), list(range(1, len(steps) + 1))

    def _describe(self, flow, name):
        """describe_function from the first sensor that answers."""
        if not isinstance(name, str):
            raise MapiError(EBADARG, "function name must be a string, not %r" % (name,),
                            argument="name")
        error = None
        for s in flow.sensors:
            try:
                return s.client.describe_function(name)
            except MapiError as exc:
                if exc.code not in GONE:
                    raise
                error = error or exc
        raise error

    def _new_flow(self, scope, ca, cert, key, deadline, token, options):
        """A DFlow over the scope's sensors (their clients made or shared), made nowhere yet."""
        tls = TLSConfig(ca, cert, key, deadline)
        token = read_token(token) if token else None
        sensors = []
        for name, url, dev in parse_scope(scope):
            with self.lock:
                client = self.clients.get((url, tls.key_tuple(), token))
                if client is None:
                    client = self.clients[(url, tls.key_tuple(), token)] = GrpcMapi(
                        url, tls=tls, token=token)
            sensors.append(Sensor(name, client, dev))
        if not sensors:
            raise MapiError(EBADARG, "an empty scope %r" % (scope,), argument="dev")
        return DFlow(next(self._fds), scope, sensors, options)

    def _set_up(self, flow, what):
        """Make `flow` on every sensor that answers (_ensure); its descriptor."""
        sensors = flow.sensors
        ok, failed = self._fan(flow, lambda s: s.fd)
        try:
            self._raise_errors(flow, failed, what)
        except MapiError:
            for s in sensors:
                if s.fd is not None:
                    try:
                        s.client.close_flow(s.fd)
                    except MapiError:
                        pass
            self._drop_idle_clients()
            raise
        with self.lock:
            self.flows[flow.fd] = flow
            self._start_reviver()
        return flow.fd

    def _flow(self, fd, want=None):
        with self.lock:
            flow = self.flows.get(fd)
        if flow is None:
            raise MapiError(ENOFLOW, "no distributed flow with descriptor %r" % (fd,), argument="fd")
        if flow.closed:
            raise MapiError(ECLOSED, "flow %d is closed" % fd, argument="fd")
        return flow

    def _entry(self, flow, fid):
        if not isinstance(fid, int) or not 0 < fid <= len(flow.functions):
            raise MapiError(ENOFUNC, "flow %d has no function %r" % (flow.fd, fid), argument="fid")
        return flow.functions[fid - 1]

    def apply_function(self, fd, name, *args, **kwargs):
        flow = self._flow(fd)
        if flow.connected:
            raise MapiError(EBADARG, "flow %d is already connected: apply every function before "
                            "mapi.connect()" % fd, argument="fd")
        fid = len(flow.functions) + 1
        desc = flow.sensors[0].client.describe_function(name) if isinstance(name, str) else None
        if desc is not None and desc["result"] == "events":
            if len(args) > 1 and isinstance(args[1], (tuple, list)):
                ref = tuple(args[1])
            else:
                ref = tuple(kwargs.get("ref", (None, None)))
            if ref[0] not in self.flows:
                raise MapiError(EBADARG, "%s on a distributed flow watches a function of a "
                                "distributed flow, not %r" % (name, ref), argument="ref")
            th = CombinedThreshold(fd, fid, lambda: self.read_results(*ref), args, kwargs)
            flow.functions.append(th)
            return fid
        widen = PARTIAL_ARGS.get(name)
        sargs, skwargs, hints = widen(args, kwargs) if widen else (tuple(args), dict(kwargs), None)
        ok, failed = self._fan(flow, lambda s: None if s.fd is None else s.client.apply_function(
            s.fd, name, *self._refs(s, sargs), **self._refs(s, skwargs)))
        self._raise_errors(flow, failed, "apply_function(%s)" % name)
        for s in flow.sensors:
            if ok.get(s.name) is not None:
                s.fids[fid] = ok[s.name]
        flow.functions.append((name, sargs, skwargs, hints))
        return fid

    def connect(self, fd):
        flow = self._flow(fd)
        ok, failed = self._fan(flow, lambda s: s.client.connect(s.fd) if s.fd is not None else 0)
        self._raise_errors(flow, failed, "connect")
        flow.connected = True
        for entry in flow.functions:
            if isinstance(entry, CombinedThreshold):
                entry.start()
        return 0

    def read_results(self, fd, fid):
        flow = self._flow(fd)
        entry = self._entry(flow, fid)
        if isinstance(entry, CombinedThreshold):
            return DistributedResult(*entry.result())
        hints = entry[3]
        ok, failed = self._fan(flow, lambda s: s.client.read_results(s.fd, s.fids.get(fid, fid)))
        self._raise_errors(flow, failed, "read_results")
        per = {s.name: ok.get(s.name) for s in flow.sensors}
        value = combine([r.value for r in per.values() if r is not None], hints)
        r = DistributedResult(value, max((x.ts or 0 for x in per.values() if x is not None), default=0))
        r.sensors = {n: (Result(cut(x.value, hints), x.ts) if x is not None else None)
                     for n, x in per.items()}
        r.missing = {s.name: s.since() for s in flow.sensors if s.name in failed}
        r.partial = bool(r.missing)
        r.restarted = {s.name: s.client.restarted(s.fd) for s in flow.sensors
                       if s.fd is not None and s.client.restarted(s.fd)}
        return r

    def close_flow(self, fd):
        flow = self._flow(fd)
        flow.closed = True
        for entry in flow.functions:
            if isinstance(entry, CombinedThreshold):
                entry.stop()
        ok, failed = self._fan(flow, lambda s: s.client.close_flow(s.fd) if s.fd is not None else 0)
        with self.lock:
            self.flows.pop(fd, None)
        self._drop_idle_clients()
        return 0

    def _drop_idle_clients(self):
        """Servers no flow uses any more: their sessions close and nothing reconnects there."""
        with self.lock:
            used = {id(s.client) for f in self.flows.values() for s in f.sensors}
            idle = [(k, c) for k, c in self.clients.items() if id(c) not in used]
            for k, _ in idle:
                del self.clients[k]
        for _, c in idle:
            c.close()

    def get_flow_info(self, fd):
        flow = self._flow(fd)
        ok, failed = self._fan(flow, lambda s: s.client.get_flow_info(s.fd) if s.fd is not None
                               else None)
        return dict(fd=fd, device=flow.scope, status="connected" if flow.connected else "open",
                    sensors={s.name: ok.get(s.name) for s in flow.sensors},
                    missing={s.name: s.since() for s in flow.sensors if s.name in failed},
                    functions=[dict(fid=i, name=e.info()["name"] if isinstance(e, CombinedThreshold)
                                    else e[0]) for i, e in enumerate(flow.functions, 1)])

    def get_function_info(self, fd, fid):
        flow = self._flow(fd)
        entry = self._entry(flow, fid)
        if isinstance(entry, CombinedThreshold):
            return dict(entry.info(), fid=fid)
        ok, failed = self._fan(flow, lambda s: s.client.get_function_info(s.fd, s.fids.get(fid, fid)))
        return dict(fid=fid, name=entry[0], sensors=ok,
                    missing={s.name: s.since() for s in flow.sensors if s.name in failed})

    # --- packets and events -----------------------------------------------------------------
    def _merger(self, fd, fid):
        flow = self._flow(fd)
        with self.lock:
            m = flow.mergers.get(fid)
            if m is None:
                def source(s):
                    return lambda: (s.client.function_instance(s.fd, s.fids.get(fid, fid))
                                    if s.fd is not None and s.client.alive() else None)
                m = flow.mergers[fid] = MergedPackets({s.name: source(s) for s in flow.sensors})
            return m

    def _packet_reader(self, fd, fid):
        return self._merger(fd, fid)            # get_next_pkt and loop (PacketCalls) read it

    def _threshold(self, fd, fid):
        entry = self._entry(self._flow(fd), fid)
        if not isinstance(entry, CombinedThreshold):
            raise MapiError(EBADARG, "function %d of flow %d delivers no events" % (fid, fd),
                            argument="fid")
        return entry

    def set_event_callback(self, fd, fid, fn):
        self._threshold(fd, fid).queue.set_callback(fn)
        return 0

    def get_next_event(self, fd, fid, timeout=None):
        return self._threshold(fd, fid).queue.get(timeout)

    # --- sensors that come back ---------------------------------------------------------------
    def _start_reviver(self):
        if self._reviver is None:
            self._reviver = threading.Thread(target=self._revive, daemon=True,
                                             name="mapi-scope-revive")
            self._reviver.start()

    def _revive(self):
        """Reconnect sensors that went away (their flows are re-created by their client) and
        create flows on sensors that were away when the flow was made."""
        while True:
            time.sleep(REVIVE)
            with self.lock:
                flows = list(self.flows.values())
                clients = {id(s.client): s.client for f in flows for s in f.sensors}.values()
            for c in clients:
                if c.down_since is not None or (c._session is not None and not c.alive()):
                    try:
                        c.session()
                    except MapiError:
                        pass
            for flow in flows:
                pending = [s for s in flow.sensors if s.fd is None]
                if pending:
                    self._fan(flow, lambda s: None, pending)


FLOWS = Distributed()
