"""mapi-admin revoke, reservations, audit, principals, capacity: mapid's resource database."""
import datetime
import json
import time

from mapi.jobcontrol import resourcedb


def add_db_commands(sub):
    def db_parser(name, help, run):
        p = sub.add_parser(name, help=help)
        p.add_argument("--db", help="the resource database (default: the config's, else %s)"
                       % resourcedb.DEFAULT_PATH)
        p.add_argument("--config", help="mapid's config (its jobcontrol.database)")
        p.add_argument("--json", action="store_true")
        p.set_defaults(run=run)
        return p

    p = db_parser("revoke", "revoke a token block id (every token derived from it)", revoke)
    p.add_argument("id", help="a block id (mapi-admin inspect); at least 16 hex digits")
    p.add_argument("--note", default="")
    db_parser("reservations", "what the clients hold now, with dependencies", show_reservations)
    p = db_parser("audit", "the authorisation decisions, newest last", show_audit)
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--principal")
    p.add_argument("--refused", action="store_true", help="refusals only")
    db_parser("principals", "principals mapid has seen", show_principals)
    db_parser("capacity", "the calibrated cost classes (ns per packet)", show_capacity)


def _path(args):
    if args.db:
        return args.db
    if args.config:
        from mapi.server.config import load
        return load(args.config)["jobcontrol"]["database"]
    return resourcedb.DEFAULT_PATH


def _open(args, readonly=True):
    return resourcedb.connect(_path(args), readonly=readonly)


def revoke(args):
    from mapi.errors import MapiError, EBADARG
    rid = args.id.strip().lower()
    if len(rid) < 16 or any(c not in "0123456789abcdef" for c in rid):
        raise MapiError(EBADARG, "a block id is hex, at least 16 digits: %r" % args.id,
                        argument="id")
    db = _open(args, readonly=False)
    ids = [rid]
    db.execute("INSERT OR IGNORE INTO revocations VALUES (?, 'admin', ?, ?)",
               (rid, time.time(), args.note))
    db.close()
    return dict(revoked=ids) if args.json else "revoked %s" % ", ".join(ids)


def _when(ts):
    return datetime.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


def show_reservations(args):
    rows = resourcedb.reservations(_open(args))
    for r in rows:
        r["amounts"] = json.loads(r["amounts"] or "{}")
    if args.json:
        return rows
    lines = ["%-4s %-10s %-18s %-7s %-22s %-10s %s" % ("ID", "PRINCIPAL", "CLIENT", "KIND",
                                                       "OBJECT", "DEVICE", "AMOUNTS")]
    for r in rows:
        client = "pid %s uid %s" % (r["pid"], r["uid"])
        dep = "  (uses reservation %d)" % r["depends_on"] if r["depends_on"] else ""
        lines.append("%-4d %-10s %-18s %-7s %-22s %-10s %s%s" % (
            r["id"], r["principal"], client, r["kind"], r["object"], r["device"] or "-",
            ", ".join("%s=%s" % kv for kv in sorted(r["amounts"].items())), dep))
    return "\n".join(lines) if rows else "no reservations"


def show_audit(args):
    rows = resourcedb.audit_rows(_open(args), args.limit, args.principal,
                                 "refuse" if args.refused else None)
    if args.json:
        return rows
    return "\n".join("%s  %-6s %-12s uid %-5s %-16s %-24s %s" % (
        _when(r["ts"]), r["decision"], r["principal"], r["uid"], r["operation"], r["object"],
        r["reason"]) for r in rows) or "no decisions recorded"


def show_principals(args):
    rows = [dict(r) for r in _open(args).execute("SELECT * FROM principals ORDER BY name")]
    if args.json:
        return rows
    return "\n".join("%-12s %-6s first %s last %s  %s" % (
        r["name"], r["source"], _when(r["first_seen"]), _when(r["last_seen"]), r["rights"])
        for r in rows) or "no principals"


def show_capacity(args):
    rows = [dict(r) for r in _open(args).execute("SELECT * FROM calibration ORDER BY "
                                                 "ns_per_packet")]
    if args.json:
        return rows
    return "\n".join("%-5s %8.2f ns/packet  %s  (%s)" % (r["class"], r["ns_per_packet"],
                                                         r["function"], _when(r["measured"]))
                     for r in rows) or "not calibrated yet"
