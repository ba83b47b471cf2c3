"""64 client processes x 4 flows each on one replay device of one mapid: every result equals
the in-process engine's on the same trace, every buffered packet arrives with its bytes and
time (CRC), identical prefixes run once, and mapid's memory stays bounded (printed).  The job
is tools/bench_server.py's, which also times it."""
import json

import mapi
from helpers.server import Mapid, open_dir, trace
from tools.bench_server import local_results, start_clients

CLIENTS = 64
PACKETS = 100000


def test_64_clients_exact_and_bounded(tmp_path):
    path = trace(open_dir("scampi-server-scale-"), PACKETS, seed=64)
    with Mapid(tmp_path, config='[devices.replay]\nfile = "%s"\n' % path) as m:
        procs = start_clients(m.url, CLIENTS, read="crc")
        try:
            for i, p in enumerate(procs):
                assert json.loads(p.stdout.readline()) == {"ready": i}
            mapi.use_server(m.url)
            try:
                data = mapi.explain_data("replay")
                rss_before = m.rss_kb()
                mapi.start_offline_device("replay")
                for p in procs:
                    p.stdin.write("go\n")
                    p.stdin.flush()
                got = [json.loads(p.stdout.readline()) for p in procs]
                clients = mapi.clients()
                rss_after = m.rss_kb()
            finally:
                mapi.use_server(None)
        finally:
            for p in procs:
                p.stdin.close()
                p.wait(60)
    print("mapid with %d clients x 4 flows: RSS before the replay %s kB, after %s kB"
          % (CLIENTS, rss_before, rss_after))
    expected, n, crc, _ = local_results(path, CLIENTS)
    for i, g in enumerate(got):
        assert g["client"] == i
        assert g["results"] == expected[i], i
        assert g["read"] == n and g["crc"] == crc, i
        buf = g["results"][1][1]
        assert buf["dropped"] == 0 and buf["written"] == n
    assert sum(c["drops"] for c in clients) == 0
    # identical prefixes ran once: one node per shared filter for all 64 clients
    nodes = data["nodes"]
    for expr in ("tcp port 80", "udp port 53", "ip"):
        same = [x for x in nodes if x["function"] == "BPF_FILTER" and x["args"] == [expr]]
        assert len(same) == 1 and len({fd for fd, _ in same[0]["owners"]}) == CLIENTS, expr
    # mapid's own memory does not grow with the packets (the rings are the clients' buffers)
    assert rss_after["RssAnon"] < 512 * 1024
