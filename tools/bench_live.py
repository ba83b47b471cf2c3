#!/usr/bin/env python3
"""Live capture benchmark: kernel drops of the ring backend against stock `tcpdump -i`, at the
highest rate tcpreplay reaches over a veth pair here (--topspeed).

    python tools/bench_live.py                      # 200k-packet generated trace, looped 5 times
    python tools/bench_live.py --packets 100000 --loops 3 --json out.json

Each run gets the same replay: a fresh pair of network namespaces joined by a veth pair,
tcpreplay --topspeed pinned to CPU 0 on one end, the capture pinned to CPU 1 on the other.
Runs:
  tcpdump      stock `tcpdump -i IF -w /dev/null` (its default buffer); drops from its exit report
  ring-1       MAPI ring backend, one flow: BPF_FILTER("tcp") + PKT_COUNTER (filter in the kernel)
  ring-1-user  the same flow with the kernel filter off (every packet to user space, as tcpdump)
  ring-8       eight flows, each a different BPF_FILTER + PKT_COUNTER (filters in the kernel)
  ring-8-user  the same eight flows with the kernel filter off (every packet to user space)
Drops are the kernel's (PACKET_STATISTICS tp_drops, what tcpdump reports as "dropped by
kernel"); MAPI's counts are also checked against the trace (tcpdump -r with the same filters).
Not a unit test: rates depend on the machine and on what else runs on it.
"""
import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tools import netns  # noqa: E402

EIGHT = ["tcp", "udp", "tcp port 80", "tcp port 443", "udp port 53", "icmp", "ip6", "tcp port 22"]


def tcpdump_count(path, expr):
    out = subprocess.run(["tcpdump", "-r", path, "-w", "-", expr], capture_output=True, timeout=600)
    n = 0
    data = out.stdout
    pos = 24
    endian = "<" if data[:4] == b"\xd4\xc3\xb2\xa1" else ">"
    import struct
    while pos + 16 <= len(data):
        incl = struct.unpack(endian + "I", data[pos + 8:pos + 12])[0]
        pos += 16 + incl
        n += 1
    return n


def run_tcpdump(trace, loops, args):
    with netns.VethPair() as net:
        p = net.spawn(net.ns_rx, ["taskset", "-c", "1", "tcpdump", "-i", net.rx_if, "-n", "-w", "/dev/null"],
                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 10
        line = ""
        while time.time() < deadline:          # "listening on ..." once it captures
            line = p.stderr.readline()
            if "listening" in line or not line:
                break
        sent = net.replay(trace, topspeed=True, loop=loops, timeout=600)
        time.sleep(1.0)
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=30)
    got = {k: int(v) for v, k in re.findall(r"(\d+) packets? (captured|received by filter|dropped by kernel)", err)}
    return dict(sent=sent, captured=got.get("captured"), received=got.get("received by filter"),
                drops=got.get("dropped by kernel"))


def run_mapi(trace, loops, flows, options, args):
    with netns.VethPair() as net:
        spec = dict(dev="ring:" + net.rx_if, options=options, register=["scampi.backends.afpacket.ring"],
                    flows=[{"functions": f} for f in flows], until=None, until_quiet_ms=1500,
                    timeout=600, settle=0.2)
        cap = net.capture(spec, cpu=1)
        sent = net.replay(trace, topspeed=True, loop=loops, timeout=600)
        out = cap.finish(timeout=600)
    if "error" in out:
        raise RuntimeError(out["error"])
    st = out["stats"]
    return dict(sent=sent, drops=st["kernel_drops"], freezes=st["kernel_freezes"],
                received=st["ps_recv"], delivered=st["delivered"],
                counts=[r[-1] for r in out["results"]],
                kernel_filter=out["info"].get("kernel_filter"))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trace", help="pcap to replay (default: a generated trace)")
    ap.add_argument("--packets", type=int, default=200000)
    ap.add_argument("--loops", type=int, default=5)
    ap.add_argument("--json", help="write the figures here too")
    args = ap.parse_args(argv)
    ok, why = netns.can_create()
    if not ok:
        print("cannot run: " + why)
        return 2
    tmp = tempfile.mkdtemp(prefix="bench_live.")
    try:
        return _bench(args, tmp)
    finally:
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)


def _bench(args, tmp):
    trace = args.trace
    if trace is None:
        from tools.gentrace import write_trace
        trace = os.path.join(tmp, "bench.pcap")
        write_trace(trace, packets=args.packets, seed=3)
    total = tcpdump_count(trace, "") * args.loops
    want = {e: tcpdump_count(trace, e) * args.loops for e in EIGHT}
    report = {"trace": trace, "loops": args.loops, "packets_sent": total}
    print("trace %s x %d loops = %d packets; tcpreplay --topspeed over a veth pair" % (trace, args.loops, total))

    r = run_tcpdump(trace, args.loops, args)
    report["tcpdump"] = r
    print("%-12s rate %9.0f pps  received %9s  dropped by kernel %9s"
          % ("tcpdump", r["sent"].get("pps") or 0, r["received"], r["drops"]))
    runs = [("ring-1", [[["BPF_FILTER", "tcp"], ["PKT_COUNTER"]]], {}),
            ("ring-1-user", [[["BPF_FILTER", "tcp"], ["PKT_COUNTER"]]], {"kernel_filter": False}),
            ("ring-8", [[["BPF_FILTER", e], ["PKT_COUNTER"]] for e in EIGHT], {}),
            ("ring-8-user", [[["BPF_FILTER", e], ["PKT_COUNTER"]] for e in EIGHT], {"kernel_filter": False})]
    for name, flows, opts in runs:
        r = run_mapi(trace, args.loops, flows, opts, args)
        exprs = ["tcp"] if name.startswith("ring-1") else EIGHT
        r["expected"] = [want[e] for e in exprs]
        r["exact"] = r["counts"] == r["expected"]
        report[name] = r
        print("%-12s rate %9.0f pps  received %9d  dropped by kernel %9d  (ring full %d times)  "
              "counts %s the trace's"
              % (name, r["sent"].get("pps") or 0, r["received"], r["drops"], r["freezes"],
                 "equal" if r["exact"] else "DIFFER from"))
    td = report["tcpdump"]["drops"] or 0
    for name, _, _ in runs:
        d = report[name]["drops"]
        print("drops: %s %d vs tcpdump %d" % (name, d, td))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
