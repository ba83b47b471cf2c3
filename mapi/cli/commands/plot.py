"""`mapi plot -o FILE.png -r FILE|-i DEVICE [FLOW... | FILTER WORDS]`: `mapi run --interval
--plot`: packets, bytes and rates per interval of each flow drawn into a PNG (matplotlib)."""
import argparse

from ..flowspec import FLOW_SYNTAX
from . import run


def handle(args):
    args.plot = args.output
    if args.interval is None:
        args.interval = "1s"
    return run.handle(args)


def add_parser(sub, name, help):
    p = sub.add_parser(name, help=help,
                       description="Run flows like 'mapi run --interval' and draw packets, bytes "
                       "and rates per interval of each flow into a PNG (needs matplotlib: pip "
                       "install 'scampi[plot]').", epilog=run.RUN_EPILOG + FLOW_SYNTAX,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-o", "--output", required=True, metavar="PNG", help="the picture to write")
    run.add_run_arguments(p, default_interval="1s")
    p.set_defaults(handler=handle)
