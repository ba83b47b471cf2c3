"""mapi-admin: the administrator's and the token holder's tool for mapid's job control.

    mapi-admin keygen -o /etc/scampi                    root key pair (root.key, root.pub)
    mapi-admin issue --key root.key --principal alice --device eth0 --class filter \\
        --class counter --filter 'net 10.1.0.0/16' --flows 4 --expires 30d -o alice.token
    mapi-admin attenuate @alice.token --filter 'tcp port 80' --flows 1 -o bob.token   (offline)
    mapi-admin inspect @bob.token [--key root.pub]      blocks, ids, rights
    mapi-admin revoke ID [--db PATH]                    revoke a block id (mapid sees it at once)
    mapi-admin reservations | audit | principals | capacity [--db PATH] [--json]
    mapi-admin certs ca|server|client DIR ...           a CA and certificates for mapid --listen

The database commands read mapid's resource database (--db, or --config mapid.toml's
jobcontrol.database, default /var/lib/scampi/mapid.db)."""
import argparse
import json
import sys

from mapi.errors import MapiError

from .dbcmds import add_db_commands
from .tokencmds import add_token_commands


def parser():
    p = argparse.ArgumentParser(prog="mapi-admin", description="Credentials (Biscuit tokens) "
                                "and the resource database of mapid's job control.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_token_commands(sub)
    add_db_commands(sub)
    certs = sub.add_parser("certs", add_help=False, help="make a CA and server/client "
                           "certificates for mapid --listen (mutual TLS)")
    certs.add_argument("rest", nargs=argparse.REMAINDER)
    certs.set_defaults(run=lambda args: _certs(args.rest))
    return p


def _certs(argv):
    from . import certs           # needs cryptography: loaded only for this command
    code = certs.main(argv)
    if code:
        raise SystemExit(code)


def main(argv=None):
    args = parser().parse_args(argv)
    try:
        out = args.run(args)
    except MapiError as exc:
        print("mapi-admin: %s" % exc, file=sys.stderr)
        return 2
    if out is not None:
        if getattr(args, "json", False):
            print(json.dumps(out, indent=1, default=str))
        elif isinstance(out, str):
            print(out)
    return 0
