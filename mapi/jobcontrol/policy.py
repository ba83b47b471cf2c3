"""Authorising one operation: the server's policy, run by Biscuit's authorizer over the
client's token and the facts of the request.

Facts the server states for a request (all values are parameters, never pasted text):

    time(now); operation("apply_function");
    device("eth0")                      calls naming a device ("offline": the client's own trace)
    function("TOP"); class("counter")   apply_function; load_library states function(":load"),
                                        class("code"), kind("sandboxed"|"plain"), place("host")
    prefix_applied("net 10.1.0.0/16")   each filter term the server installs in front of flows
    request("flows", i, n)              usage of a quota after the request, counted at block i

The policy allows an operation on a client's own objects (read_results, close_flow, connect...)
to any valid token, a device operation when the authority block grants the device, applying a
function when it grants the function's name or class, loading sandboxed code with class "code"
and plain code with right("load", "plain").  Every block's checks must also hold (expiry,
narrowed devices and functions, limits, filter terms), and a revoked block id refuses all.

Before Biscuit runs, the same rules are checked here against the rights read from the token,
so that a refusal says in words which right, quota or expiry it was and with what numbers; a
check only Biscuit finds (a narrowed list in a later block) is quoted from its failure."""
import datetime
import re

import biscuit_auth as bis

from mapi.errors import MapiError, ELIMIT, EPERM

from .tokens import CLASSES

UTC = datetime.timezone.utc
OWN_OBJECT_CALLS = ("hello", "authenticate", "devices", "describe_function", "read_results",
                    "get_flow_info", "get_function_info", "close_flow", "connect",
                    "check_packets", "clients", "delete_offline_device", "wait_offline_device",
                    "jobs")
DEVICE_CALLS = ("create_flow", "create_offline_device", "start_offline_device", "stats",
                "get_device_info", "explain")
POLICY = """
allow if operation($op), {own}.contains($op);
allow if operation($op), {devops}.contains($op), device($d), right("device", $d);
allow if operation($op), {devops}.contains($op), right("device", "*");
allow if operation("apply_function"), function($f), right("function", $f);
allow if operation("apply_function"), class($c), right("class", $c);
allow if operation("apply_function"), right("class", "*");
allow if operation("load_library"), kind("sandboxed"), right("class", "code");
allow if operation("load_library"), kind("sandboxed"), right("class", "*");
allow if operation("load_library"), kind("plain"), right("load", "plain");
deny if true;
"""
MAX_TIME = datetime.timedelta(milliseconds=250)
FAILED = re.compile(r"Check n°(\d+) in block n°(\d+): (.*?)(?=, Check n°|$)")


class Refusal(MapiError):
    """An operation the credentials do not allow (EPERM) or a quota/capacity it would exceed
    (ELIMIT); `reason` is the short form kept in the audit log."""

    def __init__(self, code, message, reason, **where):
        super().__init__(code, message, **where)
        self.reason = reason


def function_class(desc):
    """A function's class, from what its descriptor declares: packets it hands to the client
    (TO_BUFFER), a file or socket it writes (TO_FILE, FLOW_REPORT: an argument of type "w" or a
    result "file", or a destination argument), a filter, or else a counter/statistic."""
    if getattr(desc, "plugin", "").startswith("usercode:"):
        return "code"
    if desc.result == "packets":
        return "packets"
    if desc.result == "file" or any(a.type in ("w", "d") or a.name == "destination"
                                    for a in desc.args):
        return "export"
    if desc.filters:
        return "filter"
    return "counter"


class Request:
    """One operation to authorise: its facts and the quota amounts it would reach."""

    def __init__(self, op, device=None, function=None, cls=None, kind=None, place=None):
        self.op = op
        self.device = device
        self.function = function
        self.cls = cls
        self.kind = kind
        self.place = place
        self.requests = {}        # quota -> [(block, amount after, limit's label)]

    def describe(self):
        parts = [self.op]
        if self.function:
            parts.append(self.function)
        if self.device:
            parts.append("on %s" % self.device)
        if self.kind:
            parts.append("%s code" % self.kind)
        return " ".join(parts)

    def datalog(self, now, prefixes):
        params = {"now": now, "op": self.op}
        code = ["time({now});", "operation({op});"]
        for name, value in (("device", self.device), ("function", self.function),
                            ("class", self.cls), ("kind", self.kind), ("place", self.place)):
            if value is not None:
                params["v_" + name] = value
                code.append("%s({v_%s});" % (name, name))
        for i, term in enumerate(prefixes):
            params["pre%d" % i] = term
            code.append("prefix_applied({pre%d});" % i)
        k = 0
        for quota, levels in self.requests.items():
            for block, amount in levels:
                params["rq%d" % k], params["rn%d" % k] = quota, amount
                code.append("request({rq%d}, %d, {rn%d});" % (k, block, k))
                k += 1
        params["own"] = set(OWN_OBJECT_CALLS)
        params["devops"] = set(DEVICE_CALLS)
        return "\n".join(code) + POLICY, params


def check_words(rights, label, req, now):
    """The refusals that can be said in words from the token's rights (before Biscuit)."""
    if rights.expires is not None and now > rights.expires:
        raise Refusal(EPERM, "%s: the credentials of %s expired at %s (now %s)"
                      % (req.describe(), label, _ts(rights.expires), _ts(now)), "expired",
                      argument="token")
    for quota, levels in req.requests.items():
        for block, amount in levels:
            for b, limit in rights.limits.get(quota, ()):
                if b == block and amount > limit:
                    raise Refusal(ELIMIT, "%s: quota %s of %s exceeded: this request would make "
                                  "it %d, the %s allows %d" % (req.describe(), quota, label, amount,
                                                               _which(b), limit),
                                  "quota %s %d > %d (block %d)" % (quota, amount, limit, b),
                                  argument=quota)
    if req.op in DEVICE_CALLS and req.device is not None:
        if "*" not in rights.devices and req.device not in rights.devices:
            raise Refusal(EPERM, "%s: %s may not use device %s (granted: %s)"
                          % (req.describe(), label, req.device, _list(rights.devices)),
                          "device %s not granted" % req.device, argument="dev")
    if req.op == "apply_function":
        if not ({"*", req.cls} & rights.classes or req.function in rights.functions):
            raise Refusal(EPERM, "%s: %s may not apply %s (of class %s; granted functions: %s; "
                          "classes: %s)" % (req.describe(), label, req.function, req.cls,
                                            _list(rights.functions), _list(rights.classes)),
                          "function %s (%s) not granted" % (req.function, req.cls),
                          argument="name")
    if req.op == "load_library":
        if req.kind == "plain" and "plain" not in rights.load:
            raise Refusal(EPERM, "load_library: %s may not load plain code into the server "
                          "(only a token with right(\"load\", \"plain\") may; sandboxed code "
                          "needs class code)" % label, "plain code not granted", argument="kind")
        if req.kind == "sandboxed" and not {"*", "code"} & rights.classes:
            raise Refusal(EPERM, "load_library: %s may not load code (class code is not granted; "
                          "granted classes: %s)" % (label, _list(rights.classes)),
                          "code loading not granted", argument="kind")


def authorize(token, req, prefixes, now, label):
    """Run Biscuit's authorizer; a Refusal quoting the failed checks otherwise."""
    code, params = req.datalog(now, prefixes)
    try:
        builder = bis.AuthorizerBuilder(code, params)
        limits = builder.limits()
        limits.max_time = MAX_TIME     # the default 1 ms is too short on a busy machine
        builder.set_limits(limits)
        builder.build(token).authorize()
    except bis.AuthorizationError as exc:
        text = str(exc)
        failed = FAILED.findall(text)
        if failed:
            check, block, rule = failed[0]
            raise Refusal(_failed_code(rule), "%s: refused by block %s of the credentials of %s: "
                          "%s" % (req.describe(), block, label, _explain(rule)),
                          "block %s check %s: %s" % (block, check, rule), argument="token") from None
        if "deny policy" not in text:
            raise Refusal(EPERM, "%s: the credentials of %s could not be evaluated: %s"
                          % (req.describe(), label, text), "not evaluated: %s" % text,
                          argument="token") from None
        raise Refusal(EPERM, "%s: the credentials of %s grant no right to it" % (req.describe(),
                      label), "no policy allowed %s" % req.op, argument="token") from None


def _failed_code(rule):
    return ELIMIT if rule.startswith("reject if request(") else EPERM


# a failed check's fact -> why the request is refused (the first fact the rule names wins)
_WHY = (("request(", "a quota of that block is exceeded"),
        ("prefix_applied(", "its filter is not installed"),
        ("time(", "it has expired"),
        ("device(", "the device is outside the devices it keeps"),
        ("function(", "the function is outside the functions it keeps"),
        ("kind(", "that kind of code is excluded"))


def _explain(rule):
    for fact, why in _WHY:
        if fact in rule:
            return "%s (%s)" % (why, rule)
    return rule


def _which(block):
    return "token's authority block" if block == 0 else "token's block %d" % block


def _list(values):
    return ", ".join(sorted(values)) or "none"


def _ts(t):
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now():
    return datetime.datetime.now(tz=UTC)


__all__ = ["Refusal", "Request", "function_class", "check_words", "authorize", "now", "CLASSES"]
