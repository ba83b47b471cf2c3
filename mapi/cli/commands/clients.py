"""`mapi clients`: who is connected to the MAPI server (mapid), their flows, packets and drops.

Needs a server: `mapi --server unix:/run/scampi/mapid.sock clients` or MAPI_SERVER.  A client
other than root sees every client but only its own flows' details (the server decides)."""
import time

import mapi
from mapi.client import installed
from mapi.errors import MapiError, ENOTSUP

from ..output import EXIT_OK, jsonable, write_json
from . import add_json_argument


def clients_report():
    if installed() is None:
        raise MapiError(ENOTSUP, "mapi clients lists the clients of a MAPI server: name it with "
                        "mapi --server unix:PATH clients, or set MAPI_SERVER", argument="--server")
    return mapi.clients()


def _age(since):
    s = max(0, int(time.time() - since))
    return "%dh%02dm" % (s // 3600, s // 60 % 60) if s >= 3600 else "%dm%02ds" % (s // 60, s % 60)


def handle(args):
    rep = clients_report()
    if args.json:
        write_json(jsonable(rep))
        return EXIT_OK
    print("%-7s %-7s %-6s %-16s %-8s %5s %12s %10s %12s" % (
        "CLIENT", "PID", "UID", "PROGRAM", "SINCE", "FLOWS", "PACKETS", "DROPS", "BUFFERED B"))
    for c in rep:
        print("%-7d %-7d %-6d %-16s %-8s %5d %12d %10d %12d" % (
            c["client"], c["pid"], c["uid"], c["program"][:16], _age(c["since"]), len(c["flows"]),
            c["packets"], c["drops"], c["buffer_bytes"]))
        if args.flows:
            for f in c["flows"]:
                print("        flow %d on %s (%s): %s; in %d, out %d, buffered %d, drops %d" % (
                    f["fd"], f["device"], f["status"], " ".join(f["functions"]),
                    f["packets_in"], f["packets_out"], f["buffered"], f["drops"]))
    print("%d client%s connected" % (len(rep), "" if len(rep) == 1 else "s"))
    return EXIT_OK


def add_parser(sub, name, help):
    p = sub.add_parser(name, help=help, description=__doc__.split("\n\n")[0])
    p.add_argument("-f", "--flows", action="store_true", help="one line per flow under its client")
    add_json_argument(p, "the list of clients as JSON (their flows included)")
    p.set_defaults(handler=handle)
