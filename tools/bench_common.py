"""What the benchmarks share: running whole processes side by side (each child reaped with wait4
for its own peak RSS), the stock tools' reference counts cached next to a trace, trace helpers,
and the result rows and their table.  Used by tools/bench.py and the benches beside it."""
import json
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time


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
