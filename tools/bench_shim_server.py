#!/usr/bin/env python3
"""The libpcap drop-in in server mode, measured side by side with the stock libpcap.

    python tools/bench_shim_server.py [--runs 15] [--live-only | --startup-only] [--packets N]

Start-up: `tcpdump --version` and `tcpdump -r` on a one-packet file, run natively, preloaded
through a mapid (MAPI_SERVER: the drop-in's C client, no Python in tcpdump) and preloaded
in-process (the embedded engine, for reference), in turn; wall time (this process's clock around the run, the
same small overhead for every mode) and peak RSS (GNU time's %M), median of --runs.

Live: eight `tcpdump -i` on one end of a veth pair (namespaces made here, tools/netns.py),
tcpreplay --topspeed from the other end (and at --pps): eight native tcpdumps (eight sockets),
then eight preloaded ones on one mapid in the receiving namespace (one socket): packet sockets
on the interface, what each tcpdump wrote against what was replayed, kernel drops as each
tcpdump reports them, CPU seconds of the set (the tcpdumps, plus mapid for the server set).
tcpreplay's top speed is not the same for the two sets, so each set also runs at the rate the
other reached (rows "=native", "=server")."""
import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tools.shim_live import printed, run_set, shim_library  # noqa: E402


def one_packet_file(directory):
    """A pcap with one TCP packet."""
    import struct
    frame = bytes.fromhex("000102030405000102030406080045000028000100004006f97cc0000201c0000202"
                          "3039005000000001000000005002ffff00000000")
    path = os.path.join(directory, "one-packet.pcap")
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 262144, 1))
        f.write(struct.pack("<IIII", 1700000000, 0, len(frame), len(frame)) + frame)
    return path


def measure(argv, env, scratch):
    """(wall seconds, peak RSS in MiB, exit code) of one run.  The peak is /usr/bin/time's
    (GNU time, %M): a child forked straight from this Python process would carry the
    interpreter's own peak in its rusage."""
    t0 = time.monotonic()
    r = subprocess.run(["/usr/bin/time", "-o", scratch, "-f", "%M %x"] + argv, env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.monotonic() - t0
    with open(scratch) as f:
        kb, rc = f.read().split()[-2:]
    return wall, int(kb) / 1024.0, int(rc) if r.returncode == 0 else r.returncode


def startup(runs):
    from tests.helpers.server import Mapid
    d = tempfile.mkdtemp(prefix="bench-shim-")
    one = one_packet_file(d)
    scratch = os.path.join(d, "time.out")
    mapid = Mapid(d)
    base = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "MAPI_SERVER")}
    lib = shim_library()
    modes = [("native", base), ("server", dict(base, LD_PRELOAD=lib, MAPI_SERVER=mapid.url)),
             ("in-process", dict(base, LD_PRELOAD=lib))]
    commands = [("tcpdump --version", ["tcpdump", "--version"]),
                ("tcpdump -r one-packet.pcap", ["tcpdump", "-n", "-r", one])]
    print("start-up and peak RSS: median of %d runs each, modes in turn; load average before: %.1f"
          % (runs, os.getloadavg()[0]))
    print("%-28s %-11s %10s %10s %10s %10s" % ("command", "mode", "wall ms", "min ms", "max ms",
                                               "peak MiB"))
    try:
        for label, argv in commands:
            samples = {m: [] for m, _ in modes}
            for name, env in modes:           # warm-up: caches, the BPF compiler's first load
                measure(argv, env, scratch)
            for _ in range(runs):
                for name, env in modes:
                    samples[name].append(measure(argv, env, scratch))
            for name, _ in modes:
                walls = [s[0] * 1000 for s in samples[name]]
                rss = [s[1] for s in samples[name]]
                bad = [s[2] for s in samples[name] if s[2] != 0]
                print("%-28s %-11s %10.1f %10.1f %10.1f %10.1f%s" % (
                    label, name, statistics.median(walls), min(walls), max(walls),
                    statistics.median(rss), "  (exit %s)" % bad[0] if bad else ""))
            nat, srv = samples["native"], samples["server"]
            print("%-28s server - native: %+.1f ms start-up, server / native: %.2fx peak RSS"
                  % ("", (statistics.median(s[0] for s in srv) -
                          statistics.median(s[0] for s in nat)) * 1000,
                     statistics.median(s[1] for s in srv) / statistics.median(s[1] for s in nat)))
    finally:
        mapid.stop()
        shutil.rmtree(d, ignore_errors=True)


@contextlib.contextmanager
def _removed(directory):
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def live(packets, pps_list):
    from tools.gentrace import write_trace
    from tools.netns import VethPair, can_create
    ok, why = can_create()
    if not ok:
        print("live: skipped (%s)" % why)
        return
    d = tempfile.mkdtemp(prefix="bench-shim-live-")
    os.chmod(d, 0o755)
    trace = os.path.join(d, "trace.pcap")
    write_trace(trace, packets=packets, seed=3)
    os.chmod(trace, 0o644)
    expected = printed(trace)
    print("\nlive: 8 x tcpdump -i on one veth end, %d packets replayed (tools/gentrace seed 3); "
          "load average before: %.1f" % (expected.count(b"\n"), os.getloadavg()[0]))
    print("  exact: tcpdumps whose file prints what the trace prints; lost: replayed packets a "
          "tcpdump did not write (min/max of the 8); drops: what the 8 report as dropped by "
          "the kernel, summed (in server mode each reports the one shared socket's)")
    print("  CPU s: the tcpdumps' (their lifetime) + mapid's during the replay; mapid+setup: "
          "mapid's from the first tcpdump's start (connects, rings faulted in)")
    print("%-10s %-7s %7s %10s %6s %15s %9s %9s %8s %7s %12s" % (
        "rate", "set", "sockets", "sent/s", "exact", "lost min/max", "drops", "tcpdumps", "mapid",
        "CPU s", "mapid+setup"))
    sent = expected.count(b"\n")

    def one(label, mode, pps):
        work = tempfile.mkdtemp(dir=d)
        out = run_set(net, trace, n=8, mode=mode, pps=pps, topspeed=pps is None, workdir=work)
        dumps = out["tcpdumps"]
        exact = sum(printed(t["file"]) == expected for t in dumps)
        shutil.rmtree(work, ignore_errors=True)      # eight copies of the trace
        lost = [sent - (t["captured"] or 0) for t in dumps]
        drops = sum(t["dropped"] or 0 for t in dumps)
        cpu_t = sum(t["cpu"] for t in dumps)
        rate = out["replay"].get("pps") or 0
        print("%-10s %-7s %7d %10.0f %4d/8 %15s %9d %9.2f %8.2f %7.2f %12.2f" % (
            label, mode, out["sockets"], rate, exact, "%d/%d" % (min(lost), max(lost)),
            drops, cpu_t, out["mapid_cpu"], cpu_t + out["mapid_cpu"], out["mapid_cpu_all"]))
        return rate

    with VethPair() as net, _removed(d):
        for pps in pps_list:
            rates = {mode: one("top" if pps is None else "%d pps" % pps, mode, pps)
                     for mode in ("native", "server")}
            if pps is None:
                # tcpreplay's top speed differs between the sets (they leave it different CPU):
                # each set again at the rate the other one reached, so that each pair of rows
                # compares the same load
                one("=native", "server", int(rates["native"]))
                one("=server", "native", int(rates["server"]))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--packets", type=int, default=200000)
    ap.add_argument("--pps", type=int, action="append", default=None,
                    help="a fixed replay rate besides --topspeed (repeatable)")
    ap.add_argument("--startup-only", action="store_true")
    ap.add_argument("--live-only", action="store_true")
    args = ap.parse_args(argv)
    if not args.live_only:
        startup(args.runs)
    if not args.startup_only:
        live(args.packets, [None] + (args.pps or [100000, 50000]))


if __name__ == "__main__":
    main()
