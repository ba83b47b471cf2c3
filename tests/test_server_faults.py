"""Faults: a client killed with SIGKILL loses its flows and unshared nodes, the others keep
theirs and their exact results; mapid killed ends every blocked call of every client with a
MapiError (no hang) and a restarted mapid serves new flows; a client that never reads its
buffer loses only its own packets."""
import json
import signal
import subprocess
import time

import pytest

import mapi
from helpers.server import Mapid, in_process, open_dir, start_client, trace

PACKETS = 200000


@pytest.fixture(scope="module")
def tracefile():
    return trace(open_dir("scampi-server-faults-"), PACKETS, seed=21)


def tcpdump_count(path, expr):
    out = subprocess.run(["tcpdump", "-n", "-q", "-r", str(path), expr], capture_output=True, check=True)
    return len(out.stdout.splitlines())


@pytest.fixture
def mapid(tmp_path, tracefile):
    with Mapid(tmp_path, config='[devices.replay]\nfile = "%s"\n' % tracefile) as m:
        yield m


FLOWS = """
    fd = mapi.create_flow("replay")
    mapi.apply_function(fd, "BPF_FILTER", "tcp port 80")
    c = mapi.apply_function(fd, "PKT_COUNTER")
    mapi.connect(fd)
    mine = mapi.create_flow("replay")
    mapi.apply_function(mine, "BPF_FILTER", %r)
    b = mapi.apply_function(mine, "BYTE_COUNTER")
    mapi.connect(mine)
    emit({"fd": fd, "fid": c, "mine": mine, "b": b})
    line = sys.stdin.readline()
    mapi.wait_offline_device("replay")
    emit({"count": mapi.read_results(fd, c).value, "bytes": mapi.read_results(mine, b).value})
"""


def nodes(m):
    return [(n["function"], n["args"], sorted(fd for fd, _ in n["owners"]))
            for n in mapi.explain_data("replay")["nodes"]]


def test_killed_client_leaves_no_nodes_and_others_are_exact(mapid, tracefile):
    survivor = start_client(mapid, FLOWS % "udp")
    victim = start_client(mapid, FLOWS % "icmp")
    s = json.loads(survivor.stdout.readline())
    v = json.loads(victim.stdout.readline())
    mapi.use_server(mapid.url)
    try:
        before = nodes(mapid)
        assert ("BPF_FILTER", ["tcp port 80"], sorted([s["fd"], v["fd"]])) in before
        assert ("BPF_FILTER", ["icmp"], [v["mine"]]) in before
        mapi.start_offline_device("replay")
        t0 = time.monotonic()
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        gone = None
        while time.monotonic() - t0 < 10:
            after = nodes(mapid)
            if not any(v["fd"] in owners or v["mine"] in owners for _, _, owners in after):
                gone = time.monotonic() - t0
                break
            time.sleep(0.005)
        print("victim's flows and nodes gone %.3f s after SIGKILL" % gone)
        assert gone is not None, after
        assert ("BPF_FILTER", ["tcp port 80"], [s["fd"]]) in after      # shared node stays
        assert not any(a == ["icmp"] for _, a, _ in after)               # unshared node gone
        assert [c["pid"] for c in mapi.clients() if c["pid"] == victim.pid] == []
    finally:
        mapi.use_server(None)
    survivor.stdin.write("go\n")
    survivor.stdin.flush()
    result = json.loads(survivor.stdout.readline())
    survivor.wait(60)
    assert result["count"] == tcpdump_count(tracefile, "tcp port 80")
    assert result["bytes"] == in_process(tracefile, "udp", "BYTE_COUNTER")


BLOCKED = """
    import threading
    from mapi.constants import GREATER
    dev = mapi.create_offline_device(%r)
    stuck = mapi.create_flow(dev)                       # a lossless buffer nobody reads
    mapi.apply_function(stuck, "TO_BUFFER", mapi.WAIT, 1 << 20)
    mapi.connect(stuck)
    mapi.start_offline_device(dev)
    fd = mapi.create_flow("replay")                     # never started: nothing comes
    c = mapi.apply_function(fd, "PKT_COUNTER")
    buf = mapi.apply_function(fd, "TO_BUFFER")
    mapi.connect(fd)
    alert = mapi.create_flow("replay")
    th = mapi.apply_function(alert, "THRESHOLD", GREATER, (fd, c), 10)
    mapi.connect(alert)
    results = {}
    def blocked(name, call):
        try:
            call()
            results[name] = [None, "returned", time.monotonic()]
        except mapi.MapiError as exc:
            results[name] = [exc.code, str(exc), time.monotonic()]
    calls = {"get_next_pkt": lambda: mapi.get_next_pkt(fd, buf),
             "loop": lambda: mapi.loop(fd, buf, 0, lambda p: None),
             "get_next_event": lambda: mapi.get_next_event(alert, th),
             "wait_offline_device": lambda: mapi.wait_offline_device(dev)}
    threads = [threading.Thread(target=blocked, args=kv) for kv in calls.items()]
    for t in threads: t.start()
    time.sleep(0.3)
    emit({"blocked": sorted(k for k in calls if k not in results)})
    for t in threads: t.join(10)
    emit(results)
    sys.stdin.readline()                                # mapid restarted
    fd = mapi.create_flow("replay")
    c = mapi.apply_function(fd, "PKT_COUNTER")
    mapi.connect(fd)
    mapi.start_offline_device("replay"); mapi.wait_offline_device("replay")
    emit({"count": mapi.read_results(fd, c).value})
"""


def test_killed_mapid_ends_every_blocked_call(tmp_path, tracefile):
    cfg = '[devices.replay]\nfile = "%s"\n' % tracefile
    m = Mapid(tmp_path, config=cfg)
    client = start_client(m, BLOCKED % str(tracefile))
    try:
        assert json.loads(client.stdout.readline()) == {"blocked": ["get_next_event", "get_next_pkt",
                                                                      "loop", "wait_offline_device"]}
        t_kill = time.monotonic()
        m.kill()
        results = json.loads(client.stdout.readline())
        # every blocked call came back (get_next_pkt and loop wait on one ring: both must end)
        assert sorted(results) == ["get_next_event", "get_next_pkt", "loop", "wait_offline_device"]
        for name, (code, text, t_ret) in results.items():
            print("%s ended %.3f s after mapid was killed: %s" % (name, t_ret - t_kill, text))
            assert code == mapi.ESERVER, (name, text)
            assert "closed the connection" in text
            assert t_ret - t_kill < 5
        m2 = Mapid(tmp_path, config=cfg)          # a restarted mapid on the same socket
        try:
            client.stdin.write("restarted\n")
            client.stdin.flush()
            again = json.loads(client.stdout.readline())
            client.wait(60)
            assert again == {"count": PACKETS}
        finally:
            m2.stop()
    finally:
        if client.poll() is None:           # a failed run leaves no client behind
            client.kill()
            client.wait()
        m.__exit__(None, None, None)


READER = """
    size, reads = int(sys.argv[1]), sys.argv[2] == "reads"
    fd = mapi.create_flow("replay")
    mapi.apply_function(fd, "BPF_FILTER", "tcp")
    buf = mapi.apply_function(fd, "TO_BUFFER", mapi.WAIT, size)
    mapi.connect(fd)
    emit({"fd": fd})
    sys.stdin.readline()
    n = mapi.api.function_instance(fd, buf).drain_all()[0] if reads else 0
    mapi.wait_offline_device("replay")
    emit({"read": n, "buffer": mapi.read_results(fd, buf).value,
          "stats": mapi.stats("replay")["flow_drops"]})
"""


def test_slow_reader_loses_only_its_own(mapid, tracefile):
    slow = start_client(mapid, READER, args=[str(1 << 20), "never"])    # never reads its buffer
    fast = start_client(mapid, READER, args=[str(256 << 20), "reads"])
    sfd = json.loads(slow.stdout.readline())["fd"]
    json.loads(fast.stdout.readline())
    rss0 = mapid.rss_kb()
    mapi.use_server(mapid.url)
    try:
        mapi.start_offline_device("replay")
        for p in (slow, fast):
            p.stdin.write("go\n")
            p.stdin.flush()
        mapi.wait_offline_device("replay")
        clients = {c["pid"]: c for c in mapi.clients()}
    finally:
        mapi.use_server(None)
    s = json.loads(slow.stdout.readline())
    f = json.loads(fast.stdout.readline())
    slow.wait(60)
    fast.wait(60)
    rss1 = mapid.rss_kb()
    print("mapid RSS before %s, after %s (kB)" % (rss0, rss1))
    tcp = tcpdump_count(tracefile, "tcp")
    assert f["read"] == tcp and f["buffer"]["dropped"] == 0            # the reader got all
    assert s["buffer"]["written"] + s["buffer"]["dropped"] == tcp      # counted per flow
    assert s["buffer"]["dropped"] > 0
    assert s["stats"][str(sfd)] == s["buffer"]["dropped"]               # mapi.stats per flow
    assert clients[slow.pid]["drops"] == s["buffer"]["dropped"] and clients[fast.pid]["drops"] == 0
    # the slow ring stays 1 MiB: mapid's memory does not take what the client does not read
    assert rss1["RssAnon"] - rss0["RssAnon"] < 64 * 1024
