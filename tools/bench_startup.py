"""Start-up figures of `make bench` (issue 8): what a short job costs before its first packet.

  s1  mapi run -r ONE PKT_COUNTER (a one-packet file)  vs tcpdump -r ONE         ours <= 60 ms
  s2  the first pcap call of a preloaded tcpdump -r ONE: preloaded minus native      <= 100 ms
and `python -X importtime` of both, the median self time of each module over the runs, the top
entries side by side (the modules a start pays most for).

Runs are interleaved (ours, reference, ours...) and medians reported; on a loaded machine only
such side-by-side figures mean anything.  Imported by tools/bench.py, which prints the rows.
"""
import os
import statistics
import subprocess
import sys
import tempfile
import time

TARGETS = {"s1": 60.0, "s2": 100.0}           # ms
RUNS = 21
IMPORT_RUNS = 7
TOP = 10


def _run(cmd, env=None):
    """(wall, CPU) seconds of one run of `cmd`: the CPU time (user + system, from wait4) says
    what the start costs when the machine is too busy for wall times to mean much."""
    with tempfile.TemporaryFile() as err:
        t = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env,
                             stdin=subprocess.DEVNULL)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t
        p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode != 0:
            err.seek(0)
            raise RuntimeError("%s failed (exit %d): %s" % (" ".join(cmd), p.returncode,
                                                             err.read().decode(errors="replace")[-2000:]))
    return wall, ru.ru_utime + ru.ru_stime


def mapi_command():
    exe = os.path.join(os.path.dirname(sys.executable), "mapi")
    return [sys.executable, exe] if os.path.exists(exe) else [sys.executable, "-m", "mapi.cli"]


def preload_env(exe):
    """The environment mapi-preload gives a command (LD_PRELOAD of the shim)."""
    lib = subprocess.run([exe, "--print-path"], capture_output=True, text=True, timeout=300)
    if lib.returncode != 0:
        return None
    return dict(os.environ, LD_PRELOAD=lib.stdout.strip())


def import_profile(cmd, env=None, runs=IMPORT_RUNS):
    """{module: median self µs} of `cmd` run with import timing on (-X importtime, or
    MAPI_PCAP_IMPORTTIME in env for the shim's embedded interpreter); a module missing from a
    run counts 0 there.  Also the median total."""
    per, totals = {}, []
    for i in range(runs):
        p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                           stdin=subprocess.DEVNULL)
        total = 0
        for line in p.stderr.decode(errors="replace").splitlines():
            if not line.startswith("import time:") or "|" not in line:
                continue
            self_us, _, name = line[len("import time:"):].split("|")
            if not self_us.strip().isdigit():
                continue                         # the header line
            per.setdefault(name.strip(), [0] * runs)[i] = int(self_us)
            total += int(self_us)
        totals.append(total)
    return {m: statistics.median(v) for m, v in per.items()}, statistics.median(totals)


def run(bench, one, log, row):
    """The rows of s1 and s2 (the import tables in the first one's `imports` field); `row`
    makes a row as tools/bench.py prints it."""
    tcpdump, mapi = bench.tcpdump, mapi_command()
    ours_cmd = mapi + ["run", "-r", one, "PKT_COUNTER"]
    ref_cmd = [tcpdump, "-r", one]
    exe, why = bench.preload()
    env = preload_env(exe) if exe else None
    ours, ref, shim, native = [], [], [], []
    _run(ours_cmd)                         # a first start may scan the plugins: not measured
    for i in range(RUNS):
        ours.append(_run(ours_cmd))
        ref.append(_run(ref_cmd))
        if env is not None:
            shim.append(_run(ref_cmd, env))
            native.append(_run(ref_cmd))

    def ms(runs, k=0):
        return statistics.median(x[k] for x in runs) * 1e3
    o, r = ms(ours), ms(ref)
    log("  s1 mapi run %.1f ms (CPU %.1f), tcpdump -r %.1f ms (CPU %.1f); medians of %d"
        % (o, ms(ours, 1), r, ms(ref, 1), RUNS))
    imports = {"mapi run -r ONE PKT_COUNTER": import_profile([sys.executable, "-X", "importtime"]
                                                              + mapi[1:] + ours_cmd[len(mapi):])}
    rows = [row("s1", "start-up: mapi run -r ONE PKT_COUNTER (1 packet)", o / 1e3,
                "tcpdump -r ONE", r / 1e3, o, TARGETS["s1"], unit="ms",
                note="%.1fx tcpdump's; CPU %.1f ms vs %.1f ms; medians of %d interleaved runs"
                % (o / r, ms(ours, 1), ms(ref, 1), RUNS))]
    if env is None:
        rows.append(row("s2", "first pcap call of a preloaded tcpdump", status="n/a", note=why))
    else:
        cost = statistics.median([s[0] - n[0] for s, n in zip(shim, native)]) * 1e3
        cpu = statistics.median([s[1] - n[1] for s, n in zip(shim, native)]) * 1e3
        log("  s2 preloaded tcpdump -r %.1f ms (CPU %.1f), native %.1f ms (CPU %.1f)"
            % (ms(shim), ms(shim, 1), ms(native), ms(native, 1)))
        imports["preloaded tcpdump -r ONE (embedded)"] = import_profile(
            ref_cmd, dict(env, MAPI_PCAP_IMPORTTIME="1"))
        rows.append(row("s2", "first pcap call: preloaded tcpdump -r ONE minus native",
                        ms(shim) / 1e3, "native tcpdump -r ONE", ms(native) / 1e3,
                        cost, TARGETS["s2"], unit="ms",
                        note="CPU %+.1f ms; medians of %d paired differences" % (cpu, RUNS)))
    rows[0]["imports"] = {k: dict(total_us=t, top=top_entries(p)) for k, (p, t) in imports.items()}
    return rows


def top_entries(profile, n=TOP):
    return sorted(profile.items(), key=lambda kv: -kv[1])[:n]


def print_imports(rows, out=sys.stdout):
    """The import tables of the start-up rows, side by side."""
    tables = next((r["imports"] for r in rows if r.get("imports")), None)
    if not tables:
        return
    cols = []
    for title, t in tables.items():
        lines = ["%s: %.1f ms in all" % (title, t["total_us"] / 1e3)]
        lines += ["  %-34s %6.2f ms" % (m[:34], us / 1e3) for m, us in t["top"]]
        cols.append(lines)
    print("\npython -X importtime, median self time per module over %d runs (top %d):"
          % (IMPORT_RUNS, TOP), file=out)
    width = max(len(x) for x in cols[0]) + 4
    for i in range(max(len(c) for c in cols)):
        cells = [c[i] if i < len(c) else "" for c in cols]
        print("  " + cells[0].ljust(width) + "".join(cells[1:]), file=out)
