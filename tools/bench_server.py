#!/usr/bin/env python3
"""mapid against the in-process engine, side by side on one machine, in one run.

    python tools/bench_server.py [--packets 10000000] [--clients 64] [--runs 3]
                                 [--replay-packets 6000000]

1. The P1 job (one flow: BPF_FILTER "tcp port 80" + PKT_COUNTER + BYTE_COUNTER) on a large
   generated trace: in-process, then through mapid (the trace opened by the client and passed
   as a descriptor), alternating, best of --runs.
2. TO_BUFFER drained to the end (a lossless ring on a private replay): in-process (drained in C
   by a thread of the same process) and through mapid (the ring mapped into the client, drained
   in C in place); also get_next_pkt from Python for both.
3. --clients client processes x 4 flows on one replay device of one mapid (a trace of
   --replay-packets: its replay lasts long enough for a few hundred trips of each kind):
   results compared with the in-process engine's, packets lost, mapid's memory, and the
   control round trip measured while the replay runs, in three shapes taking turns: the issue's
   create_flow + apply_function (PKT_COUNTER) + connect, create_flow + 2 apply_function
   (BPF_FILTER, PKT_COUNTER) + connect, and the issue's job as one request
   (mapi.create_flow_with); each flow closed afterwards.  Alternately on an idle
   device and on the replaying device itself (its graph holds the clients' flows); the same
   trips on the in-process engine while it replays, side by side.
"""
import argparse
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import mapi                                     # noqa: E402
from tools.floors import Echo                  # noqa: E402
from tools.control_trips import (SHAPES, control_round_trips, pct, waits,  # noqa: E402
                                 trip_calls, trip_name)
from tools.gentrace import write_trace          # noqa: E402

ENV = {k: v for k, v in os.environ.items() if k != "MAPI_SERVER"}
ENV["PYTHONPATH"] = ROOT + os.pathsep + ENV.get("PYTHONPATH", "")


# --- the multi-client job (also used by tests/test_server_scale.py) ----------------------------
def flows(i, buffer_bytes=4 << 20):
    """The four flows of client i: two shared by every client, one shared prefix, one its own."""
    return [
        [("BPF_FILTER", ("tcp port 80",)), ("PKT_COUNTER", ()), ("BYTE_COUNTER", ())],
        [("BPF_FILTER", ("udp port 53",)), ("TO_BUFFER", (mapi.WAIT, buffer_bytes))],
        [("BPF_FILTER", ("ip",)), ("TOP", (3, "ip.src"))],
        [("BPF_FILTER", ("tcp and len > %d" % (60 + 16 * i),)), ("PKT_COUNTER", ())],
    ]


CLIENT = textwrap.dedent("""
    import json, sys, zlib
    import mapi
    i, spec = int(sys.argv[1]), json.loads(sys.argv[2])
    def emit(obj):
        print(json.dumps(obj, default=repr), flush=True)
    fds = []
    for steps in spec:
        fd = mapi.create_flow(sys.argv[3])
        fids = [mapi.apply_function(fd, name, *args) for name, args in steps]
        mapi.connect(fd)
        fds.append((fd, fids))
    emit({"ready": i})
    sys.stdin.readline()
    fd, fids = fds[1]
    n, crc = 0, 0
    if sys.argv[4] == "crc":            # every packet's bytes and time, checked in Python
        while True:
            p = mapi.get_next_pkt(fd, fids[1])
            if p is None:
                break
            n += 1
            crc = zlib.crc32(p.data, zlib.crc32(p.ts.to_bytes(8, "little"), crc))
    else:                               # counted in C, in place (packets and bytes)
        n, crc = mapi.api.function_instance(fd, fids[1]).drain_all()
    mapi.wait_offline_device(sys.argv[3])
    out = [[mapi.read_results(fd, f).value for f in fids] for fd, fids in fds]
    emit({"client": i, "results": out, "read": n, "crc": crc})
""")


def start_clients(url, count, dev="replay", read="crc", buffer_bytes=4 << 20):
    """`count` client processes; read: "crc" (each packet in Python) or "drain" (in C)."""
    env = dict(ENV, MAPI_SERVER=url)
    return [subprocess.Popen([sys.executable, "-c", CLIENT, str(i),
                              json.dumps(flows(i, buffer_bytes)), dev, read],
                             env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            for i in range(count)]


def _drain(fd, fids):
    mapi.api.function_instance(fd, fids[1]).drain_all()


def local_results(path, count, buffer_bytes=4 << 20, trips=False):
    """The same flows of `count` clients on the in-process engine: (results, packets, crc,
    captured bytes of the buffered packets[, control round trips on the replaying device])."""
    dev = mapi.create_offline_device(str(path))
    made = []
    try:
        for i in range(count):
            mine = []
            for steps in flows(i, buffer_bytes):
                fd = mapi.create_flow(dev)
                mine.append((fd, [mapi.apply_function(fd, name, *args) for name, args in steps]))
                mapi.connect(fd)
            made.append(mine)
        mapi.start_offline_device(dev)
        # every lossless ring read at once, or a full one holds the replay for all
        readers = [threading.Thread(target=_drain, args=mine[1]) for mine in made[1:]]
        for t in readers:
            t.start()
        local_trips = {}
        if trips:
            d = mapi.api.find_device(dev)
            tripper = threading.Thread(target=lambda: local_trips.update(control_round_trips(
                lambda: dev if d.state == "running" else None)))
            tripper.start()
            readers.append(tripper)
        fd, fids = made[0][1]
        n, crc, nbytes = 0, 0, 0
        while True:
            p = mapi.get_next_pkt(fd, fids[1])
            if p is None:
                break
            n += 1
            nbytes += p.caplen
            crc = zlib.crc32(p.data, zlib.crc32(p.ts.to_bytes(8, "little"), crc))
        for t in readers:
            t.join()
        mapi.wait_offline_device(dev)
        results = [[[mapi.read_results(fd, f).value for f in fids] for fd, fids in mine]
                   for mine in made]
        out = json.loads(json.dumps(results, default=repr)), n, crc, nbytes
        if trips:           # keyed as mapid's replaying device is
            def as_replay(key):
                return tuple("replay" if part == dev else as_replay(part)
                             if isinstance(part, tuple) else part for part in key)
            local_trips = {as_replay(key): ms for key, ms in local_trips.items()}
            return out + (local_trips,)
        return out
    finally:
        mapi.delete_offline_device(dev)


# --- mapid ------------------------------------------------------------------------------------
class Server:
    def __init__(self, config=""):
        self.dir = tempfile.mkdtemp(prefix="bench-mapid-")
        self.socket = os.path.join(self.dir, "mapid.sock")
        self.url = "unix:" + self.socket
        cfg = os.path.join(self.dir, "mapid.toml")
        if "[jobcontrol" not in config:        # its own resource database, everyone allowed
            config += '\n[jobcontrol]\ndatabase = "%s/mapid.db"\n[jobcontrol.grants]\n"*" = "all"\n' \
                '[jobcontrol.capacity]\ncpu_budget = 1e6\n' \
                % self.dir
        with open(cfg, "w") as f:
            f.write(config)
        self.log = open(os.path.join(self.dir, "mapid.log"), "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "mapi.server", "--socket", self.socket,
                                      "--config", cfg, "--log-level", "warning"],
                                     env=ENV, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            s = socket.socket(socket.AF_UNIX)
            try:
                s.connect(self.socket)
                s.close()
                return
            except OSError:
                s.close()
                time.sleep(0.05)
        raise SystemExit("mapid did not start; see %s" % self.log.name)

    def rss(self):
        out = {}
        for line in open("/proc/%d/status" % self.proc.pid):
            k = line.split(":")[0]
            if k in ("VmRSS", "VmHWM", "RssAnon", "RssShmem"):
                out[k] = int(line.split()[1]) // 1024
        return out

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)     # its socket, database and log


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def side_by_side(server, runs, job):
    """Alternate in-process and mapid runs of job(); best time of each and the results."""
    local, remote = [], []
    for _ in range(runs):
        local.append(timed(job))
        mapi.use_server(server.url)
        try:
            remote.append(timed(job))
        finally:
            mapi.use_server(None)
    lbest, rbest = min(local)[0], min(remote)[0]
    return lbest, rbest, local[0][1], remote[0][1]


def p1_job(path):
    def job():
        dev = mapi.create_offline_device(path)
        fd = mapi.create_flow(dev)
        mapi.apply_function(fd, "BPF_FILTER", "tcp port 80")
        c = mapi.apply_function(fd, "PKT_COUNTER")
        b = mapi.apply_function(fd, "BYTE_COUNTER")
        mapi.connect(fd)
        mapi.start_offline_device(dev)
        mapi.wait_offline_device(dev)
        out = (mapi.read_results(fd, c).value, mapi.read_results(fd, b).value)
        mapi.delete_offline_device(dev)
        return out
    return job


def buffer_job(path, python):
    def job():
        dev = mapi.create_offline_device(path)
        fd = mapi.create_flow(dev)
        buf = mapi.apply_function(fd, "TO_BUFFER", mapi.WAIT, 64 << 20)
        mapi.connect(fd)
        mapi.start_offline_device(dev)
        n = nbytes = 0
        if python:
            while True:
                p = mapi.get_next_pkt(fd, buf)
                if p is None:
                    break
                n += 1
                nbytes += p.caplen
        else:
            n, nbytes = mapi.api.function_instance(fd, buf).drain_all()
        mapi.wait_offline_device(dev)
        mapi.delete_offline_device(dev)
        return n, nbytes
    return job


def many_clients(path, count, buffer_bytes, total):
    server = Server('[devices.replay]\nfile = "%s"\n[devices.idle]\nfile = "%s"\n' % (path, path))
    try:
        procs = start_clients(server.url, count, read="drain", buffer_bytes=buffer_bytes)
        for p in procs:
            p.stdout.readline()
        rss0 = server.rss()
        echo = Echo(server.dir)
        mapi.use_server(server.url)
        try:
            mapi.start_offline_device("replay")
            for p in procs:
                p.stdin.write("go\n")
                p.stdin.flush()
            turns = itertools.cycle(("idle", "replay"))
            checked = [0.0]

            def pick():       # alternately an idle device and the replaying one, while it runs
                # the replay's state is asked every 50 ms, not before every trip: a device's
                # info lists its 256 flows, mapid work that is no part of the job measured
                now = time.monotonic()
                if now - checked[0] >= 0.05:
                    checked[0] = now
                    if mapi.get_device_info("replay")["state"] != "running":
                        return None
                return next(turns)
            trips = control_round_trips(pick, floor=echo)
            got = [json.loads(p.stdout.readline()) for p in procs]
            clients = mapi.clients()
            packets = mapi.get_device_info("replay")["packets"]
        finally:
            mapi.use_server(None)
            echo.close()
        rss1 = server.rss()
        for p in procs:
            p.wait(60)
    finally:
        server.stop()
    return got, clients, packets, rss0, rss1, trips


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--packets", type=int, default=10000000, help="P1/TO_BUFFER trace size")
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--client-packets", type=int, default=1000000,
                    help="trace size of get_next_pkt in Python (TO_BUFFER part)")
    ap.add_argument("--replay-packets", type=int, default=6000000,
                    help="multi-client trace size (the control trips run while it replays)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--parts", default="p1,buffer,clients", help="what to run (comma-separated)")
    ap.add_argument("--dir", default=os.path.join(ROOT, "traces"), help="where traces are kept")
    args = ap.parse_args(argv)
    parts = set(args.parts.split(","))
    os.makedirs(args.dir, exist_ok=True)
    print("mapid vs the in-process engine, side by side (%d cores, load average %.2f)"
          % (os.cpu_count(), os.getloadavg()[0]))
    if parts & {"p1", "buffer"}:
        side_by_side_parts(args, parts)
    ok = True
    if "clients" in parts:
        ok = clients_part(args)
    return 0 if ok else 1


def trace_file(directory, packets, seed):
    """A generated trace, named as tools/bench.py names it (so both benches share it)."""
    from tools.gentrace import generator_version
    path = os.path.join(directory, "gen-%d-s%d-%s.pcap" % (packets, seed, generator_version()))
    if not os.path.exists(path):
        write_trace(path, packets=packets, seed=seed)
    return path


def side_by_side_parts(args, parts):
    big = trace_file(args.dir, args.packets, 1)
    print("trace %s: %d packets, %.0f MB" % (os.path.relpath(big, ROOT), args.packets,
                                              os.path.getsize(big) / 1e6))
    server = Server()
    try:
        if "p1" in parts:
            p1_part(server, args, big)
        if "buffer" in parts:
            buffer_part(server, args, big)
    finally:
        server.stop()


def p1_part(server, args, big):
    lt, rt, lres, rres = side_by_side(server, args.runs, p1_job(big))
    print("\nP1 (BPF_FILTER \"tcp port 80\" + PKT_COUNTER + BYTE_COUNTER), best of %d" % args.runs)
    print("  in-process  %7.3f s  %6.2f Mpps" % (lt, args.packets / lt / 1e6))
    print("  mapid       %7.3f s  %6.2f Mpps  = %.3fx the in-process time  (results %s)"
          % (rt, args.packets / rt / 1e6, rt / lt, "equal" if lres == rres else "DIFFER"))


def buffer_part(server, args, big):
    print("\nTO_BUFFER read to the end (lossless ring, every packet), best of %d" % args.runs)
    small = trace_file(args.dir, args.client_packets, 64)
    for python in (False, True):
        # a packet at a time in Python is slow: that one reads the smaller trace
        lt, rt, lres, rres = side_by_side(server, args.runs, buffer_job(small if python else big,
                                                                        python))
        how = "get_next_pkt in Python" if python else "drained in C"
        print("  %-24s in-process %6.2f Mpps   mapid (shared ring) %6.2f Mpps = %.2fx  (%s)"
              % (how, lres[0] / lt / 1e6, rres[0] / rt / 1e6, lt / rt,
                 "same packets and bytes" if lres == rres else "DIFFER %s %s" % (lres, rres)))


def clients_part(args):
    small = trace_file(args.dir, args.replay_packets, 64)
    print("\n%d client processes x 4 flows on one replay (%d packets)" % (args.clients,
                                                                       args.replay_packets))
    buffer_bytes = 8 << 20       # the clients drain while the replay runs
    got, clients, packets, rss0, rss1, trips = many_clients(small, args.clients, buffer_bytes,
                                                           args.replay_packets)
    expected, n, _, nbytes, local_trips = local_results(small, args.clients, buffer_bytes,
                                                        trips=True)
    exact = sum(1 for i, g in enumerate(got) if g["results"] == expected[i]
                and g["read"] == n and g["crc"] == nbytes)
    lost = sum(c["drops"] for c in clients)
    print("  results equal to the in-process engine's: %d of %d clients; packets lost: %d"
          % (exact, len(got), lost))
    print("  mapid memory (MB): before the replay %s, after %s" % (rss0, rss1))
    print("  control round trips while packets flow (load average now %.2f; the calling process "
          "runs at normal priority):" % os.getloadavg()[0])
    for shape in SHAPES:
        print("   %s:" % trip_name(shape))
        calls = trip_calls(shape)
        for name, key, src in (("mapid, an idle device", ("idle", shape), trips),
                               ("mapid, the replaying device", ("replay", shape), trips),
                               ("floor: %d bare Unix-socket echo%s" % (calls, "es"[:2 * (calls > 1)]),
                                ("echo", calls), trips),
                               ("in-process, the replaying device", ("replay", shape),
                                local_trips)):
            xs = src.get(key, [])
            if xs:
                print("    %-34s %4d trips, p50 %6.2f ms, p99 %6.2f ms, max %6.2f ms" % (
                    name, len(xs), pct(xs, 50), pct(xs, 99), max(xs)))
                waited = waits(xs, src.get(("waited", key), []))
                if waited is not None:
                    print("    %34s the slowest 1 %%: %.2f ms, of it %.2f waiting for a core; "
                          "p99 less the waits %.2f ms" % (("",) + waited))
    for name, src in (("mapid", trips), ("in-process", local_trips)):
        closes = src.get(("close", "replay"), [])
        if closes:
            print("    close_flow on the replaying device, %s: p50 %.2f ms" % (name,
                                                                            pct(closes, 50)))
    return exact == len(got) and lost == 0


if __name__ == "__main__":
    sys.exit(main())
