#!/usr/bin/env python3
"""The remote transport against the in-process engine, side by side, in one run.

    python tools/bench_remote.py [--packets 1000000] [--runs 3] [--ring-mb 64]

A TO_BUFFER on a private replay of a generated trace (lossless: the replay waits for the
reader), read to the end as packets (get_next_pkt's objects, mapi.Packet) and counted in bulk:
  in-process   the engine in this process, the ring read in place
  remote       a mapid on 127.0.0.1 reached over gRPC with mutual TLS (certificates made with
               mapi-admin certs' functions), the ring streamed as batches
Alternating runs, best of --runs; prints packets/s of each and remote / in-process, then the
floors under the remote figure, as packets/s of the same size: mutual TLS alone (Python's ssl,
two processes) and a bare grpcio stream with mutual TLS (one and two connections).
"""
import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import mapi                                     # noqa: E402
from mapi import api                            # noqa: E402
from mapi.admin import certs                    # noqa: E402
from tools.floors import grpc_ceiling, tls_ceiling           # noqa: E402
from tools.gentrace import write_trace          # noqa: E402


def read_all(m, path, as_packets, ring_bytes=64 << 20):
    """(packets, bytes, seconds) of one replay read to the end through API object m."""
    dev = m.create_offline_device(path)
    fd = m.create_flow(dev)
    buf = m.apply_function(fd, "TO_BUFFER", mapi.WAIT, ring_bytes)
    m.connect(fd)
    reader = m.function_instance(fd, buf)
    t0 = time.perf_counter()
    m.start_offline_device(dev)
    n = size = 0
    if as_packets:
        while True:
            p = reader.next_packet(5.0)
            if p is None:
                break
            n += 1
            size += p.caplen
    else:
        n, size = reader.drain_all()
    elapsed = time.perf_counter() - t0
    m.wait_offline_device(dev)
    m.close_flow(fd)
    m.delete_offline_device(dev)
    return n, size, elapsed


def start_mapid(workdir, traces):
    certs.make_ca(workdir)
    server = certs.issue(workdir, "server", "server", ["127.0.0.1"])
    client = certs.issue(workdir, "client", "client")
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    config = os.path.join(workdir, "mapid.toml")     # job control: the bench's certificate may
    with open(config, "w") as f:                      # do anything, nothing else is granted
        f.write('[jobcontrol]\ndatabase = "%s"\n[jobcontrol.grants]\n"cert:client" = "all"\n'
                % os.path.join(workdir, "mapid.db"))
    env = {k: v for k, v in os.environ.items() if k != "MAPI_SERVER"}
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.Popen([sys.executable, "-m", "mapi.server", "--socket",
                             os.path.join(workdir, "mapid.sock"), "--config", config,
                             "--listen", "127.0.0.1:%d" % port,
                             "--tls-cert", server[0], "--tls-key", server[1], "--tls-client-ca",
                             os.path.join(workdir, "ca.pem"), "--remote-traces", traces,
                             "--log-level", "warning"], env=env, cwd=ROOT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            break
        except OSError:
            time.sleep(0.05)
    tls = dict(ca=os.path.join(workdir, "ca.pem"), cert=client[0], key=client[1])
    return proc, mapi.client.connect("grpcs://127.0.0.1:%d" % port, **tls)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--packets", type=int, default=1000000)
    p.add_argument("--runs", type=int, default=3)
    # a fresh ring's pages are zeroed on first touch (shared memory: ~0.7 ms per MB on this VM), a
    # one-time cost per flow that a short run counts: --ring-mb 8 shows the steady rate better
    p.add_argument("--ring-mb", type=int, default=64, help="TO_BUFFER size in MB (default 64)")
    args = p.parse_args(argv)
    work = tempfile.mkdtemp(prefix="scampi-bench-remote-")
    trace = os.path.join(work, "bench.pcap")
    write_trace(trace, packets=args.packets, seed=2)
    proc, client = start_mapid(work, work)
    try:
        best = {}
        for _ in range(args.runs):
            for label, m, path in (("in-process", api, trace), ("remote", client, "bench.pcap")):
                for as_packets in (True, False):
                    n, size, sec = read_all(m, path, as_packets, args.ring_mb << 20)
                    key = (label, as_packets)
                    rate = n / sec
                    if rate > best.get(key, (0,))[0]:
                        best[key] = (rate, n, size, sec)
        size_mb = os.path.getsize(trace) / 1e6
        print("TO_BUFFER (%d MB) read to the end: %d packets, %.1f MB trace, best of %d runs"
              % (args.ring_mb, args.packets, size_mb, args.runs))
        for as_packets, what in ((True, "as packets (get_next_pkt objects)"),
                                 (False, "counted in bulk (drain)")):
            local, remote = best[("in-process", as_packets)], best[("remote", as_packets)]
            assert local[1] == remote[1] == args.packets and local[2] == remote[2], (local, remote)
            print("  %-34s in-process %10.0f pkt/s   remote (gRPC+TLS, loopback) %10.0f pkt/s"
                  "   remote/in-process %5.1f %%"
                  % (what, local[0], remote[0], 100.0 * remote[0] / local[0]))
        # what the stream carries per packet at least: the bytes and a 32-byte ring header
        local = best[("in-process", False)]
        per_packet = (local[2] + 32 * local[1]) / local[1]
        ceiling = tls_ceiling(certs.issue(work, "ceiling-server", "server", ["127.0.0.1"]),
                              certs.issue(work, "ceiling-client", "client"),
                              os.path.join(work, "ca.pem"), local[2] + 32 * local[1], args.runs)
        print("  %-34s %.2f GB/s = %10.0f pkt/s of %.0f bytes   ceiling/in-process %5.1f %%"
              % ("mutual TLS alone on loopback", ceiling / 1e9, ceiling / per_packet, per_packet,
                 100.0 * ceiling / per_packet / local[0]))
        print("    (two processes, 4 MB writes, no MAPI: a bound on any TLS transport here)")
        total = local[2] + 32 * local[1]
        floor_tls = (certs.issue(work, "floor-server", "server", ["127.0.0.1"]),
                     certs.issue(work, "floor-client", "client"), os.path.join(work, "ca.pem"))
        for streams in (1, 2):
            rate = grpc_ceiling(*floor_tls, total, args.runs, streams=streams)
            print("  %-34s %.2f GB/s = %10.0f pkt/s of %.0f bytes   ceiling/in-process %5.1f %%"
                  % ("gRPC + mutual TLS alone, %d stream%s" % (streams, "s"[:streams > 1]),
                     rate / 1e9, rate / per_packet, per_packet,
                     100.0 * rate / per_packet / local[0]))
        print("    (a grpcio server process streaming one pre-built 1 MiB message over and over,"
              " read as bytes;\n     2 streams: two channels, two TCP connections: the remote"
              " transport itself, no MAPI)")
    finally:
        client.close()
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
