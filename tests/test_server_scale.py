"""64 client processes x 4 flows each on one replay device of one mapid: every result equals
the in-process engine's on the same trace, no packet is lost, identical prefixes run once, and
mapid's memory stays bounded (printed)."""
import json
import zlib

import pytest

import mapi
from helpers.server import Mapid, open_dir, start_client, trace

CLIENTS = 64
PACKETS = 100000


def flows(i):
    """The four flows of client i: two shared by every client, one shared prefix, one its own."""
    return [
        [("BPF_FILTER", ("tcp port 80",)), ("PKT_COUNTER", ()), ("BYTE_COUNTER", ())],
        [("BPF_FILTER", ("udp port 53",)), ("TO_BUFFER", (mapi.WAIT, 4 << 20))],
        [("BPF_FILTER", ("ip",)), ("TOP", (3, "ip.src"))],
        [("BPF_FILTER", ("tcp and len > %d" % (60 + 16 * i),)), ("PKT_COUNTER", ())],
    ]


CLIENT = """
    import zlib
    i = int(sys.argv[1])
    spec = json.loads(sys.argv[2])
    fds = []
    for steps in spec:
        fd = mapi.create_flow("replay")
        fids = [mapi.apply_function(fd, name, *args) for name, args in steps]
        mapi.connect(fd)
        fds.append((fd, fids))
    emit({"ready": i})
    sys.stdin.readline()
    fd, fids = fds[1]
    n, crc = 0, 0
    while True:
        p = mapi.get_next_pkt(fd, fids[1])
        if p is None:
            break
        n += 1
        crc = zlib.crc32(p.data, zlib.crc32(p.ts.to_bytes(8, "little"), crc))
    mapi.wait_offline_device("replay")
    out = [[mapi.read_results(fd, f).value for f in fids] for fd, fids in fds]
    emit({"client": i, "results": out, "read": n, "crc": crc})
"""


def local_results(path):
    """The same 4 x 64 flows on the in-process engine (one device, one replay)."""
    dev = mapi.create_offline_device(str(path))
    made = []
    try:
        for i in range(CLIENTS):
            mine = []
            for steps in flows(i):
                fd = mapi.create_flow(dev)
                fids = [mapi.apply_function(fd, name, *args) for name, args in steps]
                mapi.connect(fd)
                mine.append((fd, fids))
            made.append(mine)
        mapi.start_offline_device(dev)
        fd, fids = made[0][1]
        n, crc = 0, 0
        while True:
            p = mapi.get_next_pkt(fd, fids[1])
            if p is None:
                break
            n += 1
            crc = zlib.crc32(p.data, zlib.crc32(p.ts.to_bytes(8, "little"), crc))
        for fd, fids in [f for mine in made[1:] for f in mine if f is mine[1]]:
            while mapi.api.function_instance(fd, fids[1]).drain(1.0) is not None:
                pass
        mapi.wait_offline_device(dev)
        results = [[[mapi.read_results(fd, f).value for f in fids] for fd, fids in mine]
                   for mine in made]
        return results, n, crc
    finally:
        mapi.delete_offline_device(dev)


def jsonable(v):
    return json.loads(json.dumps(v, default=repr))


def test_64_clients_exact_and_bounded(tmp_path):
    path = trace(open_dir("scampi-server-scale-"), PACKETS, seed=64)
    with Mapid(tmp_path, config='[devices.replay]\nfile = "%s"\n' % path) as m:
        procs = [start_client(m, CLIENT, args=[str(i), json.dumps(flows(i))]) for i in range(CLIENTS)]
        for i, p in enumerate(procs):
            line = p.stdout.readline()
            assert json.loads(line) == {"ready": i}, p.stderr.read()
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
        for p in procs:
            p.wait(60)
    print("mapid with %d clients x 4 flows: RSS before the replay %s kB, after %s kB"
          % (CLIENTS, rss_before, rss_after))
    expected, n, crc = local_results(path)
    for i, g in enumerate(got):
        assert g["client"] == i
        assert g["results"] == jsonable(expected[i]), i
        assert g["read"] == n and g["crc"] == crc, i
        buf = g["results"][1][1]
        assert buf["dropped"] == 0 and buf["written"] == n
    assert sum(c["drops"] for c in clients) == 0
    # identical prefixes ran once: one node per shared filter for all 64 clients
    nodes = data["nodes"]
    for expr in ("tcp port 80", "udp port 53", "ip"):
        same = [x for x in nodes if x["function"] == "BPF_FILTER" and x["args"] == [expr]]
        assert len(same) == 1 and len({fd for fd, _ in same[0]["owners"]}) == CLIENTS, expr
    # mapid's memory: the rings hold what the clients had not read yet, nothing grows per packet
    assert rss_after["RssAnon"] < 512 * 1024
