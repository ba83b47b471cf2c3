"""The job-control layer of mapid: every call of every client passes through JobControl.call
(one hook in the session's dispatch, whatever the transport), which authorises it against the
connection's credentials, applies the quotas and the device's capacity, runs it, and records
what it reserved and the decision in the resource database.  authenticate and load_library are
answered here."""
import logging
import threading
import time

from mapi import api
from mapi.arguments import bind_args
from mapi.errors import MapiError, EBADARG, ELIMIT, EPERM
from mapi.proto import pb
from mapi.proto.values import to_value
from mapi.registry import get_registry

from . import policy, tokens
from .admission import Capacity, Ledger
from .credentials import Credential, Grants
from .policy import Refusal, Request
from .resourcedb import ResourceDB
from .rights import rights_of
from .usercode import Libraries
from .wasm.runner import Limits

log = logging.getLogger("mapid.jobs")
PCAP_FILTERS = ("BPF_FILTER",)          # functions whose first argument is a pcap-filter
QUOTA_CALLS = ("create_flow", "apply_function")
# calls that change what a client holds or runs: their allowed decisions are committed before
# the answer (with the reservation the call writes, else on their own); the decisions of calls
# that only read are committed within resourcedb.AUDIT_DELAY
DURABLE_CALLS = ("create_flow", "apply_function", "connect", "close_flow", "authenticate",
                 "create_offline_device", "start_offline_device", "stop_device",
                 "delete_offline_device", "load_library")


class FlowHold:
    __slots__ = ("rid", "device", "functions", "amounts", "library")

    def __init__(self, rid, device):
        self.rid = rid
        self.device = device
        self.functions = 0                 # the client's own functions (not the prefix)
        self.amounts = {"flows": 1}
        self.library = None


class Client:
    def __init__(self, key, session, cred):
        self.key = key
        self.session = session
        self.cred = cred
        self.flows = {}                    # fd -> FlowHold
        self.libraries = {}                # library name -> reservation id


class JobControl:
    def __init__(self, cfg, engine, calibrate=True):
        self.engine = engine
        self.db = ResourceDB(cfg["database"])
        self.ledger = Ledger()
        self.clients = {}
        self.quota_lock = threading.Lock()
        self.revoked = set()
        self._data_version = None
        costs = dict(cfg["costs"])
        if not costs and calibrate:
            from .calibrate import calibrate as measure
            costs, functions = measure()
            self.db.save_calibration(costs, functions)
        elif costs:
            self.db.save_calibration(costs, {c: "configured" for c in costs})
        self.capacity = Capacity(costs or {"free": 1.0, "low": 10.0, "high": 40.0},
                                 cfg["capacity"])
        self.libraries = None
        self.configure(cfg)

    def configure(self, cfg):
        """(Re)read the settings that may change at a reload (SIGHUP)."""
        self.root_key = tokens.public_key(cfg["root_public_key"]) if cfg["root_public_key"] \
            else None
        self.grants = Grants(cfg["grants"])
        self.db.set_config_revocations(cfg["revoked"])
        self._refresh_revocations(force=True)
        self.capacity.configure(cfg["capacity"])
        limits = Limits(**cfg["sandbox"])
        if self.libraries is None:
            self.libraries = Libraries(cfg["code_dir"] or None, limits)
        self.libraries.limits = limits
        for client in list(self.clients.values()):
            if client.cred.source != "token":
                client.cred = self.grants.of(client.session)

    def close(self):
        self.db.close()

    # --- clients -----------------------------------------------------------------------------
    def _client(self, session):
        c = self.clients.get(session.id)
        if c is None:
            cred = self.grants.of(session)
            c = self.clients[session.id] = Client(self.db.client_key(session.id), session, cred)
            self.db.add_client(c.key, session.pid, session.uid, session.program, cred.principal)
        return c

    def client_gone(self, session):
        c = self.clients.pop(session.id, None)
        if c is None:
            return
        for hold in c.flows.values():
            self.ledger.remove(hold.rid)
        for name, rid in c.libraries.items():
            self.ledger.remove(rid)
            self.libraries.unload(name)
        self.db.client_gone(c.key)

    # --- the hook ----------------------------------------------------------------------------
    def call(self, session, call, msg, fds, rid, answered=True):
        """Authorise and run one call of `session` (Session.call_<call> does the work).
        answered=False: a step of a request answered later (create_flow_with), whose allowed
        decision may wait for the request's next commit (commit() at the latest)."""
        client = self._client(session)
        own = getattr(self, "_call_" + call, None)
        if own is not None:
            return own(client, msg)
        if call in QUOTA_CALLS:      # counting and reserving happen as one step
            with self.quota_lock:
                return self._run(client, session, call, msg, fds, rid, answered)
        return self._run(client, session, call, msg, fds, rid, answered)

    def commit(self):
        """Commit the decisions still queued (before a request's answer)."""
        self.db.flush()

    def _run(self, client, session, call, msg, fds, rid, answered=True):
        req, obj = self._request(client, call, msg)
        self.decide(client, req, obj)
        try:
            if call == "connect":
                with self.capacity.lock:
                    need = self._admit(client, msg.fd, req, obj)
                    result = session.call_connect(msg, fds, rid)
            else:
                result = getattr(session, "call_" + call)(msg, fds, rid)
        except MapiError as exc:
            if exc.code in (EPERM, ELIMIT) and not isinstance(exc, Refusal):
                # the engine's own refusals (ownership, descriptors, its limits)
                self._audit(client, req.op, obj, "refuse", exc.code, str(exc), sync=True)
            self._reconcile(client)
            raise
        self._audit(client, req.op, obj, "allow", 0, "")
        if call == "connect":       # its reservation's row commits the decision too
            self._hold_cpu(client, msg.fd, need)
        self._after(client, call, msg, result, req)
        if call in DURABLE_CALLS and answered:
            self.db.flush()
        return result

    def decide(self, client, req, obj):
        """Refusal (audited) unless the client's credentials allow req."""
        cred = client.cred
        try:
            self._check_revoked(cred, req)
            if not cred.rights.unrestricted:
                now = policy.now()
                policy.check_words(cred.rights, cred.label, req, now)
                policy.authorize(cred.token, req, cred.prefix_terms, now, cred.label)
        except Refusal as exc:
            self._refused(client, req.op, obj, exc)

    def _check_revoked(self, cred, req):
        if not cred.rights.ids:
            return
        self._refresh_revocations()
        for i, rid in enumerate(cred.rights.ids):
            rid = rid.lower()
            if rid in self.revoked or any(rid.startswith(r) for r in self.revoked):
                raise Refusal(EPERM, "%s: the credentials of %s are revoked (block %d, id %s)"
                              % (req.describe(), cred.label, i, tokens.short_id(rid)),
                              "revoked block %d %s" % (i, tokens.short_id(rid)), argument="token")

    def _refresh_revocations(self, force=False):
        version = self.db.data_version()
        if force or version != self._data_version:
            self._data_version = version
            self.revoked = {r.lower() for r in self.db.revocations()}

    # --- the facts of a request --------------------------------------------------------------
    def _request(self, client, call, msg):
        """(policy.Request, object text for the audit) of a call."""
        if call in policy.DEVICE_CALLS and call != "create_offline_device":
            req = Request(call, device=self._device_fact(client.session, msg.dev))
            if call == "create_flow":
                self._quota(client, req, "flows", 1)
            return req, msg.dev
        if call == "create_offline_device":
            return Request(call, device="offline"), msg.path
        if call == "apply_function":
            return self._apply_request(client, msg)
        obj = ""
        if hasattr(msg, "fd") and call != "hello":
            obj = "flow %d" % msg.fd + (" function %d" % msg.fid if hasattr(msg, "fid") else "")
        elif hasattr(msg, "dev"):
            obj = msg.dev
        return Request(call), obj

    def _apply_request(self, client, msg):
        desc = get_registry().function(msg.name)
        cls = policy.function_class(desc)
        req = Request("apply_function", function=desc.name, cls=cls)
        obj = "flow %d %s" % (msg.fd, desc.name)
        hold = client.flows.get(msg.fd)
        if hold is not None:
            lib = self.libraries.library_of(desc.name)
            if lib is not None and lib.owner and lib.owner != client.cred.principal:
                exc = Refusal(EPERM, "apply_function %s: the function belongs to library %s, "
                              "loaded by %s; only its loader may apply it"
                              % (desc.name, lib.name, lib.owner),
                              "library %s of %s" % (lib.name, lib.owner), argument="name")
                self._refused(client, req.op, obj, exc)
            self._check_outside_prefix(client, msg, desc, req, obj)
            req.requests["functions_per_flow"] = [(b, hold.functions + 1)
                                                  for b, _ in client.cred.levels]
            size = _buffer_bytes(desc, msg)
            if size:
                self._quota(client, req, "buffer_bytes", size)
        return req, obj

    def _check_outside_prefix(self, client, msg, desc, req, obj):
        """A pcap filter that, ANDed with the credentials' mandatory filter, libpcap proves to
        match nothing asks for traffic outside the prefix: refused, naming both."""
        prefix = client.cred.rights.prefix
        if not prefix or desc.name not in PCAP_FILTERS or not msg.args:
            return
        from mapi.bpf import compile_filter
        from mapi.proto.values import from_value
        expr = from_value(msg.args[0])
        if not isinstance(expr, str):
            return
        device = api._flow(msg.fd).device
        try:
            compile_filter("(%s) and (%s)" % (prefix, expr), device.linktype, device.snaplen)
        except MapiError as exc:
            if "rejects all packets" not in str(exc):
                return                             # an invalid filter: the engine says so
            try:
                compile_filter(expr, device.linktype, device.snaplen)
            except MapiError:
                return
            exc = Refusal(EPERM, "apply_function %s(%r): the filter selects only traffic outside "
                          "the mandatory filter %r of %s (libpcap finds that (%s) and (%s) "
                          "rejects every packet)" % (desc.name, expr, prefix, client.cred.label,
                                                     prefix, expr),
                          "filter %r outside prefix %r" % (expr, prefix), argument="expr")
            self._refused(client, req.op, obj, exc)

    def _quota(self, client, req, quota, amount):
        req.requests[quota] = [(b, self.ledger.usage(level, quota) + amount)
                               for b, level in client.cred.levels]

    def _device_fact(self, session, dev):
        """The name a device right must match: "offline" for the client's own trace, the
        interface of "backend:interface", else the name itself."""
        owner = self.engine.private.get(dev)
        if owner is not None and owner[0] is session:
            return "offline"
        backend, sep, rest = dev.partition(":")
        if sep and ":" not in rest and backend in get_registry().backends:
            return rest
        return dev

    # --- what a call holds ----------------------------------------------------------------------
    def _after(self, client, call, msg, result, req):
        if call == "create_flow":
            self._hold_flow(client, msg, result[0].flow.fd, req)
        elif call == "apply_function":
            self._hold_function(client, msg, result[0].function.fid, req)
        self._reconcile(client)

    def _hold_flow(self, client, msg, fd, req):
        prefix = client.cred.rights.prefix
        if prefix:
            try:
                install_prefix(self.engine, client.session, fd, prefix)
            except MapiError:
                self.engine.close_flow(client.session, fd)
                raise
        cred = client.cred
        amounts = {"flows": 1}
        rid = self.db.reserve(client.key, cred.principal, [lv for _, lv in cred.levels], "flow",
                              "flow %d" % fd, msg.dev, amounts)
        self.ledger.add(rid, [lv for _, lv in cred.levels], amounts)
        client.flows[fd] = FlowHold(rid, msg.dev)

    def _hold_function(self, client, msg, fid, req):
        hold = client.flows.get(msg.fd)
        if hold is None:
            return
        hold.functions += 1
        size = _buffer_bytes(get_registry().function(msg.name), msg)
        if size:
            hold.amounts["buffer_bytes"] = hold.amounts.get("buffer_bytes", 0) + size
        lib = self.libraries.library_of(req.function)
        if lib is not None and hold.library is None:
            hold.library = client.libraries.get(lib.name)
        hold.amounts["functions"] = hold.functions
        # the quotas count from memory at once; the database row is written once, at connect
        # (_hold_cpu), not at every function of the flow
        self.ledger.update(hold.rid, hold.amounts)

    def _update(self, hold):
        self.ledger.update(hold.rid, hold.amounts)
        self.db.update_amounts(hold.rid, hold.amounts, hold.library)

    def _admit(self, client, fd, req, obj):
        hold = client.flows.get(fd)
        if hold is None:
            return 0.0
        try:
            need, _ = self.capacity.admit(fd, hold.device)
        except Refusal as exc:
            self._refused(client, "connect", obj, exc)
        return need

    def _hold_cpu(self, client, fd, need):
        hold = client.flows.get(fd)
        if hold is not None:
            hold.amounts["cpu"] = round(need, 6)
            self._update(hold)

    def _reconcile(self, client):
        """Forget what the client no longer has (flows closed, devices deleted)."""
        for fd in [fd for fd in client.flows if fd not in client.session.flows]:
            hold = client.flows.pop(fd)
            self.ledger.remove(hold.rid)
            self.db.release(hold.rid)

    # --- calls of job control ----------------------------------------------------------------
    def _call_authenticate(self, client, msg):
        session = client.session
        obj = "token"
        try:
            if session.flows or self.engine.owned_devices(session):
                raise Refusal(EBADARG, "authenticate: present the credentials before creating "
                              "flows or devices (this connection holds %d flows)"
                              % len(session.flows), "authenticate after flows", argument="token")
            if self.root_key is None:
                raise Refusal(EPERM, "authenticate: this server accepts no tokens (its config "
                              "has no jobcontrol.root_public_key)", "no root key",
                              argument="token")
            token = tokens.decode(msg.token, self.root_key)
            cred = Credential(rights_of(token), token, source="token", uid=session.uid,
                              certificate=getattr(session, "certificate", None))
            obj = "token " + tokens.short_id(cred.rights.ids[-1])
            req = Request("authenticate")
            self._check_revoked(cred, req)
            policy.check_words(cred.rights, cred.label, req, policy.now())
            policy.authorize(token, req, cred.prefix_terms, policy.now(), cred.label)
        except tokens.TokenError as exc:
            self._audit(client, "authenticate", obj, "refuse", exc.code, str(exc), sync=True)
            raise
        except Refusal as exc:
            self._refused(client, "authenticate", obj, exc)
        client.cred = cred
        self.db.see_principal(cred.principal, "token", cred.rights.summary())
        self.db.add_client(client.key, session.pid, session.uid, session.program, cred.principal)
        self._audit(client, "authenticate", obj, "allow", 0, cred.label, sync=True)
        return pb.Reply(value=to_value(cred.summary())), ()

    def _call_load_library(self, client, msg):
        kind = msg.kind or "sandboxed"
        place = msg.place or "host"
        req = Request("load_library", function=":load", cls="code", kind=kind, place=place)
        obj = "%s library %s (%d bytes)" % (kind, msg.name or msg.filename, len(msg.code))
        with self.quota_lock:
            return self._load(client, msg, req, obj, kind, place)

    def _load(self, client, msg, req, obj, kind, place):
        self._quota(client, req, "code_bytes", len(msg.code))
        self.decide(client, req, obj)
        try:
            lib = self.libraries.load(msg.name, kind, place, msg.code, msg.filename,
                                      owner=client.cred.principal)
        except MapiError as exc:
            self._audit(client, "load_library", obj, "refuse", exc.code, str(exc), sync=True)
            raise
        cred = client.cred
        amounts = {"code_bytes": lib.size, "functions": lib.functions}
        rid = self.db.reserve(client.key, cred.principal, [lv for _, lv in cred.levels],
                              "library", lib.name, place, amounts)
        self.ledger.add(rid, [lv for _, lv in cred.levels], {"code_bytes": lib.size})
        client.libraries[lib.name] = rid
        self._audit(client, "load_library", obj, "allow", 0, ", ".join(lib.functions), sync=True)
        return pb.Reply(value=to_value(dict(library=lib.name, functions=list(lib.functions),
                                            kind=lib.kind, place=lib.place))), ()

    # --- the audit log -----------------------------------------------------------------------
    def _refused(self, client, op, obj, exc):
        """Record a refusal (committed before the client hears of it) and raise it."""
        self._audit(client, op, obj, "refuse", exc.code, exc.reason + ": " + str(exc), sync=True)
        raise exc from None

    def _audit(self, client, op, obj, decision, code, reason, sync=False):
        s = client.session
        self.db.audit((time.time(), client.key, client.cred.principal, s.uid, s.pid, op,
                       str(obj), decision, code, reason), sync=sync)


def _buffer_bytes(desc, msg):
    """Ring bytes a packet-delivering function (TO_BUFFER's size) will take."""
    if desc.result != "packets":
        return 0
    from mapi.proto.values import from_map, from_value
    try:
        values = bind_args(desc, [from_value(v) for v in msg.args], from_map(msg.kwargs))
    except MapiError:
        return 0
    names = [a.name for a in desc.args]
    return int(values[names.index("size")]) if "size" in names else 0


def install_prefix(engine, session, fd, prefix):
    """The mandatory filter as the flow's first function: a BPF_FILTER the organizer never
    moves (a barrier), so every later function sees only what it passed; it shares a node with
    any identical BPF_FILTER at the head of another flow."""
    fid = engine.apply_function(session, fd, "BPF_FILTER", [prefix], {}, {})
    entry = api._flow(fd, "open")
    f, desc, values = entry.functions[fid - 1]
    entry.functions[fid - 1] = (f, desc.replace(barrier=True), values)
    return fid
