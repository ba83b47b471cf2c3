"""`mapi collect DEVICE -w DIR`: a NetFlow/IPFIX collector that stores what it receives in
rotating files (RECORD_STORE), as nfcapd does; `mapi records` reads them."""
import argparse

from ..flowspec import SpecError
from .run import handle as run_handle, quote

EPILOG = """\
examples:
  mapi collect netflow:udp:0.0.0.0:2055 -w /var/flows            5-minute files until Ctrl-C
  mapi collect netflow:udp:[::]:4739 -w /var/flows -t 1h --interval 10s
  mapi collect -r exports.pcap -w flows/ proto tcp              captured exports, nfdump filter
  mapi records -r /var/flows -s srcip/bytes                      then read them

Files: DIR/PREFIX.YYYYmmddHHMMSS.pcap, one per interval (UTC-aligned, on the records' arrival
times); the one being written ends in .current.  Their format: docs/records.md.
"""


def spec(args):
    steps = []
    if args.filter:
        steps.append("RECORD_FILTER(%s)" % quote(" ".join(args.filter)))
    steps.append("stored=RECORD_STORE(%s, %s, %s)" % (quote(args.write), quote(args.rotate),
                                                       quote(args.prefix)))
    steps.append("RECORD_COUNTER")
    return " ".join(steps)


def handle(args):
    if args.read and args.device:          # with -r, the first word is the filter's
        args.filter, args.device = [args.device] + args.filter, None
    if bool(args.device) == bool(args.read):
        raise SpecError(None, None, "give a collector device (netflow:udp:HOST:PORT) or captured "
                        "exports (-r FILE), one of them")
    run_args = argparse.Namespace(
        interfaces=[args.device] if args.device else None, read=args.read, merge=False,
        flows=[spec(args)], format=None, json=args.json, progress=args.progress,
        backend=args.backend or (None if args.device else "netflow"), interval=args.interval,
        duration=args.duration, count=args.count, write=None, plot=None, metrics=args.metrics)
    return run_handle(run_args)


def add_parser(sub, name, help):
    p = sub.add_parser(name, help=help, description=__doc__.splitlines()[0].strip("`"),
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("device", nargs="?", metavar="DEVICE",
                   help="the collector: netflow:udp:HOST:PORT (see mapi devices)")
    p.add_argument("filter", nargs="*", metavar="FILTER",
                   help="keep only the records this nfdump filter selects (trailing words)")
    p.add_argument("-r", "--read", action="append", metavar="FILE",
                   help="captured exports (pcap/pcapng/ERF) instead of a live device")
    p.add_argument("-w", "--write", required=True, metavar="DIR", help="directory of the files")
    p.add_argument("-t", "--rotate", default="5m", metavar="TIME",
                   help="a new file every TIME, UTC-aligned (default 5m; 0: one file)")
    p.add_argument("--prefix", default="records", help="file name prefix (default: records)")
    p.add_argument("-c", "--count", type=int, metavar="COUNT", help="stop after COUNT records")
    p.add_argument("--duration", metavar="TIME", help="stop after TIME (wall clock live)")
    p.add_argument("--interval", metavar="TIME", help="print the records per interval")
    p.add_argument("--metrics", metavar="HOST:PORT", help="Prometheus metrics while collecting")
    p.add_argument("--backend", metavar="NAME", help="backend of -r files (default: netflow)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--progress", choices=("auto", "always", "never"), default="auto",
                   help="progress bar on stderr for -r files")
    p.set_defaults(handler=handle)
