"""`mapi demo`: several concurrent MAPI flows over a generated trace, and a report (mapi.demo)."""
import argparse


def handle(args):
    from mapi import demo
    argv = ["--packets", str(args.packets), "--seed", str(args.seed)]
    argv += (["--dir", args.dir] if args.dir else []) + (["--json"] if args.json else [])
    return demo.main(argv)


def add_parser(sub, name, help):
    from mapi.demo import DEFAULT_PACKETS, DEFAULT_SEED
    p = sub.add_parser(name, help=help, description="Generate a trace (mapi.tracegen) and run five "
                       "flows on one device at once: web counters, sampled DNS, signatures into a "
                       "pcap, top talkers, a threshold event.",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--packets", type=int, default=DEFAULT_PACKETS, help="trace length")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="generator seed")
    p.add_argument("--dir", help="where the trace and the match pcap go ($SCAMPI_DEMO_DIR, "
                   "build/demo in a checkout, else a temporary directory)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(handler=handle)
