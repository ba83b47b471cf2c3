#!/usr/bin/env python3
"""Benchmark of the issue-12 functions, side by side on a generated trace (tools/gentrace.py).

    python tools/bench_cooking.py                         # 10 M packets (~6 GB), 3 repeats
    python tools/bench_cooking.py --packets 1M --repeat 5
    python tools/bench_cooking.py --trace my.pcap --json out.json

Every case runs whole processes (a fresh Python using the public mapi API, start-up included,
through tools/bench.py's child), the two sides interleaved run by run; the median of the
per-run ratios is reported, since on a shared machine only side-by-side ratios mean anything.
Both wall time (what a user waits; the engine reads the file on a second thread, so it depends
on how many cores are free) and CPU time (user + system, each child's own from wait4; steadier
when other processes share the cores) are given, with the load average at every run.
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
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
from tools import gentrace  # noqa: E402
from tools.bench import ONE_FLOW, drop_stale_traces, ours_cmd, warm  # noqa: E402

SIGS = list(gentrace.SIGNATURES)
COOK = [["COOKING"], ["STR_SEARCH", SIGS], ["PKT_COUNTER"]]
SEARCH = [["STR_SEARCH", SIGS], ["PKT_COUNTER"]]
FLOW = [["FLOW_REPORT"], ["RECORD_COUNTER"], ["PKT_COUNTER"]]
TARGETS = {"cook": 2.0, "flow": 1.5}
COOKING_MAX_BYTES = 256 << 20          # COOKING's default bound on what it holds
FLOW_MAX_FLOWS = 1 << 20               # FLOW_REPORT's default max_flows
FLOW_BYTES = 128 + 8                   # a flow's state (flow_meter.c) and its bucket


class Run:
    def __init__(self, wall, cpu, maxrss_kb, load):
        self.wall, self.cpu, self.maxrss_kb, self.load = wall, cpu, maxrss_kb, load


def run_child(trace, flows):
    """One job in a fresh process: (Run, its results); wall and CPU time and peak RSS its own."""
    load = os.getloadavg()[0]
    with tempfile.TemporaryFile() as out:
        t0 = time.perf_counter()
        p = subprocess.Popen(ours_cmd(trace, [flows]), stdout=out, stderr=subprocess.PIPE)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        err = p.stderr.read().decode(errors="replace")
        out.seek(0)
        text = out.read().decode(errors="replace")
    try:
        msg = json.loads(text.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise SystemExit("the job failed (status %d):\n%s" % (status, err[-3000:]))
    if "results" not in msg:
        raise SystemExit("the job failed: %s" % msg.get("error"))
    return Run(wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss, load), msg["results"][0]


def side_by_side(trace, a, b, repeat, log):
    """Interleaved runs of flows a and b; returns (median wall ratio, median CPU ratio, runs of
    a, runs of b)."""
    ra, rb = [], []
    for k in range(repeat):
        for flows, out in ((a, ra), (b, rb)) if k % 2 == 0 else ((b, rb), (a, ra)):
            out.append(run_child(trace, flows))
        x, y = ra[-1][0], rb[-1][0]
        log("  run %d: wall %.2f s vs %.2f s (%.2fx), CPU %.2f s vs %.2f s (%.2fx), load %.1f"
            % (k + 1, x.wall, y.wall, x.wall / y.wall, x.cpu, y.cpu, x.cpu / y.cpu, x.load))
    ratio = statistics.median(x[0].wall / y[0].wall for x, y in zip(ra, rb))
    cpu = statistics.median(x[0].cpu / y[0].cpu for x, y in zip(ra, rb))
    return ratio, cpu, ra, rb


def summary(ratio, cpu, ra, rb, **extra):
    med = lambda runs, f: statistics.median(f(r) for r, _ in runs)
    return dict(extra, ratio=ratio, cpu_ratio=cpu, ours_s=med(ra, lambda r: r.wall),
                ref_s=med(rb, lambda r: r.wall), ours_cpu=med(ra, lambda r: r.cpu),
                ref_cpu=med(rb, lambda r: r.cpu), spread=[min(r.wall / q.wall for (r, _), (q, _) in zip(ra, rb)),
                                                          max(r.wall / q.wall for (r, _), (q, _) in zip(ra, rb))],
                rss_mb=max(r.maxrss_kb for r, _ in ra) / 1024, ref_rss_mb=max(r.maxrss_kb for r, _ in rb) / 1024)


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
    ratio, cpu, ra, rb = side_by_side(trace, COOK, SEARCH, args.repeat, log)
    cooked, plain = ra[0][1][0], rb[0][1][0]
    rows["cook"] = summary(ratio, cpu, ra, rb, target=TARGETS["cook"], chunks_matched=cooked,
                           packets_matched=plain, limit_mb=COOKING_MAX_BYTES / 2 ** 20)
    log("flow: FLOW_REPORT vs the P1 job")
    ratio, cpu, ra, rb = side_by_side(trace, FLOW, ONE_FLOW, args.repeat, log)
    records = ra[0][1]
    rows["flow"] = summary(ratio, cpu, ra, rb, target=TARGETS["flow"], records=records[0],
                           limit_mb=FLOW_MAX_FLOWS * FLOW_BYTES / 2 ** 20)
    load1 = os.getloadavg()
    print("issue 12 functions on %s (median of %d runs per side, interleaved)" % (os.path.basename(trace),
                                                                                 args.repeat))
    print("%-5s %-48s %7s %7s %6s %11s %6s %6s %8s" % ("case", "what", "ours s", "ref s", "wall",
                                                       "(min-max)", "CPU", "target", "peak RSS"))
    for case, what in (("cook", "COOKING+STR_SEARCH(100) vs STR_SEARCH(100)"),
                       ("flow", "FLOW_REPORT vs BPF tcp port 80+PKT/BYTE_COUNTER")):
        r = rows[case]
        print("%-5s %-48s %7.2f %7.2f %5.2fx %5.2f-%-5.2f %5.2fx %5.2fx %5.0f MB %s" % (
            case, what, r["ours_s"], r["ref_s"], r["ratio"], r["spread"][0], r["spread"][1],
            r["cpu_ratio"], r["target"], r["rss_mb"],
            "ok" if max(r["ratio"], r["cpu_ratio"]) <= r["target"] else "MISSED"))
    print("rss   COOKING job %.0f MB (STR_SEARCH alone %.0f MB); COOKING holds at most %d MB (max_bytes)"
          % (rows["cook"]["rss_mb"], rows["cook"]["ref_rss_mb"], rows["cook"]["limit_mb"]))
    print("      FLOW_REPORT job %.0f MB (P1 %.0f MB); its table holds at most %d flows, %.0f MB (max_flows)"
          % (rows["flow"]["rss_mb"], rows["flow"]["ref_rss_mb"], FLOW_MAX_FLOWS, rows["flow"]["limit_mb"]))
    print("checks: %d chunks matched vs %d packets; FLOW_REPORT records counted %s"
          % (cooked, plain, records[0]))
    print("load average before %.2f, after %.2f on %d cores (a shared machine: compare ratios, not seconds)"
          % (load0[0], load1[0], os.cpu_count() or 1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(trace=trace, rows=rows, load=[load0, load1], when=time.time()), f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
