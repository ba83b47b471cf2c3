"""`mapi explain -r FILE FLOW...`: the device's global graph after (or before) the replay; with a
MAPI server, `mapi explain --device NAME` shows a device of the server with every client's nodes."""
import argparse

import mapi
from mapi.client import installed

from ..flowspec import FLOW_SYNTAX, SpecError
from ..job import run_job
from ..output import EXIT_OK, jsonable, write_json
from . import add_trace_arguments


def handle(args):
    if args.device is not None:
        return explain_server_device(args)
    if not args.read:
        raise SpecError(None, None, "give a trace file (-r FILE), or with a MAPI server a device "
                        "it runs (--device NAME)")

    def report(job):
        if args.json:
            write_json(mapi.explain_data(job.dev), default=jsonable)
        else:
            print(mapi.explain(job.dev))
    return run_job(args, not args.no_run, report)


def explain_server_device(args):
    """--device: the graph of a device of the MAPI server as it is now, every node with its
    owners as clients (pid, uid, program); no flow is added."""
    if args.read or args.flows:
        raise SpecError(None, None, "--device shows a device of the server as it is: give no "
                        "-r FILE and no flows with it")
    if installed() is None:
        raise mapi.MapiError(mapi.ENOTSUP, "--device explains a device of a MAPI server: name "
                             "the server with mapi --server unix:PATH, or set MAPI_SERVER",
                             argument="--device")
    if args.json:
        write_json(mapi.explain_data(args.device), default=jsonable)
    else:
        print(mapi.explain(args.device))
    return EXIT_OK


def add_parser(sub, name, help):
    p = sub.add_parser(name, help=help,
                       description="Set up the flows like 'mapi run', replay the file, and print "
                       "the device's global monitoring graph: shared nodes and their owners, "
                       "where each node runs (hardware unit or software), cost class and "
                       "packets in and out.", epilog=FLOW_SYNTAX,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_trace_arguments(p, "the graph as JSON", required=False)
    p.add_argument("--device", metavar="NAME",
                   help="with a MAPI server (--server, MAPI_SERVER): show the graph of its device "
                   "NAME (offered, live, or one of yours) with every client's nodes, adding no flow")
    p.add_argument("--no-run", action="store_true", help="show the graph before any packet")
    p.set_defaults(handler=handle)
