"""The remote transport gives what the in-process engine gives: the same job on the same trace
(replayed by a real mapid reached over gRPC with mutual TLS) has the same counters, TOP, STATS,
events and TO_BUFFER packets; and a client survives its server's restart (flows re-created,
counting from zero, marked as such)."""
import hashlib
import socket
import time

import pytest

import mapi
from mapi import api as local_api
from helpers.remote import RemoteMapid, count_grpc_calls, pki_fixture
from helpers import replay
from helpers.server import trace_fixtures, web_and_talkers

PACKETS = 30000
workdir, tracefile = trace_fixtures("scampi-remote-api-", PACKETS, seed=9)
pki = pki_fixture()


@pytest.fixture
def server(tmp_path, pki, workdir):
    with RemoteMapid(tmp_path, pki, traces=workdir) as m:
        yield m


class Local:
    """The in-process calls, under the client's names (events from mapi.events)."""

    def __getattr__(self, name):
        if name in ("set_event_callback", "get_next_event"):
            import importlib
            return getattr(importlib.import_module("mapi.events"), name)
        return getattr(local_api, name)


def run_job(m, path):
    dev = m.create_offline_device(path)
    web, pkts, nbytes, talkers, top = web_and_talkers(m, dev)
    dns = m.create_flow(dev)
    m.apply_function(dns, "BPF_FILTER", "udp")
    buf = m.apply_function(dns, "TO_BUFFER")
    m.connect(dns)
    alert = m.create_flow(dev)
    th = m.apply_function(alert, "THRESHOLD", mapi.GREATER, (web, pkts), 1000)
    stats = m.apply_function(alert, "STATS", (web, nbytes), 0, True)
    m.connect(alert)
    events = []
    m.set_event_callback(alert, th, events.append)
    m.start_offline_device(dev)
    digest, count, size = hashlib.sha256(), 0, 0
    reader = m.function_instance(dns, buf)
    while True:
        p = reader.next_packet(5.0)
        if p is None:
            break
        digest.update(p.data)
        count += 1
        size += p.caplen
    m.wait_offline_device(dev)
    out = dict(pkts=m.read_results(web, pkts), bytes=m.read_results(web, nbytes),
               top=m.read_results(talkers, top).value, stats=m.read_results(alert, stats),
               threshold=m.read_results(alert, th).value, packets=(count, size, digest.hexdigest()),
               buffer=m.read_results(dns, buf).value)
    deadline = time.monotonic() + 10
    while not events and time.monotonic() < deadline:
        time.sleep(0.01)
    out["events"] = [(e.ts, e.value, e.kind, e.seq) for e in events]
    m.delete_offline_device(dev)
    return out


def test_remote_equals_local(server, pki, tracefile):
    local = run_job(Local(), str(tracefile))
    client = mapi.client.connect(server.remote_url, **pki.tls())
    try:
        remote = run_job(client, tracefile.name)        # the sensor's file, by its name there
    finally:
        client.close()
    assert local["pkts"].value > 1000 and local["packets"][0] > 1000
    for key in ("pkts", "bytes", "stats"):
        assert remote[key] == local[key], key
    assert remote["top"] == local["top"]
    assert remote["threshold"] == local["threshold"] == 1
    assert remote["events"] == local["events"]
    assert remote["packets"] == local["packets"]
    assert remote["buffer"]["written"] == local["buffer"]["written"] == local["packets"][0]
    assert remote["buffer"]["dropped"] == 0


def test_remote_files_stay_in_their_directory(server, pki):
    client = mapi.client.connect(server.remote_url, **pki.tls())
    try:
        for path in ("../../etc/passwd", "/etc/passwd"):
            with pytest.raises(mapi.MapiError) as info:
                client.create_offline_device(path)
            assert info.value.code == mapi.EPERM and "outside" in str(info.value)
        with pytest.raises(mapi.MapiError) as info:
            client.create_offline_device("no-such-trace.pcap")
        assert info.value.code == mapi.EOPEN
        fd = client.create_flow("lo")
        with pytest.raises(mapi.MapiError) as info:          # no --remote-output given
            client.apply_function(fd, "TO_FILE", mapi.MFF_PCAP, "x.pcap")
        assert info.value.code == mapi.EPERM and "--remote-output" in str(info.value)
    finally:
        client.close()


def send_udp(n, port=9):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for i in range(n):
        s.sendto(b"scampi-%d" % i, ("127.0.0.1", port))
    s.close()


def wait_value(client, fd, fid, want, timeout=10):
    deadline = time.monotonic() + timeout
    while True:
        v = client.read_results(fd, fid).value
        if v >= want or time.monotonic() > deadline:
            return v
        time.sleep(0.05)


def test_server_restart_is_survived(tmp_path, pki):
    """Kill mapid: calls fail at once with ESERVER; start it again on the same port: the next
    call reconnects, the flow is re-created there and counts from zero (marked restarted)."""
    client = None
    with RemoteMapid(tmp_path, pki) as m:
        client = mapi.client.connect(m.remote_url, **pki.tls())
        fd = client.create_flow("lo")
        client.apply_function(fd, "BPF_FILTER", "udp dst port 9")
        cnt = client.apply_function(fd, "PKT_COUNTER")
        client.connect(fd)
        time.sleep(0.3)
        send_udp(25)
        assert wait_value(client, fd, cnt, 25) == 25
        m.kill()
        t0 = time.monotonic()
        with pytest.raises(mapi.MapiError) as info:
            client.read_results(fd, cnt)
        assert info.value.code == mapi.ESERVER
        assert time.monotonic() - t0 < client.tls.deadline
        port = m.port
    with RemoteMapid(tmp_path, pki, port=port):
        deadline = time.monotonic() + 15
        while True:
            try:
                before = client.read_results(fd, cnt).value
                break
            except mapi.MapiError:
                assert time.monotonic() < deadline
                time.sleep(0.3)
        assert before == 0
        info = client.get_flow_info(fd)
        assert len(info["restarted"]) == 1
        time.sleep(0.3)
        send_udp(7)
        assert wait_value(client, fd, cnt, 7) == 7
        client.close()


def test_mapi_server_environment(server, pki, tracefile):
    """MAPI_SERVER=grpcs://... with MAPI_TLS_*: an unchanged program's calls go to the remote
    mapid; a wrong certificate gives a MapiError naming the server, not a hang."""
    import json
    import subprocess
    import sys
    from helpers.remote import client_env
    body = ("import mapi, json\n"
            "dev = mapi.create_offline_device(%r)\n"
            "fd = mapi.create_flow(dev)\n"
            "mapi.apply_function(fd, 'BPF_FILTER', 'tcp port 80')\n"
            "c = mapi.apply_function(fd, 'PKT_COUNTER')\n"
            "mapi.connect(fd)\n"
            "mapi.start_offline_device(dev)\n"
            "mapi.wait_offline_device(dev)\n"
            "print(json.dumps(mapi.read_results(fd, c).value))\n" % tracefile.name)
    expected = replay(tracefile, [("BPF_FILTER", ("tcp port 80",), {}), ("PKT_COUNTER", (), {})],
                      buffer=False).results[1].value
    out = subprocess.run([sys.executable, "-c", body], capture_output=True, text=True, timeout=60,
                         env=client_env(pki, MAPI_SERVER=server.remote_url))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == expected
    bad = subprocess.run([sys.executable, "-c", body], capture_output=True, text=True, timeout=60,
                         env=client_env(pki, pki.expired, MAPI_SERVER=server.remote_url))
    assert bad.returncode != 0 and "MapiError" in bad.stderr and server.remote_url in bad.stderr


def test_a_sensor_away_is_logged_not_printed(server, pki):
    """A library does not print: a distributed flow with a sensor that is not there logs it
    under "mapi" (the application decides where that goes), and stderr stays empty -- though
    grpc loaded logging before any of MAPI's loggers was used."""
    import subprocess
    import sys
    from helpers.remote import client_env, free_port
    body = ("import mapi\n"
            "fd = mapi.create_flow('%s/lo, grpcs://127.0.0.1:%d/lo', deadline=1)\n"
            "c = mapi.apply_function(fd, 'PKT_COUNTER')\n"
            "mapi.connect(fd)\n"
            "r = mapi.read_results(fd, c)\n"
            "print(r.partial, len(r.missing))\n" % (server.remote_url, free_port()))
    out = subprocess.run([sys.executable, "-c", body], capture_output=True, text=True, timeout=60,
                         env=client_env(pki))
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "1"] and out.stderr == ""


def test_a_call_racing_the_sessions_end_fails_cleanly(server, pki):
    """The session's channel closed between the client's look at the session and its call (a
    killed server: the push stream's thread closes it): the call raises MapiError(ESERVER),
    not grpc's ValueError, and the next call opens a new session with the flow re-created."""
    import grpc
    from mapi.proto import grpc_stubs
    client = mapi.client.connect(server.remote_url, **pki.tls())
    try:
        fd = client.create_flow("lo")
        cnt = client.apply_function(fd, "PKT_COUNTER")
        client.connect(fd)
        s = client.session()
        closed = grpc.insecure_channel("127.0.0.1:1")   # the window, made to stay open:
        s.stub = grpc_stubs().MapiStub(closed)           # its calls meet a closed channel
        closed.close()                                   # (grpc: stub first, then close)
        with pytest.raises(mapi.MapiError) as info:
            client.read_results(fd, cnt)
        assert info.value.code == mapi.ESERVER and "channel was closed" in str(info.value)
        assert s.dead is info.value
        client.read_results(fd, cnt)        # lo's traffic is anyone's: the count is not checked
        assert len(client.get_flow_info(fd)["restarted"]) == 1 and client.session() is not s
    finally:
        client.close()


def test_create_flow_with_is_one_request(server, pki, tracefile, tmp_path, monkeypatch):
    """Over gRPC, create_flow_with (and the re-creation of a flow after a restart, which uses
    it) is one Call: the results equal the in-process engine's, and a failed step is named
    and leaves no flow on the sensor."""
    sent = count_grpc_calls(monkeypatch)
    local = Local()
    dev = local.create_offline_device(str(tracefile))
    lfd, lfids = mapi.api.create_flow_with(dev, [("BPF_FILTER", "tcp"), "PKT_COUNTER",
                                                 ("TOP", 3, "ip.src")])
    local.start_offline_device(dev)
    local.wait_offline_device(dev)
    want = [local.read_results(lfd, f).value for f in lfids[1:]]
    local.delete_offline_device(dev)
    client = mapi.client.connect(server.remote_url, **pki.tls())
    try:
        rdev = client.create_offline_device(tracefile.name)
        for name in ("BPF_FILTER", "PKT_COUNTER", "TOP"):
            client.describe_function(name)
        sent.clear()
        fd, fids = client.create_flow_with(rdev, [("BPF_FILTER", "tcp"), "PKT_COUNTER",
                                                  ("TOP", 3, "ip.src")])
        assert sent == ["create_flow_with"] and fids == [1, 2, 3]
        with pytest.raises(mapi.MapiError) as err:
            client.create_flow_with(rdev, ["PKT_COUNTER", ("BPF_FILTER", "tcp port")])
        assert err.value.code == mapi.EFILTER
        assert err.value.where["step"] == "function 2 of 2 (BPF_FILTER)"
        client.start_offline_device(rdev)
        client.wait_offline_device(rdev)
        got = [client.read_results(fd, f).value for f in fids[1:]]
        flows = client.get_device_info(rdev)["flows"]
    finally:
        client.close()
    assert got == want and want[0] > 1000
    assert len(flows) == 1                               # the failed one is gone


def test_remote_destinations_stay_under_remote_output(tmp_path, pki, workdir, tracefile):
    """A remote FLOW_REPORT's "file:NAME" destination is written under --remote-output (mapid
    opens it there and hands the function the descriptor); "fd:N" names a descriptor a
    remote client has none of and is refused, as is a name outside the directory."""
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "m").mkdir()
    with RemoteMapid(tmp_path / "m", pki, traces=workdir,
                     extra=["--remote-output", str(out)]) as m:
        client = mapi.client.connect(m.remote_url, **pki.tls())
        try:
            dev = client.create_offline_device(tracefile.name)
            fd = client.create_flow(dev)
            f = client.apply_function(fd, "FLOW_REPORT", "ipfix", "file:flows.ipfix",
                                      active_timeout="1h", idle_timeout="1h")
            client.connect(fd)
            errors = {}
            for dest in ("fd:1", "file:../escape.ipfix"):
                other = client.create_flow(dev)
                with pytest.raises(mapi.MapiError) as info:
                    client.apply_function(other, "FLOW_REPORT", "ipfix", dest)
                errors[dest] = info.value
            client.start_offline_device(dev)
            client.wait_offline_device(dev)
            got = client.read_results(fd, f).value
            client.close_flow(fd)
        finally:
            client.close()
        m.stop()
    assert got["exported"] > 0
    assert (out / "flows.ipfix").stat().st_size == got["export_bytes"]
    assert errors["fd:1"].code == mapi.EPERM and "descriptor" in str(errors["fd:1"])
    assert errors["file:../escape.ipfix"].code == mapi.EPERM
    assert not (tmp_path / "escape.ipfix").exists()
