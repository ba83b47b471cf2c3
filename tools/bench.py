#!/usr/bin/env python3
"""MAPI benchmark: our engine side by side with the stock tools on a generated trace.

    make bench                                    # 10 M packets (~6 GB) in ./traces, 5 repeats
    make bench BENCH_ARGS="--packets 1M --repeat 3 --cases a,b,e"
    python tools/bench.py --trace my.pcap --json results.json

The trace is generated once by tools/gentrace.py into ./traces/ (gitignored) and reused; it is read
once to warm the page cache.  Every case runs whole processes on both sides (ours: a fresh Python
process using the public mapi API, start-up and imports included), interleaved run by run, and
reports the median of the per-run ratios, since on a shared machine only side-by-side ratios mean
anything (the load average is printed before and after).  Our counts are checked against the stock
tool's on every case (computed once per trace with tcpdump / ngrep and cached next to the trace);
a mismatch is printed loudly and makes the exit status 1.

Cases (issue 2 unless noted; ratio = ours / reference, lower is better)
  a   BPF_FILTER("tcp port 80") + PKT_COUNTER + BYTE_COUNTER    vs tcpdump -r T -w /dev/null 'tcp port 80'  <= 0.5
  a2  the same                                                  vs cat T > /dev/null                      <= 1.6
  b   eight flows with eight different filters, one process     vs eight such tcpdumps run concurrently   <= 0.25
  c   STR_SEARCH with the 100 gentrace signatures + PKT_COUNTER vs ngrep -q -I T '<100-way alternation>'  <= 0.04
      (ngrep runs on a prefix of --ngrep-prefix packets and is scaled by packet count when the trace is
      longer; the row says so)
  d   peak RSS of case a (getrusage of the child)                                                         <= 256 MB
  e   (issue 3) eight flows from different callers sharing the BPF prefix of case a vs case a alone       <= 1.3
  f   (issue 4) tcpdump -r T -w /dev/null 'tcp port 80' through mapi-preload vs native                    <= 0.9
  g   (issue 4) tcpdump -nr T 'tcp port 80' > /dev/null through mapi-preload vs native                    <= 1.05
  h   (issue 4) start-up: tcpdump --version through mapi-preload vs native (reported, no target)
  s   (issue 8) start-up, on a one-packet file: mapi run vs tcpdump -r              ours <= 60 ms
      and the first pcap call of a preloaded tcpdump -r minus native's             <= 100 ms
      with python -X importtime's top entries of both (tools/bench_startup.py)
  a2m (issue 8) case a on a 2 M-packet trace (start-up weighs more there)          <= 0.5
Cases whose MAPI function or tool is missing print "n/a: <reason>".
"""
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---------------------------------------------------------------------------------------------
# Our side: a child process that runs one MAPI job and prints its counters as JSON.  It imports
# nothing but mapi, like a user's script would.
def child_main(spec_text):
    spec = json.loads(spec_text)
    import mapi
    from mapi.errors import EUNKNOWNFUNC, ENOTSUP
    try:
        dev = mapi.create_offline_device(spec["trace"])
        flows = []
        for functions in spec["flows"]:
            fd = mapi.create_flow(dev)
            reads = []
            for name, *args in functions:
                fid = mapi.apply_function(fd, name, *args)
                if name in ("PKT_COUNTER", "BYTE_COUNTER"):
                    reads.append(fid)
            flows.append((fd, reads))
        for fd, _ in flows:
            mapi.connect(fd)
        mapi.start_offline_device(dev)
        mapi.wait_offline_device(dev)
        results = [[mapi.read_results(fd, fid).value for fid in reads] for fd, reads in flows]
        mapi.delete_offline_device(dev)
    except mapi.MapiError as e:
        na = e.code in (EUNKNOWNFUNC, ENOTSUP)
        print(json.dumps({"error": "%s (MapiError %d)" % (e, e.code), "na": na}))
        return 4 if na else 3
    print(json.dumps({"results": results}))
    return 0


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "--child":
    sys.exit(child_main(sys.argv[2]))

# ---------------------------------------------------------------------------------------------
import argparse            # noqa: E402  (the child above needs none of these)
import hashlib             # noqa: E402
import shutil              # noqa: E402
import statistics          # noqa: E402
import struct              # noqa: E402
import subprocess          # noqa: E402
import tempfile            # noqa: E402
import time                # noqa: E402

if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
from tools import bench_startup, gentrace  # noqa: E402

TCP80 = "tcp port 80"
EIGHT_FILTERS = ("tcp port 80", "tcp port 443", "udp port 53", "icmp", "ip6", "tcp port 22",
                 "udp port 123", "tcp[tcpflags] & (tcp-syn|tcp-fin) != 0")
ONE_FLOW = [["BPF_FILTER", TCP80], ["PKT_COUNTER"], ["BYTE_COUNTER"]]
TARGETS = {"a": 0.5, "a2": 1.6, "b": 0.25, "c": 0.04, "d": 256.0, "e": 1.3, "f": 0.9, "g": 1.05,
           "a2m": 0.5}
ALL_CASES = ("a", "b", "c", "d", "e", "f", "g", "h", "s", "a2m")
P1_SMALL = 2_000_000          # case a2m's trace


class Mismatch(Exception):
    pass


# --- process running --------------------------------------------------------------------------
class Run:
    __slots__ = ("wall", "rc", "maxrss_kb", "out", "err")

    def __init__(self, wall, rc, maxrss_kb, out, err):
        self.wall, self.rc, self.maxrss_kb, self.out, self.err = wall, rc, maxrss_kb, out, err


def run_procs(cmds, stdout_to_file=False, shell=False):
    """Starts all commands at once; returns ([Run], wall time until the last one ended).

    Each child is reaped with wait4, so its own peak RSS is known."""
    files, procs = [], []
    t0 = time.perf_counter()
    for cmd in cmds:
        out = tempfile.TemporaryFile() if stdout_to_file else subprocess.DEVNULL
        err = tempfile.TemporaryFile()
        files.append((out, err))
        procs.append(subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, shell=shell))
    runs = [None] * len(procs)
    pending = {p.pid: i for i, p in enumerate(procs)}
    while pending:
        pid, status, ru = os.wait4(-1, 0)
        if pid not in pending:
            continue
        i = pending.pop(pid)
        procs[i].returncode = os.waitstatus_to_exitcode(status)
        runs[i] = Run(time.perf_counter() - t0, procs[i].returncode, ru.ru_maxrss, "", "")
    wall = time.perf_counter() - t0
    for run, (out, err) in zip(runs, files):
        if out is not subprocess.DEVNULL:
            out.seek(0)
            run.out = out.read().decode(errors="replace")
            out.close()
        err.seek(0)
        run.err = err.read().decode(errors="replace")
        err.close()
    return runs, wall


def run1(cmd, stdout_to_file=False, shell=False):
    runs, wall = run_procs([cmd], stdout_to_file, shell)
    runs[0].wall = wall
    return runs[0]


def ours_cmd(trace, flows):
    spec = json.dumps({"trace": trace, "flows": flows})
    return [sys.executable, os.path.abspath(__file__), "--child", spec]


def run_ours(trace, flows):
    """(Run, results or None, n/a reason or None); raises on a real failure."""
    r = run1(ours_cmd(trace, flows), stdout_to_file=True)
    try:
        msg = json.loads(r.out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise RuntimeError("our side failed (exit %d):\n%s" % (r.rc, r.err[-3000:]))
    if "results" in msg:
        return r, msg["results"], None
    if msg.get("na"):
        return r, None, msg["error"]
    raise RuntimeError("our side failed: %s\n%s" % (msg.get("error"), r.err[-3000:]))


def tool(name):
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin")


# --- reference counts (cached next to the trace) ----------------------------------------------
def pcap_stream_totals(stream):
    """(records, sum of wire lengths) of a classic pcap byte stream, walked record by record."""
    buf = b""
    while len(buf) < 24:
        chunk = stream.read(1 << 20)
        if not chunk:
            return 0, 0
        buf += chunk
    magic = buf[:4]
    endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    rec = struct.Struct(endian + "IIII")
    count = total = 0
    off = 24
    while True:
        end = len(buf)
        while off + 16 <= end:
            _, _, caplen, wirelen = rec.unpack_from(buf, off)
            if off + 16 + caplen > end:
                break
            count += 1
            total += wirelen
            off += 16 + caplen
        chunk = stream.read(4 << 20)
        if not chunk:
            return count, total
        buf = buf[off:] + chunk
        off = 0


class References:
    """tcpdump's (packets, bytes) per filter and ngrep's match counts, cached per trace file."""

    def __init__(self, trace):
        self.trace = trace
        st = os.stat(trace)
        self.key = "%d:%d" % (st.st_size, int(st.st_mtime))
        self.path = trace + ".refs.json"
        self.data = {}
        try:
            with open(self.path) as f:
                d = json.load(f)
            if d.get("key") == self.key:
                self.data = d
        except (OSError, ValueError):
            pass
        self.data["key"] = self.key

    def save(self):
        tmp = self.path + ".part"
        with open(tmp, "w") as f:
            json.dump(self.data, f, indent=1)
        os.replace(tmp, self.path)

    def tcpdump(self, expr, trace=None):
        trace = trace or self.trace
        k = "tcpdump:%s:%s" % (os.path.basename(trace), expr)
        if k not in self.data:
            p = subprocess.Popen([tool("tcpdump"), "-r", trace, "-w", "-", expr], stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL)
            self.data[k] = list(pcap_stream_totals(p.stdout))
            if p.wait() != 0:
                raise RuntimeError("tcpdump -r %s %r failed" % (trace, expr))
            self.save()
        return tuple(self.data[k])

    def put(self, k, v):
        self.data[k] = v
        self.save()


# --- helpers ------------------------------------------------------------------------------------
def median(xs):
    return statistics.median(xs) if xs else float("nan")


def mem_available():
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def warm(path):
    with open(path, "rb", buffering=0) as f:
        while f.read(8 << 20):
            pass


def trace_packets(path):
    with open(path, "rb") as f:
        return pcap_stream_totals(f)[0]


def make_prefix(trace, packets, refs):
    """The first `packets` records of the trace (for slow tools), made once with tcpdump -c."""
    base, ext = os.path.splitext(trace)
    prefix = "%s.first%d%s" % (base, packets, ext)
    if not os.path.exists(prefix) or os.path.getmtime(prefix) < os.path.getmtime(trace):
        tmp = prefix + ".part"
        subprocess.run([tool("tcpdump"), "-r", trace, "-c", str(packets), "-w", tmp], check=True,
                       stderr=subprocess.DEVNULL)
        os.replace(tmp, prefix)
    return prefix


def drop_stale_traces(directory, version, log):
    """Generated traces (and their caches) of another generator version are never reused: delete them."""
    import re
    pattern = re.compile(r"gen-\d+-s\d+-([0-9a-f]{8})(\.first\d+)?\.pcap(\.refs\.json|\.part)?$")
    for name in sorted(os.listdir(directory)):
        m = pattern.match(name)
        if m and m.group(1) != version:
            log("removing %s (made by another generator version)" % name)
            os.unlink(os.path.join(directory, name))


def ngrep_matches(output):
    """Packets ngrep -q printed: one header line per match ('T 1.2.3.4:80 -> ... #N')."""
    return sum(1 for line in output.splitlines() if line[:2] in ("T ", "U ", "I ", "? ")
               and " -> " in line)


def row(case, what, ours=None, ref_name="", ref=None, ratio=None, target=None, unit="x", note="",
        status=None, **extra):
    if status is None:
        if ratio is None or target is None:
            status = "info"
        else:
            status = "pass" if ratio <= target else "FAIL"
    r = dict(case=case, what=what, ours_s=ours, reference=ref_name, reference_s=ref, ratio=ratio,
            target=target, unit=unit, status=status, note=note)
    r.update(extra)
    return r


def check(label, ours, ref, problems):
    if list(ours) != list(ref):
        msg = "COUNT MISMATCH in %s: ours %s, reference %s" % (label, list(ours), list(ref))
        print("\n!!! %s !!!\n" % msg, file=sys.stderr)
        problems.append(msg)
        return False
    return True


# --- the cases ---------------------------------------------------------------------------------
class Bench:
    def __init__(self, args, trace):
        self.args = args
        self.trace = trace
        self.refs = References(trace)
        self.rows = []
        self.problems = []
        self.tcpdump = tool("tcpdump")
        self.cache = {}

    def log(self, msg):
        print(msg, file=sys.stderr, flush=True)

    def case_a(self, want_d):
        refs = self.refs.tcpdump(TCP80)
        ours_t, td_t, cat_t, r_td, r_cat, rss = [], [], [], [], [], []
        for i in range(self.args.repeat):
            r, res, na = run_ours(self.trace, [ONE_FLOW])
            if na:
                return [row("a", "one flow, tcp port 80", status="n/a", note=na)]
            check("case a", res[0], refs, self.problems)
            t = run1([self.tcpdump, "-r", self.trace, "-w", "/dev/null", TCP80])
            c = run1("cat '%s' > /dev/null" % self.trace, shell=True)
            ours_t.append(r.wall); td_t.append(t.wall); cat_t.append(c.wall)
            r_td.append(r.wall / t.wall); r_cat.append(r.wall / c.wall)
            rss.append(r.maxrss_kb)
            self.log("  a  run %d: ours %.3f s, tcpdump %.3f s, cat %.3f s, RSS %.0f MB"
                     % (i + 1, r.wall, t.wall, c.wall, r.maxrss_kb / 1024))
        self.cache["a"] = median(ours_t)
        rows = [row("a", "BPF tcp port 80 + PKT/BYTE_COUNTER", median(ours_t),
                    "tcpdump -r T -w /dev/null 'tcp port 80'", median(td_t), median(r_td), TARGETS["a"],
                    note="%d packets, %d bytes" % refs),
                row("a2", "the same vs the memory floor", median(ours_t), "cat T > /dev/null", median(cat_t),
                    median(r_cat), TARGETS["a2"])]
        if want_d:
            rows.append(row("d", "peak RSS of case a", None, "", None, max(rss) / 1024, TARGETS["d"], unit="MB",
                            note="max over %d runs (getrusage of the child)" % len(rss)))
        return rows

    def case_b(self):
        refs = [self.refs.tcpdump(f) for f in EIGHT_FILTERS]
        flows = [[["BPF_FILTER", f], ["PKT_COUNTER"], ["BYTE_COUNTER"]] for f in EIGHT_FILTERS]
        ours_t, ref_t, ratios = [], [], []
        for i in range(self.args.repeat):
            r, res, na = run_ours(self.trace, flows)
            if na:
                return [row("b", "eight filters", status="n/a", note=na)]
            for f, got, ref in zip(EIGHT_FILTERS, res, refs):
                check("case b, filter %r" % f, got, ref, self.problems)
            runs, wall = run_procs([[self.tcpdump, "-r", self.trace, "-w", "/dev/null", f] for f in EIGHT_FILTERS])
            bad = [f for f, x in zip(EIGHT_FILTERS, runs) if x.rc != 0]
            if bad:
                raise RuntimeError("tcpdump failed for %s" % bad)
            ours_t.append(r.wall); ref_t.append(wall); ratios.append(r.wall / wall)
            self.log("  b  run %d: ours %.3f s, 8 concurrent tcpdumps %.3f s" % (i + 1, r.wall, wall))
        return [row("b", "8 flows, 8 different filters, 1 process", median(ours_t),
                    "8 concurrent tcpdump -w /dev/null", median(ref_t), median(ratios), TARGETS["b"])]

    def case_c(self):
        ngrep = tool("ngrep")
        flows = [[["STR_SEARCH", list(gentrace.SIGNATURES)], ["PKT_COUNTER"]]]
        total = self.total_packets()
        prefix_n = self.args.ngrep_prefix
        prefix = self.trace if total <= prefix_n else make_prefix(self.trace, prefix_n, self.refs)
        scale = 1.0 if prefix == self.trace else total / prefix_n
        # our count on the ngrep input (also tells whether STR_SEARCH exists yet)
        r, res, na = run_ours(prefix, flows)
        if na:
            return [row("c", "STR_SEARCH, 100 patterns", status="n/a", note=na)]
        if ngrep is None:
            return [row("c", "STR_SEARCH, 100 patterns", status="n/a", note="ngrep is not installed")]
        alternation = gentrace.ngrep_alternation(gentrace.SIGNATURES)
        ng_t = []
        for i in range(min(self.args.repeat, self.args.ngrep_repeat)):
            n = run1([ngrep, "-q", "-I", prefix, alternation], stdout_to_file=True)
            if n.rc not in (0, 1):
                raise RuntimeError("ngrep failed (exit %d): %s" % (n.rc, n.err[-2000:]))
            check("case c (on %s)" % os.path.basename(prefix), res[0], [ngrep_matches(n.out)], self.problems)
            ng_t.append(n.wall)
            self.log("  c  ngrep run %d: %.3f s on %s" % (i + 1, n.wall, os.path.basename(prefix)))
        ours_t = []
        for i in range(self.args.repeat):
            r, res_full, _ = run_ours(self.trace, flows)
            ours_t.append(r.wall)
            self.log("  c  ours run %d: %.3f s" % (i + 1, r.wall))
        ref = median(ng_t) * scale
        note = "%d matching packets in the ngrep input" % res[0][0]
        ref_name = "ngrep -q -I T '<100-way alternation>'"
        if scale != 1.0:
            ref_name = "ngrep on the first %d packets, time x %.2f (scaled)" % (prefix_n, scale)
        return [row("c", "STR_SEARCH 100 literal patterns", median(ours_t), ref_name, ref,
                    median(ours_t) / ref, TARGETS["c"], note=note)]

    def case_e(self):
        refs = self.refs.tcpdump(TCP80)
        eight = [ONE_FLOW] * 8
        ours_t, one_t, ratios = [], [], []
        for i in range(self.args.repeat):
            r8, res8, na = run_ours(self.trace, eight)
            if na:
                return [row("e", "8 flows sharing a prefix", status="n/a", note=na)]
            for j, got in enumerate(res8):
                check("case e, flow %d" % (j + 1), got, refs, self.problems)
            r1, res1, _ = run_ours(self.trace, [ONE_FLOW])
            ours_t.append(r8.wall); one_t.append(r1.wall); ratios.append(r8.wall / r1.wall)
            self.log("  e  run %d: 8 sharing flows %.3f s, one flow %.3f s" % (i + 1, r8.wall, r1.wall))
        return [row("e", "8 callers' flows sharing BPF tcp port 80", median(ours_t), "one such flow (ours)",
                    median(one_t), median(ratios), TARGETS["e"])]

    def preload(self):
        exe = tool("mapi-preload") or os.path.join(os.path.dirname(sys.executable), "mapi-preload")
        if not os.path.exists(exe):
            return None, "mapi-preload is not installed"
        p = subprocess.run([exe, "--print-path"], capture_output=True, text=True, timeout=120)
        lib = p.stdout.strip()
        if p.returncode != 0 or not lib or not os.path.exists(lib):
            return None, "mapi-preload --print-path failed: %s" % (p.stderr.strip().splitlines() or ["?"])[-1]
        return exe, None

    def _hash_output(self, cmd):
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        h = hashlib.sha256()
        while True:
            chunk = p.stdout.read(1 << 20)
            if not chunk:
                break
            h.update(chunk)
        err = p.stderr.read()
        return p.wait(), h.hexdigest(), err

    def case_fgh(self, cases):
        exe, why = self.preload()
        if exe is None:
            return [row(c, {"f": "tcpdump -w through the shim", "g": "tcpdump printing through the shim",
                            "h": "preloaded start-up"}[c], status="n/a", note=why) for c in cases]
        rows = []
        jobs = {"f": ([self.tcpdump, "-r", self.trace, "-w", "/dev/null", TCP80],
                      [self.tcpdump, "-r", self.trace, "-w", "-", TCP80],
                      "tcpdump -r T -w /dev/null 'tcp port 80'"),
                "g": ([self.tcpdump, "-nr", self.trace, TCP80], [self.tcpdump, "-nr", self.trace, TCP80],
                      "tcpdump -nr T 'tcp port 80' > /dev/null")}
        for c in cases:
            if c in jobs:
                timed, verify, label = jobs[c]
                rc1, h1, e1 = self._hash_output(verify)
                rc2, h2, e2 = self._hash_output([exe] + verify)
                same = (rc1, h1) == (rc2, h2)
                if not same:
                    check("case %s output (sha256, exit)" % c, [h2[:16], rc2], [h1[:16], rc1], self.problems)
                shim_t, nat_t, ratios = [], [], []
                for i in range(self.args.repeat):
                    s = run1([exe] + timed)
                    n = run1(timed)
                    shim_t.append(s.wall); nat_t.append(n.wall); ratios.append(s.wall / n.wall)
                    self.log("  %s  run %d: preloaded %.3f s, native %.3f s" % (c, i + 1, s.wall, n.wall))
                rows.append(row(c, label + " via mapi-preload", median(shim_t), "native", median(nat_t),
                                median(ratios), TARGETS[c], note="output identical" if same else "OUTPUT DIFFERS"))
            elif c == "h":
                shim_t, nat_t = [], []
                for i in range(max(self.args.repeat, 10)):
                    shim_t.append(run1([exe, self.tcpdump, "--version"]).wall)
                    nat_t.append(run1([self.tcpdump, "--version"]).wall)
                s, n = median(shim_t), median(nat_t)
                rows.append(row("h", "tcpdump --version via mapi-preload", s, "native", n, s / n, None,
                                note="start-up cost %+.1f ms" % ((s - n) * 1000)))
        return rows

    def total_packets(self):
        if "packets" not in self.refs.data:
            self.refs.put("packets", trace_packets(self.trace))
        return self.refs.data["packets"]


# --- output -----------------------------------------------------------------------------------
def fmt_s(x):
    return "" if x is None else "%.3f" % x


def print_table(rows, out=sys.stdout):
    head = ("case", "what", "ours s", "reference", "ref s", "ratio", "target", "result")
    lines = []
    for r in rows:
        if r["unit"] in ("MB", "ms"):
            fmt = "%.0f MB" if r["unit"] == "MB" else "%.1f ms"
            ratio = "" if r["ratio"] is None else fmt % r["ratio"]
            target = "" if r["target"] is None else "<= " + fmt % r["target"]
        else:
            ratio = "" if r["ratio"] is None else "%.3f" % r["ratio"]
            target = "" if r["target"] is None else "<= %g" % r["target"]
        status = r["status"] if r["status"] != "n/a" else "n/a: " + r["note"]
        lines.append((r["case"], r["what"], fmt_s(r["ours_s"]), r["reference"], fmt_s(r["reference_s"]), ratio,
                      target, status))
    widths = [max(len(h), *(len(l[i]) for l in lines)) if lines else len(h) for i, h in enumerate(head)]
    widths[-1] = len(head[-1])
    fmtline = "  ".join("%%-%ds" % w for w in widths)
    print(fmtline % head, file=out)
    print("  ".join("-" * w for w in widths), file=out)
    for l in lines:
        print(fmtline % l, file=out)
    notes = [(r["case"], r["note"]) for r in rows if r["note"] and r["status"] != "n/a"]
    for case, note in notes:
        print("  %s: %s" % (case, note), file=out)


def generated_trace(args, packets, log):
    """The generated trace of `packets` packets in --traces-dir, made once."""
    os.makedirs(args.traces_dir, exist_ok=True)
    version = gentrace.generator_version()
    trace = os.path.join(args.traces_dir, "gen-%d-s%d-%s.pcap" % (packets, args.seed, version))
    drop_stale_traces(args.traces_dir, version, log)
    if not os.path.exists(trace):
        log("generating %s (%d packets, seed %d) ..." % (trace, packets, args.seed))
        st = gentrace.write_trace(trace, packets, seed=args.seed)
        log("  %d packets, %.2f GB in %.1f s (%.2f Mpps)" % (st.packets, st.file_bytes / 1e9, st.seconds,
                                                           st.packets / st.seconds / 1e6))
    return trace


def case_a2m(args, trace, log):
    """Case a (P1) on a 2 M-packet trace, where start-up is a larger share of the job."""
    same = not args.trace and args.packets == P1_SMALL
    small = trace if same else generated_trace(args, P1_SMALL, log)
    warm(small)
    log("case a2m (P1 on %s) ..." % os.path.basename(small))
    rows = [r for r in Bench(args, small).case_a(False) if r["case"] == "a"]
    for r in rows:                 # (the same target as case a)
        r.update(case="a2m", what="the same on a 2 M-packet trace (%s)" % os.path.basename(small))
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 2)[2],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--packets", type=gentrace.parse_size, default=10_000_000,
                    help="size of the generated trace (default 10M)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--trace", help="use this pcap instead of a generated one")
    ap.add_argument("--traces-dir", default=os.path.join(ROOT, "traces"))
    ap.add_argument("--repeat", type=int, default=5, help="runs per side; the median is reported (default 5)")
    ap.add_argument("--cases", default=",".join(ALL_CASES), help="comma-separated subset of %s" % ",".join(ALL_CASES))
    ap.add_argument("--ngrep-prefix", type=gentrace.parse_size, default=1_000_000,
                    help="packets ngrep reads before its time is scaled (default 1M)")
    ap.add_argument("--ngrep-repeat", type=int, default=3, help="at most this many ngrep runs (default 3)")
    ap.add_argument("--json", nargs="?", const="-", metavar="FILE",
                    help="write the results as JSON to FILE (default: stdout, instead of the table)")
    ap.add_argument("--strict", action="store_true", help="exit 1 when a target is missed too")
    args = ap.parse_args(argv)
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in cases if c not in ALL_CASES]
    if unknown:
        ap.error("unknown case(s) %s; choose from %s" % (", ".join(unknown), ", ".join(ALL_CASES)))
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")
    if tool("tcpdump") is None:
        print("bench: tcpdump is required (make deps installs it)", file=sys.stderr)
        return 2

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    if args.trace:
        trace = os.path.abspath(args.trace)
        if not os.path.exists(trace):
            ap.error("no such trace: %s" % trace)
    else:
        trace = generated_trace(args, args.packets, log)
    size = os.path.getsize(trace)
    avail = mem_available()
    if avail is not None and size > 0.8 * avail:
        log("WARNING: the trace (%.1f GB) may not fit in the page cache (%.1f GB available): "
            "times include disk reads" % (size / 1e9, avail / 1e9))
    t = time.perf_counter()
    warm(trace)
    log("trace %s: %.2f GB, page cache warmed in %.2f s" % (trace, size / 1e9, time.perf_counter() - t))
    load0 = os.getloadavg()
    ncpu = os.cpu_count() or 1
    busy = "  -- the machine is busy: ratios are only roughly comparable" if load0[0] > 0.5 * ncpu else ""
    log("load average %.2f %.2f %.2f on %d cores%s" % (load0 + (ncpu, busy)))

    bench = Bench(args, trace)
    rows = []
    try:
        if "a" in cases or "d" in cases:
            log("case a%s ..." % ("/d" if "d" in cases else ""))
            rows += [r for r in bench.case_a("d" in cases) if r["case"] != "a" and r["case"] != "a2"
                     or "a" in cases]
        if "b" in cases:
            log("case b ...")
            rows += bench.case_b()
        if "c" in cases:
            log("case c ...")
            rows += bench.case_c()
        if "e" in cases:
            log("case e ...")
            rows += bench.case_e()
        fgh = [c for c in ("f", "g", "h") if c in cases]
        if fgh:
            log("cases %s ..." % ",".join(fgh))
            rows += bench.case_fgh(fgh)
        if "s" in cases:
            log("case s (start-up) ...")
            rows += bench_startup.run(bench, make_prefix(trace, 1, bench.refs), log, row)
        if "a2m" in cases:
            rows += case_a2m(args, trace, log)
    except KeyboardInterrupt:
        log("interrupted: partial results")
    load1 = os.getloadavg()
    meta = dict(trace=trace, trace_bytes=size, packets=bench.total_packets(), repeat=args.repeat,
                load_before=load0, load_after=load1, cores=ncpu, python=sys.executable,
                problems=bench.problems)
    if args.json:
        text = json.dumps(dict(meta, rows=rows), indent=1)
        if args.json == "-":
            print(text)
        else:
            with open(args.json, "w") as f:
                f.write(text + "\n")
    if args.json != "-":
        print()
        print("trace: %s (%d packets, %.2f GB); median of %d runs per side; load %.2f before, %.2f after"
              % (trace, meta["packets"], size / 1e9, args.repeat, load0[0], load1[0]))
        print_table(rows)
        bench_startup.print_imports(rows)
        for p in bench.problems:
            print("!!! " + p)
    failed = any(r["status"] == "FAIL" for r in rows)
    return 1 if bench.problems or (args.strict and failed) else 0


if __name__ == "__main__":
    sys.exit(main())
