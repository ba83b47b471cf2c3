"""`mapi explain -r FILE FLOW...`: the device's global graph after (or before) the replay."""
import argparse

import mapi

from ..flowspec import FLOW_SYNTAX
from ..job import run_job
from ..output import jsonable, write_json
from . import add_trace_arguments


def handle(args):
    def report(job):
        if args.json:
            write_json(mapi.explain_data(job.dev), default=jsonable)
        else:
            print(mapi.explain(job.dev))
    return run_job(args, not args.no_run, report)


def add_parser(sub, name, help):
    p = sub.add_parser(name, help=help,
                       description="Set up the flows like 'mapi run', replay the file, and print "
                       "the device's global monitoring graph: shared nodes and their owners, "
                       "where each node runs (hardware unit or software), cost class and "
                       "packets in and out.", epilog=FLOW_SYNTAX,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_trace_arguments(p, "the graph as JSON")
    p.add_argument("--no-run", action="store_true", help="show the graph before any packet")
    p.set_defaults(handler=handle)
