"""The `mapi` command with a MAPI server (`mapi --server URL ...` or MAPI_SERVER): `mapi clients`
lists who is connected, `mapi explain --device` shows a server's device with every client's
nodes, `mapi devices` the server's devices, and `mapi run` gives what it gives in-process and
what tcpdump counts.  Real mapid, real client processes, the installed `mapi` command."""
import json
import os
import subprocess
import sys

import pytest

import mapi
from helpers import tcpdump_pcap
from helpers.server import Mapid, clean_env, open_dir, start_client, trace

PACKETS = 20000
MAPI = os.path.join(os.path.dirname(sys.executable), "mapi")


@pytest.fixture(scope="module")
def tracefile():
    return trace(open_dir("scampi-server-cli-"), PACKETS, seed=41)


@pytest.fixture
def mapid(tmp_path, tracefile):
    with Mapid(tmp_path, config='[devices.replay]\nfile = "%s"\n' % tracefile) as m:
        yield m


def mapi_cmd(*argv, server=None, cwd=None):
    """(exit code, stdout, stderr) of the installed `mapi` command; server: MAPI_SERVER."""
    env = clean_env(**({"MAPI_SERVER": server} if server else {}))
    p = subprocess.run([MAPI, *map(str, argv)], capture_output=True, text=True, env=env,
                       cwd=cwd, timeout=120)
    return p.returncode, p.stdout, p.stderr


CLIENT = """
    fd = mapi.create_flow("replay")
    mapi.apply_function(fd, "BPF_FILTER", "tcp port 80")
    c = mapi.apply_function(fd, "PKT_COUNTER")
    mapi.connect(fd)
    emit({"fd": fd})
    sys.stdin.readline()                       # the test started the replay
    mapi.wait_offline_device("replay")
    emit({"count": mapi.read_results(fd, c).value})
    sys.stdin.readline()
"""


def comm(pid):
    with open("/proc/%d/comm" % pid) as f:
        return f.read().strip()


def clients_of(mapid, count):
    procs = [start_client(mapid, CLIENT) for _ in range(count)]
    fds = [json.loads(p.stdout.readline())["fd"] for p in procs]
    return procs, fds


def finish(procs):
    for p in procs:
        if p.poll() is None:
            p.stdin.close()
            p.wait(60)


def test_clients_lists_each_client_and_its_flows(mapid, tracefile):
    procs, fds = clients_of(mapid, 2)
    try:
        code, out, err = mapi_cmd("--server", mapid.url, "clients", "--json")
        assert code == 0, err
        listed = {c["pid"]: c for c in json.loads(out)}
        for p, fd in zip(procs, fds):
            c = listed[p.pid]
            assert (c["uid"], c["program"]) == (os.getuid(), comm(p.pid))
            assert [(f["fd"], f["device"], f["functions"]) for f in c["flows"]] == \
                [(fd, "replay", ["BPF_FILTER", "PKT_COUNTER"])]
        # the listing process is a client too, without flows
        assert [c["flows"] for c in listed.values() if c["program"] == "mapi"] == [[]]
        mapi.use_server(mapid.url)
        try:
            mapi.start_offline_device("replay")
        finally:
            mapi.use_server(None)
        for p in procs:
            p.stdin.write("\n")
            p.stdin.flush()
        counts = [json.loads(p.stdout.readline())["count"] for p in procs]
        assert counts == [len(tcpdump_pcap(tracefile, "tcp port 80"))] * 2
        # MAPI_SERVER instead of --server; one line per client, its flows with -f
        code, out, err = mapi_cmd("clients", "-f", server=mapid.url)
        assert code == 0, err
        for p, fd in zip(procs, fds):
            line = next(x for x in out.splitlines() if x.split()[1:2] == [str(p.pid)])
            assert line.split()[2:4] == [str(os.getuid()), comm(p.pid)]
            assert line.split()[5:7] == ["1", str(PACKETS)]        # one flow, packets into it
        assert out.count("BPF_FILTER PKT_COUNTER; in %d, out %d" % (PACKETS, counts[0])) == 2
        assert out.splitlines()[-1] == "3 clients connected"
    finally:
        finish(procs)


def test_clients_needs_a_server():
    code, out, err = mapi_cmd("clients")
    assert code == 2 and "--server" in err and "MAPI error 1020" in err
    code, out, err = mapi_cmd("--server", "unix:/nonexistent/mapid.sock", "clients")
    assert code == 2 and "cannot reach the MAPI server at /nonexistent/mapid.sock" in err


def test_explain_device_shows_every_clients_nodes(mapid):
    procs, fds = clients_of(mapid, 2)
    try:
        code, out, err = mapi_cmd("--server", mapid.url, "explain", "--device", "replay")
        assert code == 0, err
        lines = out.splitlines()
        assert lines[0].startswith("device replay (savefile, created)")
        bpf = next(x for x in lines if "BPF_FILTER('tcp port 80')" in x)
        for p, fd in zip(procs, fds):
            assert "%d.1 (pid %d uid %d %s)" % (fd, p.pid, os.getuid(), comm(p.pid)) in bpf
        assert "shared" in bpf
        code, out, err = mapi_cmd("--server", mapid.url, "explain", "--device", "replay", "--json")
        nodes = json.loads(out)["nodes"]
        assert [n["function"] for n in nodes] == ["BPF_FILTER", "PKT_COUNTER"]
        assert [len(n["owner_labels"]) for n in nodes] == [2, 2]          # one prefix, two clients
        code, out, err = mapi_cmd("explain", "--device", "replay")          # no server
        assert code == 2 and "--server" in err
    finally:
        finish(procs)


def test_run_and_devices_through_the_server(mapid, tracefile, tmp_path):
    flow = 'BPF_FILTER("udp") PKT_COUNTER BYTE_COUNTER'
    code, local, err = mapi_cmd("run", "-r", tracefile, flow, "--json")
    assert code == 0, err
    code, remote, err = mapi_cmd("--server", mapid.url, "run", "-r", tracefile, flow, "--json")
    assert code == 0, err
    local, remote = json.loads(local), json.loads(remote)
    assert remote["flows"] == local["flows"]
    recs = tcpdump_pcap(tracefile, "udp")
    counts = [f["result"] for f in remote["flows"][0]["functions"][1:]]
    assert counts == [len(recs), sum(r[1] for r in recs)]
    # -w: mapid writes the client's file through the descriptor the client opened
    code, out, err = mapi_cmd("run", "-r", tracefile, "-w", tmp_path / "udp.pcap", "udp",
                              server=mapid.url, cwd=tmp_path)
    assert code == 0, err
    ref = subprocess.run(["tcpdump", "-r", str(tracefile), "-w", str(tmp_path / "ref.pcap"), "udp"],
                         capture_output=True)
    assert ref.returncode == 0
    assert (tmp_path / "udp.pcap").read_bytes() == (tmp_path / "ref.pcap").read_bytes()
    # what needs the in-process engine says so
    code, out, err = mapi_cmd("--server", mapid.url, "run", "-r", tracefile, "--interval", "1s", "udp")
    assert code == 2 and "--interval" in err and "MAPI server" in err
    code, out, err = mapi_cmd("--server", mapid.url, "devices", "--json")
    assert code == 0, err
    devices = json.loads(out)
    assert devices["server"] == mapid.url
    assert [(d["name"], d["backend"], d["offline"], d["path"]) for d in devices["devices"]] == \
        [("replay", "savefile", True, str(tracefile))]
