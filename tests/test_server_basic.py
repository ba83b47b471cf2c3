"""mapid serves the MAPI calls: the same job gives the same results, packets, events and files
through a real mapid process as in-process, and the server's own calls (explain with client
owners, clients) and lifecycle (SIGTERM, SIGHUP) behave as documented."""
import os
import signal
import socket
import struct
import time

import pytest

import mapi
from helpers.server import Mapid, in_process, run_client, trace_fixtures, web_and_talkers

PACKETS = 30000
workdir, tracefile = trace_fixtures("scampi-server-basic-", PACKETS, seed=5)


@pytest.fixture
def mapid(tmp_path):
    with Mapid(tmp_path) as m:
        yield m


def run_job(path, outdir):
    """Five flows on one replay, read the way applications read them."""
    dev = mapi.create_offline_device(str(path))
    web, pkts, nbytes, talkers, top = web_and_talkers(mapi, dev)
    dns = mapi.create_flow(dev)
    mapi.apply_function(dns, "BPF_FILTER", "udp port 53")
    mapi.apply_function(dns, "SAMPLE", 10, mapi.PERIODIC)
    buf = mapi.apply_function(dns, "TO_BUFFER")
    mapi.connect(dns)
    sig = mapi.create_flow(dev)
    mapi.apply_function(sig, "STR_SEARCH", "GET /")
    tofile = mapi.apply_function(sig, "TO_FILE", mapi.MFF_PCAP, str(outdir / "get.pcap"))
    mapi.connect(sig)
    alert = mapi.create_flow(dev)
    th = mapi.apply_function(alert, "THRESHOLD", mapi.GREATER, (web, pkts), 1000)
    stats = mapi.apply_function(alert, "STATS", (web, nbytes))
    mapi.connect(alert)
    events = []
    mapi.set_event_callback(alert, th, events.append)
    mapi.start_offline_device(dev)
    packets = []
    mapi.loop(dns, buf, 0, packets.append)
    mapi.wait_offline_device(dev)
    out = dict(pkts=mapi.read_results(web, pkts), bytes=mapi.read_results(web, nbytes),
               top=mapi.read_results(talkers, top).value, buffer=mapi.read_results(dns, buf),
               file=mapi.read_results(sig, tofile).value, threshold=mapi.read_results(alert, th),
               stats=mapi.read_results(alert, stats).value, packets=packets,
               info=mapi.get_function_info(web, pkts), flow=mapi.get_flow_info(dns),
               dev=mapi.get_device_info(dev), explain=mapi.explain_data(dev))
    deadline = time.monotonic() + 10
    while not events and time.monotonic() < deadline:      # pushed after the batch
        time.sleep(0.01)
    out["events"] = [e._replace(fd=e.fd == alert) for e in events]   # fds differ per process
    mapi.delete_offline_device(dev)
    return out


def test_same_results_as_in_process(mapid, tracefile, tmp_path):
    (tmp_path / "local").mkdir()
    (tmp_path / "remote").mkdir()
    local = run_job(tracefile, tmp_path / "local")
    mapi.use_server(mapid.url)
    try:
        remote = run_job(tracefile, tmp_path / "remote")
    finally:
        mapi.use_server(None)
    for key in ("pkts", "bytes", "top", "buffer", "threshold", "stats", "events"):
        assert remote[key] == local[key], key
    assert type(remote["stats"]).__name__ == "Stats" and remote["stats"].mean == local["stats"].mean
    assert remote["top"][0].packets == local["top"][0].packets     # TopEntry fields by name
    assert len(remote["packets"]) == len(local["packets"]) == local["buffer"].value["written"] > 0
    assert remote["packets"] == local["packets"]                      # bytes, ts, seq, lengths
    assert remote["events"][0].value == 1001
    # TO_FILE: the client named the file, mapid wrote it through the client's descriptor
    assert remote["file"]["path"] == str(tmp_path / "remote" / "get.pcap")
    assert remote["file"]["packets"] == local["file"]["packets"] > 0
    assert (tmp_path / "remote" / "get.pcap").read_bytes() == (tmp_path / "local" / "get.pcap").read_bytes()
    for key in ("pkts_in", "pkts_out", "name", "args"):
        assert remote["info"][key] == local["info"][key]
    assert remote["flow"]["functions"] == local["flow"]["functions"]
    assert remote["dev"]["packets"] == local["dev"]["packets"] == PACKETS
    def strip(nodes):                  # descriptors numbered per process: compare their order
        fds = sorted({fd for n in nodes for fd, _ in n["owners"]})
        ref = lambda a: (fds.index(a[0]), a[1]) if isinstance(a, tuple) and len(a) == 2 else a
        return [(n["function"], repr([ref(a) for a in n["args"]]).replace("/remote/", "/local/"),
                 [(fds.index(fd), fid) for fd, fid in n["owners"]], n["pkts_in"], n["pkts_out"])
                for n in nodes]
    assert strip(remote["explain"]["nodes"]) == strip(local["explain"]["nodes"])


def test_explain_shows_clients_and_sharing(mapid, tracefile):
    """Two client processes ask for the same filter: one node, two client owners."""
    body = """
        dev = "replay"
        fd = mapi.create_flow(dev)
        mapi.apply_function(fd, "BPF_FILTER", "tcp port 80")
        c = mapi.apply_function(fd, "PKT_COUNTER")
        mapi.connect(fd)
        emit({"fd": fd})
        sys.stdin.readline()
    """
    mapid.stop()
    cfg = '[devices.replay]\nfile = "%s"\n' % tracefile
    with Mapid(mapid.dir, config=cfg) as m:
        from helpers.server import start_client
        procs = [start_client(m, body) for _ in range(2)]
        fds = [int(__import__("json").loads(p.stdout.readline())["fd"]) for p in procs]
        mapi.use_server(m.url)
        try:
            data = mapi.explain_data("replay")
            text = mapi.explain("replay")
            clients = mapi.clients()
        finally:
            mapi.use_server(None)
        for p in procs:
            p.stdin.write("\n")
            p.stdin.flush()
            p.wait(30)
    bpf = [n for n in data["nodes"] if n["function"] == "BPF_FILTER"]
    assert len(bpf) == 1 and bpf[0]["shared"]
    assert sorted(fd for fd, _ in bpf[0]["owners"]) == sorted(fds)
    for p in procs:
        assert "pid %d uid %d" % (p.pid, os.getuid()) in text
    assert data["device"] == "replay"                  # the name clients know, not the engine's
    mine = {c["pid"]: c for c in clients}
    for p, fd in zip(procs, fds):
        assert [f["fd"] for f in mine[p.pid]["flows"]] == [fd]
        assert mine[p.pid]["flows"][0]["functions"] == ["BPF_FILTER", "PKT_COUNTER"]


def test_errors_are_the_engines(mapid, tracefile):
    mapi.use_server(mapid.url)
    try:
        dev = mapi.create_offline_device(str(tracefile))
        fd = mapi.create_flow(dev)
        with pytest.raises(mapi.MapiError) as e:
            mapi.apply_function(fd, "BPF_FILTER", "tcp prt 80")
        assert e.value.code == 1009 and "tcp prt 80" in str(e.value)
        with pytest.raises(mapi.MapiError) as e:
            mapi.apply_function(fd, "NO_SUCH_FUNCTION")
        assert e.value.code == 1004
        c = mapi.apply_function(fd, "PKT_COUNTER")
        with pytest.raises(mapi.MapiError) as e:
            mapi.read_results(fd, c)
        assert e.value.code == 1007                          # not connected yet
        mapi.connect(fd)
        with pytest.raises(mapi.MapiError) as e:
            mapi.get_next_pkt(fd, c)
        assert e.value.code == 1015 and "TO_BUFFER" in str(e.value)
        with pytest.raises(mapi.MapiError) as e:
            mapi.create_offline_device(str(tracefile) + ".missing")
        assert e.value.code == 1010 and e.value.where["file"].endswith(".missing")
        with pytest.raises(mapi.MapiError) as e:
            mapi.wait_offline_device(dev)
        assert e.value.code == 1014
        mapi.delete_offline_device(dev)
        with pytest.raises(mapi.MapiError) as e:
            mapi.read_results(fd, c)
        assert e.value.code == 1001
    finally:
        mapi.use_server(None)


def test_object_layer_and_client_process(mapid, tracefile):
    """An unchanged program, pointed at mapid by MAPI_SERVER only."""
    body = """
        with mapi.OfflineDevice(%r) as dev:
            web = dev.flow()
            web.apply("BPF_FILTER", "tcp port 80")
            n = web.apply("PKT_COUNTER")
            buf = web.apply("TO_BUFFER")
            dev.run()
            emit({"count": n.value, "read": sum(1 for _ in buf), "server": mapi.client.installed() is not None})
    """ % str(tracefile)
    out, _ = run_client(mapid, body)
    expected = in_process(tracefile, "tcp port 80", "PKT_COUNTER")
    assert out == [{"count": expected, "read": expected, "server": True}]


def test_sigterm_flushes_files_and_removes_socket(mapid, tracefile, tmp_path):
    body = """
        dev = mapi.create_offline_device(%r)
        fd = mapi.create_flow(dev)
        mapi.apply_function(fd, "BPF_FILTER", "udp")
        mapi.apply_function(fd, "TO_FILE", mapi.MFF_PCAP, %r)
        mapi.connect(fd)
        mapi.start_offline_device(dev)
        mapi.wait_offline_device(dev)
        emit({"done": True})
        sys.stdin.readline()
    """ % (str(tracefile), str(tmp_path / "udp.pcap"))
    from helpers.server import start_client
    p = start_client(mapid, body)
    assert p.stdout.readline().strip() == '{"done": true}'
    assert mapid.stop() == 0
    assert not os.path.exists(mapid.socket)
    p.stdin.write("\n")
    p.stdin.close()
    p.wait(30)
    import subprocess
    ref = subprocess.run(["tcpdump", "-r", str(tracefile), "-w", str(tmp_path / "ref.pcap"), "udp"],
                         capture_output=True)
    assert ref.returncode == 0
    assert (tmp_path / "udp.pcap").read_bytes() == (tmp_path / "ref.pcap").read_bytes()
    log = mapid.log_text()
    assert "stopping" in log and "stopped" in log


def test_sighup_reloads_limits(tmp_path, tracefile):
    cfg = tmp_path / "c.toml"
    with Mapid(tmp_path, config="[limits]\nflows_per_client = 1\n") as m:
        mapi.use_server(m.url)
        try:
            dev = mapi.create_offline_device(str(tracefile))
            mapi.create_flow(dev)
            with pytest.raises(mapi.MapiError) as e:
                mapi.create_flow(dev)
            assert e.value.code == 1019 and "flows_per_client" in str(e.value) and "1" in str(e.value)
            m.config.write_text("[limits]\nflows_per_client = 3\n")
            m.signal(signal.SIGHUP)
            deadline = time.monotonic() + 10
            while "reloaded" not in m.log_text() and time.monotonic() < deadline:
                time.sleep(0.05)
            mapi.create_flow(dev)
            mapi.create_flow(dev)
            with pytest.raises(mapi.MapiError):
                mapi.create_flow(dev)
        finally:
            mapi.use_server(None)
    assert cfg is not None


def test_garbage_on_the_socket_does_not_hurt(mapid, tracefile):
    """Frames that are not the protocol: the offender is disconnected, mapid serves on."""
    import random
    rnd = random.Random(9)
    for i in range(200):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(mapid.socket)
        kind = i % 4
        if kind == 0:
            data = bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(1, 64)))
        elif kind == 1:
            data = struct.pack("<I", 1 << 30)               # an oversized frame
        elif kind == 2:
            body = bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(1, 40)))
            data = struct.pack("<I", len(body)) + body       # a frame that is no Envelope
        else:
            data = struct.pack("<I", 4) + b"\x08\x07\x10\x01"  # version 7, no call
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)         # a frame cut short ends with the connection
            s.settimeout(5)
            s.recv(4096)
        except OSError:
            pass
        s.close()
    assert mapid.proc.poll() is None
    out, _ = run_client(mapid, """
        dev = mapi.create_offline_device(%r)
        fd = mapi.create_flow(dev)
        c = mapi.apply_function(fd, "PKT_COUNTER")
        mapi.connect(fd); mapi.start_offline_device(dev); mapi.wait_offline_device(dev)
        emit({"packets": mapi.read_results(fd, c).value})
    """ % str(tracefile))
    assert out == [{"packets": PACKETS}]


def test_to_file_appends_and_keeps_one_writer(mapid, tracefile, tmp_path):
    """TO_FILE through mapid writes the client's descriptor: appending gives the in-process
    bytes, and a second client naming the same file (through a link) while the first writes
    it is refused."""
    def job(path, append):
        dev = mapi.create_offline_device(str(tracefile))
        fd = mapi.create_flow(dev)
        mapi.apply_function(fd, "BPF_FILTER", "udp")
        mapi.apply_function(fd, "TO_FILE", mapi.MFF_PCAP, str(path), append=append)
        mapi.connect(fd)
        mapi.start_offline_device(dev)
        mapi.wait_offline_device(dev)
        mapi.delete_offline_device(dev)
    local, remote = tmp_path / "local.pcap", tmp_path / "remote.pcap"
    job(local, False)
    job(local, True)
    os.symlink(remote, tmp_path / "link.pcap")
    mapi.use_server(mapid.url)
    try:
        job(remote, False)
        job(remote, True)
        dev = mapi.create_offline_device(str(tracefile))
        fd = mapi.create_flow(dev)
        mapi.apply_function(fd, "TO_FILE", mapi.MFF_PCAP, str(remote), append=True)
        out, _ = run_client(mapid, """
            fd = mapi.create_flow(mapi.create_offline_device(%r))
            try:
                mapi.apply_function(fd, "TO_FILE", mapi.MFF_PCAP, %r)
                emit(None)
            except mapi.MapiError as exc:
                emit([exc.code, str(exc)])
        """ % (str(tracefile), str(tmp_path / "link.pcap")))
        mapi.delete_offline_device(dev)
    finally:
        mapi.use_server(None)
    assert remote.read_bytes() == local.read_bytes()
    assert local.stat().st_size > 2 * 24
    code, text = out[0]
    assert code == mapi.EBUSY and str(tmp_path / "link.pcap") in text and "already being written" in text
