"""`mapi records -r FILE|DIR [FILTER] [-s STAT[/ORDER]]`: list, filter and summarise flow records
as nfdump does: the files `mapi collect` wrote (or captured exports with --backend netflow)."""
import argparse
import os
import sys

from ..flowspec import SpecError
from ..job import run_job
from ..output import write_json
from .run import quote

EPILOG = """\
examples:
  mapi records -r /var/flows                              every record, one line each
  mapi records -r /var/flows proto tcp and dst port 443   nfdump's filter syntax
  mapi records -r /var/flows -s srcip/bytes -n 20          top 20 sources by bytes (nfdump -s)
  mapi records -r /var/flows -s dstport -s proto/packets   several statistics at once
  mapi records -r exports.pcap --backend netflow -o csv    captured exports, as CSV

STAT: srcip dstip ip srcport dstport port proto srcas dstas as inif outif if nhip nhbip router
tos srctos dsttos srcmask dstmask mask srcvlan dstvlan vlan insrcmac indstmac mpls1 odid dir,
or any RECORD_TOP field (addr.src, tcp.dport, 5tuple, conv, an IPFIX element name...).
ORDER: flows (default), packets or bytes.
"""
# nfdump's statistics over either side of a record: both sides counted
EITHER = {"ip": ("srcip", "dstip"), "port": ("srcport", "dstport"), "as": ("srcas", "dstas"),
          "if": ("inif", "outif"), "mask": ("srcmask", "dstmask"), "vlan": ("srcvlan", "dstvlan"),
          "srcmac": ("insrcmac", "postSourceMacAddress"), "dstmac": ("indstmac", "postDestinationMacAddress")}
ORDERS = {"flows": "records", "records": "records", "packets": "packets", "bytes": "bytes"}
ALL = 1 << 20


def record_files(paths):
    """Files of records: a directory gives its PREFIX.*.pcap files (the one being written last),
    in name order, which is time order."""
    out = []
    for p in paths:
        if os.path.isdir(p):
            names = sorted(n for n in os.listdir(p) if n.endswith(".pcap") and not n.startswith("."))
            names += sorted(n for n in os.listdir(p) if n.endswith(".pcap.current"))
            if not names:
                raise SpecError(None, None, "%s holds no record files (*.pcap): is it the "
                                "directory of mapi collect -w?" % p)
            out += [os.path.join(p, n) for n in names]
        else:
            out.append(p)
    return out


def parse_stat(text):
    """"srcip/bytes" -> (name, [fields], order)."""
    name, _, order = text.partition("/")
    order = order or "flows"
    if order not in ORDERS:
        raise SpecError(None, None, "-s %s: order by flows, packets or bytes, not %r" % (text, order))
    return name, list(EITHER.get(name, (name,))), ORDERS[order]


def specs(args, stats):
    pre = "RECORD_FILTER(%s) " % quote(" ".join(args.filter)) if args.filter else ""
    if not stats:
        limit = "LIMIT(%d) " % args.count if args.count else ""
        return [pre + limit + "RECORD_REPORT(%s, \"fd:1\") RECORD_COUNTER" % quote(args.output)]
    steps = []
    for name, fields, order in stats:
        x = ALL if len(fields) > 1 or not args.number else args.number
        steps += ["RECORD_TOP(%d, %s, %s)" % (x, quote(f), quote(order)) for f in fields]
    return [pre + " ".join(steps) + " RECORD_COUNTER"]


def merged(entries_lists, order, n):
    """Entries of one or two RECORD_TOPs (either side of the records), summed by key, ranked."""
    table = {}
    for entries in entries_lists:
        for e in entries:
            key = tuple(e["value"]) if isinstance(e["value"], list) else e["value"]
            row = table.setdefault(key, [0, 0, 0])
            for i, k in enumerate(("records", "packets", "bytes")):
                row[i] += e[k]
    idx = {"records": 0, "packets": 1, "bytes": 2}[order]
    rows = sorted(table.items(), key=lambda kv: (-kv[1][idx], -kv[1][2], str(kv[0])))
    return rows[:n] if n else rows


def print_stat(out, name, order, rows, totals):
    out.write("Top %s %s ordered by %s:\n" % (len(rows), name, "flows" if order == "records" else order))
    width = max([len(name)] + [len(str(k)) for k, _ in rows])
    out.write("%-*s  %16s  %20s  %22s\n" % (width, name, "Flows(%)", "Packets(%)", "Bytes(%)"))

    def pct(v, t):
        return "%d(%5.1f)" % (v, 100.0 * v / t if t else 0.0)
    for key, (fl, pk, by) in rows:
        out.write("%-*s  %16s  %20s  %22s\n" % (width, key if not isinstance(key, tuple) else " ".join(map(str, key)),
                                               pct(fl, totals["records"]), pct(pk, totals["packets"]),
                                               pct(by, totals["bytes"])))
    out.write("\n")


def handle(args):
    stats = [parse_stat(s) for s in args.stat or []]
    args.read = record_files(args.read)
    args.flows = specs(args, stats)
    args.format, args.merge = None, False

    def report(job):
        res = job.results()
        funcs = res["flows"][0]["functions"]
        c = funcs[-1]["result"]            # both directions of biflow records, as nfdump
        totals = dict(records=c["records"], packets=c["packets"] + c["out_packets"],
                      bytes=c["bytes"] + c["out_bytes"])
        if args.json:
            write_json(dict(files=args.read, totals=totals, stats={
                s[0]: [dict(key=k, flows=v[0], packets=v[1], bytes=v[2]) for k, v in r]
                for s, r in _stat_rows(stats, funcs, args.number)}))
            return
        sys.stdout.flush()
        for (name, _, order), rows in _stat_rows(stats, funcs, args.number):
            print_stat(sys.stdout, name, order, rows, totals)
        sys.stdout.write("Summary: total flows: %d, total bytes: %d, total packets: %d\n"
                         % (totals["records"], totals["bytes"], totals["packets"]))
    if args.json and not stats:
        raise SpecError(None, None, "--json summarises: give -s STAT (listings: -o csv)")
    return run_job(args, True, report)


def _stat_rows(stats, funcs, n):
    tops = [f for f in funcs if f["name"] == "RECORD_TOP"]
    i = 0
    for stat in stats:
        k = len(stat[1])
        yield stat, merged([t["result"] for t in tops[i:i + k]], stat[2], n)
        i += k


def add_parser(sub, name, help):
    p = sub.add_parser(name, help=help, description=__doc__.splitlines()[0].strip("`"),
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("filter", nargs="*", metavar="FILTER", help="nfdump filter (trailing words)")
    p.add_argument("-r", "--read", action="append", required=True, metavar="FILE|DIR",
                   help="record files or the directory mapi collect writes; repeat for more")
    p.add_argument("-s", "--stat", action="append", metavar="STAT[/ORDER]",
                   help="top N statistic instead of the listing (nfdump -s); repeat for more")
    p.add_argument("-n", "--number", type=int, default=10, metavar="N",
                   help="entries per statistic (default 10; 0: all)")
    p.add_argument("-o", "--output", choices=("line", "csv"), default="line",
                   help="listing format (default line)")
    p.add_argument("-c", "--count", type=int, metavar="COUNT", help="list at most COUNT records")
    p.add_argument("--backend", metavar="NAME",
                   help="read through this backend: netflow for captured exports")
    p.add_argument("--json", action="store_true", help="statistics and totals as JSON")
    p.add_argument("--progress", choices=("auto", "always", "never"), default="auto")
    p.set_defaults(handler=handle)
