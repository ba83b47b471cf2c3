"""mapid's [jobcontrol] configuration (a table of mapid.toml; every key optional).

    [jobcontrol]
    root_public_key = "ed25519/6f83...10"    # or root_public_key_file = "/etc/scampi/root.pub"
    database = "/var/lib/scampi/mapid.db"
    revoked = ["a622d6ec74e2b71a..."]         # token block ids (mapi-admin inspect shows them)
    code_dir = "/var/lib/scampi/code"         # where plain libraries are written before import
    costs = { free = 0.5, low = 10, high = 30 }   # ns/packet; default: measured at start

    [jobcontrol.sandbox]                      # limits of sandboxed (wasm) functions
    memory = 16777216                         # bytes of linear memory per applied function
    fuel_base = 1000000                       # instructions per call, plus
    fuel_per_packet = 20000                   # instructions per packet of the batch

    [jobcontrol.grants]                       # what a client without a token may do, by uid
    "0" = "all"                               # root (the default)
    "1000" = { devices = ["eth0"], classes = ["filter", "counter"], filter = "net 10.1.0.0/16",
               limits = { flows = 4, functions_per_flow = 8 } }
    "*" = "none"                              # every other uid (the default)

    [jobcontrol.capacity]                     # admission: CPU per device
    cpu_budget = 1.0                          # CPU seconds per second (1.0 = one core)
    packet_rate = 1000000                     # assumed when not measured (offline replays)
    [jobcontrol.capacity.devices.eth0]
    cpu_budget = 0.5
    packet_rate = 2000000
"""
import os

from .tokens import CLASSES, LOAD_KINDS, QUOTAS

DEFAULTS = dict(root_public_key="", root_public_key_file="", database="/var/lib/scampi/mapid.db",
                revoked=[], code_dir="", costs={}, sandbox={}, grants={}, capacity={})
GRANT_KEYS = {"devices", "functions", "classes", "load", "filter", "limits"}
SANDBOX_KEYS = {"memory", "fuel_base", "fuel_per_packet"}
CAPACITY_KEYS = {"cpu_budget", "packet_rate", "devices"}


class JobConfigError(Exception):
    pass


def load(section, path=None):
    """The [jobcontrol] table checked and completed with defaults."""
    where = "%s: jobcontrol" % (path or "config")
    section = dict(section or {})
    unknown = sorted(set(section) - set(DEFAULTS))
    if unknown:
        raise JobConfigError("%s: unknown setting(s) %s (known: %s)"
                             % (where, ", ".join(unknown), ", ".join(sorted(DEFAULTS))))
    cfg = dict(DEFAULTS)
    cfg.update(section)
    if cfg["root_public_key_file"] and not cfg["root_public_key"]:
        try:
            with open(cfg["root_public_key_file"]) as f:
                cfg["root_public_key"] = f.read().strip()
        except OSError as exc:
            raise JobConfigError("%s.root_public_key_file: cannot read %s: %s"
                                 % (where, cfg["root_public_key_file"], exc.strerror)) from None
    if cfg["root_public_key"]:
        from .tokens import public_key
        try:
            public_key(cfg["root_public_key"])
        except Exception as exc:
            raise JobConfigError("%s.root_public_key: %s" % (where, exc)) from None
    if not isinstance(cfg["revoked"], list) or not all(
            isinstance(i, str) and len(i) >= 16 and all(c in "0123456789abcdefABCDEF" for c in i)
            for i in cfg["revoked"]):
        raise JobConfigError("%s.revoked must be a list of token block ids (hex, at least 16 "
                             "digits: mapi-admin inspect shows them)" % where)
    cfg["database"] = os.path.abspath(os.path.expanduser(str(cfg["database"])))
    _check_table(cfg["sandbox"], SANDBOX_KEYS, where + ".sandbox", numbers=True)
    _check_table(cfg["capacity"], CAPACITY_KEYS, where + ".capacity")
    for name, spec in cfg["capacity"].get("devices", {}).items():
        _check_table(spec, {"cpu_budget", "packet_rate"}, where + ".capacity.devices." + name,
                     numbers=True)
    for cls, ns in cfg["costs"].items():
        if not isinstance(ns, (int, float)) or ns < 0:
            raise JobConfigError("%s.costs.%s must be ns per packet >= 0" % (where, cls))
    grants = {}
    for uid, grant in cfg["grants"].items():
        grants[uid] = check_grant(grant, "%s.grants.%s" % (where, uid))
        if uid != "*" and not uid.isdigit():
            raise JobConfigError("%s.grants: key %r must be a uid (\"1000\") or \"*\"" % (where, uid))
    grants.setdefault("0", "all")
    cfg["grants"] = grants
    return cfg


def check_grant(grant, where):
    if grant in ("all", "none"):
        return grant
    if not isinstance(grant, dict):
        raise JobConfigError("%s must be \"all\", \"none\" or a table of rights" % where)
    bad = sorted(set(grant) - GRANT_KEYS)
    if bad:
        raise JobConfigError("%s: unknown key(s) %s (known: %s)" % (where, ", ".join(bad),
                             ", ".join(sorted(GRANT_KEYS))))
    classes = set(grant.get("classes", ())) - set(CLASSES) - {"*"}
    if classes:
        raise JobConfigError("%s.classes: unknown %s (classes: %s)" % (where, ", ".join(
            sorted(classes)), ", ".join(CLASSES)))
    if set(grant.get("load", ())) - set(LOAD_KINDS):
        raise JobConfigError("%s.load: kinds are %s" % (where, ", ".join(LOAD_KINDS)))
    for q, n in grant.get("limits", {}).items():
        if q not in QUOTAS or isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise JobConfigError("%s.limits.%s: limits are %s, whole numbers >= 0"
                                 % (where, q, ", ".join(QUOTAS)))
    return dict(grant)


def _check_table(table, keys, where, numbers=False):
    if not isinstance(table, dict):
        raise JobConfigError("%s must be a table" % where)
    bad = sorted(set(table) - keys)
    if bad:
        raise JobConfigError("%s: unknown key(s) %s (known: %s)" % (where, ", ".join(bad),
                             ", ".join(sorted(keys))))
    if numbers:
        for k, v in table.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                raise JobConfigError("%s.%s must be a number >= 0, not %r" % (where, k, v))
