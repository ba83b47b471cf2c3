"""`mapi run -r FILE FLOW...`: run flows over a trace and print every function's result."""
import argparse
import sys

from ..flowspec import FLOW_SYNTAX
from ..job import run_job
from ..output import print_table, write_json
from . import add_trace_arguments


def handle(args):
    def report(job):
        results = job.results()
        if args.json:
            write_json(results)
        else:
            print_table(results, sys.stdout)
    return run_job(args, True, report)


def add_parser(sub, name, help):
    p = sub.add_parser(name, help=help,
                       description="Run one or more MAPI flows over an offline trace and print "
                       "every function's result.", epilog=FLOW_SYNTAX,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_trace_arguments(p, "print the results as JSON")
    p.set_defaults(handler=handle)
