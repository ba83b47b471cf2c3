#!/usr/bin/env python3
"""Benchmark of the issue-12 functions, side by side on a generated trace (tools/gentrace.py).

    python tools/bench_cooking.py                         # 10 M packets (~6 GB), 3 repeats
    python tools/bench_cooking.py --packets 1M --repeat 5
    python tools/bench_cooking.py --trace my.pcap --json out.json

Every case runs whole processes (a fresh Python using the public mapi API, start-up included,
through tools/bench.py's child), the two sides interleaved run by run; the median of the
per-run ratios is reported, since on a shared machine only side-by-side ratios mean anything.
Peak RSS is each child's own (wait4).  The counts are printed: chunks that matched (a chunk can
hold several signature-bearing segments; UDP packets do not reach STR_SEARCH after COOKING)
next to the packets STR_SEARCH alone matched, and FLOW_REPORT's record count.

Cases (ratio = first / second, lower is better)
  cook  COOKING + STR_SEARCH(100 signatures) + PKT_COUNTER  vs STR_SEARCH(100) + PKT_COUNTER  <= 2.0
  flow  FLOW_REPORT + RECORD_COUNTER                        vs BPF_FILTER("tcp port 80") +
                                                               PKT_COUNTER + BYTE_COUNTER (P1) <= 1.5
  rss   peak RSS of both cases' children, next to COOKING's max_bytes and FLOW_REPORT's table
"""
import argparse
import json
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
from tools import gentrace  # noqa: E402
from tools.bench import ONE_FLOW, drop_stale_traces, run_ours, warm  # noqa: E402

SIGS = list(gentrace.SIGNATURES)
COOK = [["COOKING"], ["STR_SEARCH", SIGS], ["PKT_COUNTER"]]
SEARCH = [["STR_SEARCH", SIGS], ["PKT_COUNTER"]]
FLOW = [["FLOW_REPORT"], ["RECORD_COUNTER"], ["PKT_COUNTER"]]
TARGETS = {"cook": 2.0, "flow": 1.5}
COOKING_MAX_BYTES = 256 << 20          # COOKING's default bound on what it holds


def side_by_side(trace, a, b, repeat, log):
    """Interleaved runs of flows a and b; returns (median ratio, runs of a, runs of b)."""
    ra, rb = [], []
    for k in range(repeat):
        for flows, out in ((a, ra), (b, rb)) if k % 2 == 0 else ((b, rb), (a, ra)):
            run, results, na = run_ours(trace, [flows])
            if na:
                raise SystemExit("n/a: %s" % na)
            out.append((run, results[0]))
        log("  run %d: %.2f s vs %.2f s" % (k + 1, ra[-1][0].wall, rb[-1][0].wall))
    ratio = statistics.median(x[0].wall / y[0].wall for x, y in zip(ra, rb))
    return ratio, ra, rb


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--packets", type=gentrace.parse_size, default=10_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--trace")
    ap.add_argument("--traces-dir", default=os.path.join(ROOT, "traces"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)
    if args.trace:
        trace = os.path.abspath(args.trace)
    else:
        os.makedirs(args.traces_dir, exist_ok=True)
        version = gentrace.generator_version()
        trace = os.path.join(args.traces_dir, "gen-%d-s%d-%s.pcap" % (args.packets, args.seed, version))
        drop_stale_traces(args.traces_dir, version, log)
        if not os.path.exists(trace):
            log("generating %s ..." % trace)
            gentrace.write_trace(trace, args.packets, seed=args.seed)
    warm(trace)
    load0 = os.getloadavg()
    log("trace %s; load average %.2f %.2f %.2f" % ((trace,) + load0))
    rows = {}

    log("cook: COOKING + STR_SEARCH(100) vs STR_SEARCH(100)")
    ratio, ra, rb = side_by_side(trace, COOK, SEARCH, args.repeat, log)
    cooked, plain = ra[0][1][0], rb[0][1][0]
    rows["cook"] = dict(ratio=ratio, target=TARGETS["cook"], ours_s=statistics.median(r.wall for r, _ in ra),
                        ref_s=statistics.median(r.wall for r, _ in rb), chunks_matched=cooked,
                        packets_matched=plain, rss_mb=max(r.maxrss_kb for r, _ in ra) / 1024,
                        ref_rss_mb=max(r.maxrss_kb for r, _ in rb) / 1024,
                        limit_mb=COOKING_MAX_BYTES / 2 ** 20)
    log("flow: FLOW_REPORT vs the P1 job")
    ratio, ra, rb = side_by_side(trace, FLOW, ONE_FLOW, args.repeat, log)
    records = ra[0][1]
    rows["flow"] = dict(ratio=ratio, target=TARGETS["flow"], ours_s=statistics.median(r.wall for r, _ in ra),
                        ref_s=statistics.median(r.wall for r, _ in rb), records=records[-1],
                        rss_mb=max(r.maxrss_kb for r, _ in ra) / 1024,
                        ref_rss_mb=max(r.maxrss_kb for r, _ in rb) / 1024)
    load1 = os.getloadavg()
    print("%-5s %-52s %8s %8s %7s %7s %9s" % ("case", "what", "ours s", "ref s", "ratio", "target", "peak RSS"))
    print("%-5s %-52s %8.2f %8.2f %7.2f %7.2f %6.0f MB" % (
        "cook", "COOKING+STR_SEARCH(100) vs STR_SEARCH(100)", rows["cook"]["ours_s"], rows["cook"]["ref_s"],
        rows["cook"]["ratio"], TARGETS["cook"], rows["cook"]["rss_mb"]))
    print("%-5s %-52s %8.2f %8.2f %7.2f %7.2f %6.0f MB" % (
        "flow", "FLOW_REPORT vs BPF tcp port 80 + PKT/BYTE_COUNTER", rows["flow"]["ours_s"],
        rows["flow"]["ref_s"], rows["flow"]["ratio"], TARGETS["flow"], rows["flow"]["rss_mb"]))
    print("rss   COOKING child %.0f MB (STR_SEARCH alone %.0f MB; COOKING holds at most %d MB); "
          "FLOW_REPORT child %.0f MB (P1 %.0f MB)" % (rows["cook"]["rss_mb"], rows["cook"]["ref_rss_mb"],
                                                    rows["cook"]["limit_mb"], rows["flow"]["rss_mb"],
                                                    rows["flow"]["ref_rss_mb"]))
    print("checks: %d chunks matched vs %d packets; FLOW_REPORT records counted %s"
          % (cooked, plain, records))
    print("load average before %.2f, after %.2f (a shared machine: compare ratios, not seconds)"
          % (load0[0], load1[0]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(trace=trace, rows=rows, load=[load0, load1], when=time.time()), f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
