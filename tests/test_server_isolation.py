"""Isolation between mapid's clients: a client reads, closes or explains only its own flows,
and mapid never reaches a file its client could not (traces and TO_FILE targets are opened by
the client and passed as descriptors; a descriptor must grant the access mapid will use).
Every test runs against mapid as root and mapid as nobody: mapid reads and writes the files
through the descriptors, never by name, so an unprivileged mapid serves files only their
client may open."""
import gzip
import json
import os
import shutil
import subprocess

import pytest

from helpers import tcpdump_pcap
from helpers.server import Mapid, nobody, open_dir, private_dir, run_client, start_client, trace_fixtures

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a client as nobody")


workdir, tracefile = trace_fixtures("scampi-server-iso-", 20000, seed=11)


@pytest.fixture(params=["root", "nobody"], ids=["mapid-as-root", "mapid-as-nobody"])
def mapid(request, tracefile):
    user = nobody() if request.param == "nobody" else None
    # nobody's clients must reach the socket: an open directory, or nobody's own
    where = private_dir("scampi-mapid-iso-", user) if user else open_dir("scampi-mapid-iso-")
    with Mapid(where, config='[devices.shared]\nfile = "%s"\n' % tracefile, user=user) as m:
        if user:                                   # it really runs as nobody
            assert os.stat("/proc/%d" % m.pid).st_uid == user[0]
        yield m


OWNER = """
    dev = mapi.create_offline_device(%r)
    fd = mapi.create_flow(dev)
    mapi.apply_function(fd, "BPF_FILTER", "tcp port 443")
    c = mapi.apply_function(fd, "PKT_COUNTER")
    mapi.connect(fd)
    sfd = mapi.create_flow("shared")
    mapi.apply_function(sfd, "BPF_FILTER", "icmp")
    mapi.apply_function(sfd, "PKT_COUNTER")
    mapi.connect(sfd)
    emit({"dev": dev, "fd": fd, "fid": c, "sfd": sfd})
    sys.stdin.readline()
    mapi.start_offline_device(dev); mapi.wait_offline_device(dev)
    emit({"count": mapi.read_results(fd, c).value, "flows": mapi.get_device_info(dev)["flows"]})
"""

INTRUDER = """
    a = json.loads(sys.argv[1])
    fd, fid, dev = a["fd"], a["fid"], a["dev"]
    tries = {
        "read_results": lambda: mapi.read_results(fd, fid),
        "get_flow_info": lambda: mapi.get_flow_info(fd),
        "get_function_info": lambda: mapi.get_function_info(fd, fid),
        "apply_function": lambda: mapi.apply_function(fd, "PKT_COUNTER"),
        "connect": lambda: mapi.connect(fd),
        "close_flow": lambda: mapi.close_flow(fd),
        "get_next_pkt": lambda: mapi.get_next_pkt(fd, fid),
        "create_flow_on_their_device": lambda: mapi.create_flow(dev),
        "explain_their_device": lambda: mapi.explain(dev),
        "start_their_device": lambda: mapi.start_offline_device(dev),
        "delete_their_device": lambda: mapi.delete_offline_device(dev),
        "delete_shared_device": lambda: mapi.delete_offline_device("shared"),
    }
    mine = mapi.create_flow("shared")
    tries["threshold_on_their_counter"] = lambda: mapi.apply_function(
        mine, "THRESHOLD", mapi.GREATER, (fd, fid), 10)
    out = {}
    for name, call in tries.items():
        try:
            call()
            out[name] = None
        except mapi.MapiError as exc:
            out[name] = [exc.code, str(exc)]
    mapi.apply_function(mine, "BPF_FILTER", "udp")
    mapi.connect(mine)
    nodes = mapi.explain_data("shared")["nodes"]
    out["visible_nodes"] = [[n["function"], n["args"]] for n in nodes]
    out["devices"] = mapi.devices()
    emit(out)
"""


def test_other_clients_flows_are_out_of_reach(mapid, tracefile):
    owner = start_client(mapid, OWNER % str(tracefile))
    a = json.loads(owner.stdout.readline())
    out, _ = run_client(mapid, INTRUDER, user=nobody(), args=[json.dumps(a)])
    tried = out[0]
    for name in ("read_results", "get_flow_info", "get_function_info", "apply_function",
                 "connect", "close_flow", "get_next_pkt", "threshold_on_their_counter"):
        assert tried[name] is not None, name
        code, text = tried[name]
        assert code == 1018 and "belongs to another client" in text, (name, text)
    for name in ("create_flow_on_their_device", "explain_their_device", "start_their_device",
                 "delete_their_device"):
        code, text = tried[name]
        assert code == 1018 and "device %s belongs to another client" % a["dev"] in text, (name, text)
    assert tried["delete_shared_device"][0] == 1018
    # the intruder sees its own node on the shared device, not the owner's icmp filter
    assert tried["visible_nodes"] == [["BPF_FILTER", ["udp"]]]
    assert a["dev"] not in tried["devices"] and "shared" in tried["devices"]
    # and the owner's flow is untouched: it still runs and counts exactly
    owner.stdin.write("\n")
    owner.stdin.flush()
    result = json.loads(owner.stdout.readline())
    owner.wait(60)
    assert result["flows"] == [a["fd"]]
    import subprocess
    ref = subprocess.run(["tcpdump", "-n", "-q", "-r", str(tracefile), "tcp port 443"], capture_output=True)
    assert result["count"] == len(ref.stdout.splitlines()) > 0


def test_nobody_cannot_read_shadow_or_write_etc(mapid, tracefile):
    body = """
        out = {}
        for name, call in {
            "shadow": lambda: mapi.create_offline_device("/etc/shadow"),
            "write_etc": lambda: mapi.apply_function(mapi.create_flow("shared"), "TO_FILE",
                                                     mapi.MFF_PCAP, "/etc/scampi-iso-test.pcap"),
            "export_etc": lambda: mapi.apply_function(mapi.create_flow("shared"), "FLOW_REPORT",
                                                      "ipfix", "file:/etc/scampi-iso-test.ipfix"),
            "store_etc": lambda: mapi.apply_function(mapi.create_flow("shared"), "RECORD_STORE",
                                                     "/etc/scampi-iso-store"),
        }.items():
            try:
                call()
                out[name] = None
            except mapi.MapiError as exc:
                out[name] = [exc.code, str(exc)]
        # a legitimate trace still works for nobody
        dev = mapi.create_offline_device(%r)
        fd = mapi.create_flow(dev)
        c = mapi.apply_function(fd, "PKT_COUNTER")
        mapi.connect(fd); mapi.start_offline_device(dev); mapi.wait_offline_device(dev)
        out["count"] = mapi.read_results(fd, c).value
        emit(out)
    """ % str(tracefile)
    out, _ = run_client(mapid, body, user=nobody())
    got = out[0]
    assert got["shadow"][0] == 1010 and "Permission denied" in got["shadow"][1]
    assert got["write_etc"][0] == 1010 and "Permission denied" in got["write_etc"][1]
    assert got["export_etc"][0] == 1010 and "Permission denied" in got["export_etc"][1]
    # RECORD_STORE creates files by name in its directory: a root mapid refuses it to nobody;
    # a mapid that is nobody itself tries with nobody's rights
    if os.stat("/proc/%d" % mapid.pid).st_uid == 0:
        assert got["store_etc"][0] == 1018 and "more than uid 65534" in got["store_etc"][1]
    else:
        assert got["store_etc"] is not None and got["store_etc"][0] != 1018
    assert not os.path.exists("/etc/scampi-iso-store")
    assert not os.path.exists("/etc/scampi-iso-test.pcap")
    assert not os.path.exists("/etc/scampi-iso-test.ipfix")
    assert got["count"] == 20000
    assert "shadow" not in mapid.log_text()


RAW = """
    import socket
    from mapi.proto import pb
    from mapi.proto.wire import FrameReader, envelope, send_frame
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(os.environ["MAPI_SERVER"][5:])
    reader = FrameReader()
    ids = iter(range(1, 100))
    def call(req, fds=()):
        env = envelope(next(ids), len(fds))
        env.request.CopyFrom(req)
        send_frame(s, env, fds)
        while True:
            for env, got in reader.frames():
                return env
            reader.recv(s)
    call(pb.Request(hello=pb.Hello(version=1)))
    out = {}
    # an O_PATH descriptor needs no read permission; mapid must not reopen it for reading
    e = call(pb.Request(create_offline_device=pb.CreateOfflineDevice(path="/etc/shadow")),
             [os.open("/etc/shadow", os.O_PATH)])
    out["o_path"] = [e.error.code, e.error.message]
    # a read-only descriptor passed as a file to write
    fd = call(pb.Request(create_flow=pb.CreateFlow(dev="shared"))).reply.flow.fd
    req = pb.Request(apply_function=pb.ApplyFunction(fd=fd, name="TO_FILE", file_args=["1"]))
    from mapi.proto.values import to_value
    for a in ("pcap", "/etc/passwd"):
        to_value(a, req.apply_function.args.add())
    e = call(req, [os.open("/etc/passwd", os.O_RDONLY)])
    out["read_only_as_target"] = [e.error.code, e.error.message]
    # a trace without its descriptor
    e = call(pb.Request(create_offline_device=pb.CreateOfflineDevice(path="/etc/shadow")))
    out["no_descriptor"] = [e.error.code, e.error.message]
    # files to write named without their descriptor (the client library always passes one; a
    # client speaking the protocol itself must too): TO_FILE's target, FLOW_REPORT's
    # destinations, also inside one create_flow_with
    fd = call(pb.Request(create_flow=pb.CreateFlow(dev="shared"))).reply.flow.fd
    for key, name, args in (("target_by_name", "TO_FILE", ("pcap", "/etc/scampi-iso-raw.pcap")),
                            ("destination_file", "FLOW_REPORT",
                             ("ipfix", "file:/etc/scampi-iso-raw.ipfix")),
                            ("destination_fd", "FLOW_REPORT", ("ipfix", "fd:2"))):
        req = pb.Request(apply_function=pb.ApplyFunction(fd=fd, name=name))
        for a in args:
            to_value(a, req.apply_function.args.add())
        e = call(req)
        out[key] = [e.error.code, e.error.message]
    req = pb.Request(create_flow_with=pb.CreateFlowWith(flow=pb.CreateFlow(dev="shared"),
                                                         connect=True))
    step = req.create_flow_with.functions.add(name="TO_FILE")
    for a in ("pcap", "/etc/scampi-iso-raw.pcap"):
        to_value(a, step.args.add())
    e = call(req)
    out["flow_with_target_by_name"] = [e.error.code, e.error.message]
    emit(out)
"""


def test_descriptors_must_grant_the_access(mapid):
    before = open("/etc/passwd", "rb").read()
    out, _ = run_client(mapid, RAW, user=nobody())
    got = out[0]
    assert got["o_path"][0] == 1018 and "O_PATH" in got["o_path"][1]
    assert got["read_only_as_target"][0] == 1018 and "not open for writing" in got["read_only_as_target"][1]
    assert got["no_descriptor"][0] == 1005
    for key in ("target_by_name", "destination_file", "destination_fd",
                "flow_with_target_by_name"):
        assert got[key][0] == 1018 and "did not pass" in got[key][1], key
    assert not os.path.exists("/etc/scampi-iso-raw.pcap")
    assert not os.path.exists("/etc/scampi-iso-raw.ipfix")
    assert open("/etc/passwd", "rb").read() == before
    assert mapid.proc.poll() is None


OWN_FILES = """
    out = {}
    for name, path in (("plain", sys.argv[1]), ("gzip", sys.argv[2])):
        dev = mapi.create_offline_device(path)
        fd = mapi.create_flow(dev)
        mapi.apply_function(fd, "BPF_FILTER", "udp")
        c = mapi.apply_function(fd, "PKT_COUNTER")
        f = mapi.apply_function(fd, "TO_FILE", mapi.MFF_PCAP, sys.argv[3] + "." + name)
        mapi.connect(fd); mapi.start_offline_device(dev); mapi.wait_offline_device(dev)
        out[name] = [mapi.read_results(fd, c).value, mapi.read_results(fd, f).value["packets"]]
        mapi.delete_offline_device(dev)
    # standard input, a pipe: read as it comes (nothing may peek at it)
    dev = mapi.create_offline_device("/dev/stdin")
    fd = mapi.create_flow(dev)
    c = mapi.apply_function(fd, "PKT_COUNTER")
    mapi.connect(fd); mapi.start_offline_device(dev); mapi.wait_offline_device(dev)
    out["pipe"] = mapi.read_results(fd, c).value
    emit(out)
"""


def test_clients_own_private_files(mapid, tracefile):
    """A root client's trace (plain and gzip) and output in a directory only root may enter:
    mapid reads and writes them through the client's descriptors, whichever user it runs as."""
    secret = private_dir("scampi-iso-private-")
    plain, packed = secret / "trace.pcap", secret / "trace.pcap.gz"
    shutil.copyfile(tracefile, plain)
    with open(tracefile, "rb") as src, gzip.open(packed, "wb") as dst:
        shutil.copyfileobj(src, dst)
    for f in (plain, packed):
        os.chmod(f, 0o600)
    cat = subprocess.Popen(["cat", str(tracefile)], stdout=subprocess.PIPE)
    p = start_client(mapid, OWN_FILES, args=[str(plain), str(packed), str(secret / "udp.pcap")],
                     stdin=cat.stdout)
    cat.stdout.close()
    out, err = p.communicate(timeout=120)
    cat.wait()
    assert p.returncode == 0, err + mapid.log_text()
    got = json.loads(out.splitlines()[-1])
    udp = len(tcpdump_pcap(tracefile, "udp"))
    assert got == {"plain": [udp, udp], "gzip": [udp, udp], "pipe": 20000}
    ref = secret / "ref.pcap"
    subprocess.run(["tcpdump", "-r", str(tracefile), "-w", str(ref), "udp"], check=True,
                   capture_output=True)
    for name in ("plain", "gzip"):
        assert (secret / ("udp.pcap." + name)).read_bytes() == ref.read_bytes(), name


EXPORT = """
    out = {}
    for name, dest in (("file", "file:" + sys.argv[2]), ("fd", "fd:%d" % os.open(
            sys.argv[3], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644))):
        dev = mapi.create_offline_device(sys.argv[1])
        fd = mapi.create_flow(dev)
        f = mapi.apply_function(fd, "FLOW_REPORT", "ipfix", dest, active_timeout="1h",
                                idle_timeout="1h")
        mapi.connect(fd); mapi.start_offline_device(dev); mapi.wait_offline_device(dev)
        r = mapi.read_results(fd, f).value
        mapi.close_flow(fd)
        out[name] = [r["exported"], r["messages"], r["export_bytes"]]
    emit(out)
"""


def test_export_destinations_are_the_clients_files(mapid, tracefile):
    """FLOW_REPORT's "file:PATH" and "fd:N" destinations through mapid: the client opens the
    file (or has the descriptor) and passes it, so nobody's export lands in nobody's directory
    whichever user mapid runs as, with the records the in-process engine exports."""
    import mapi
    home = private_dir("scampi-iso-export-", nobody())
    with mapi.OfflineDevice(str(tracefile)) as dev:
        flow = dev.flow()
        ref = flow.apply("FLOW_REPORT", "ipfix", "file:%s" % (home / "ref.ipfix"),
                         active_timeout="1h", idle_timeout="1h")
        flow.connect()
        dev.run()
        want = ref.value
    out, _ = run_client(mapid, EXPORT, user=nobody(),
                        args=[str(tracefile), str(home / "by-name.ipfix"), str(home / "by-fd.ipfix")])
    size = os.path.getsize(home / "ref.ipfix")
    assert want["exported"] > 0 and size == want["export_bytes"]
    for name, path in (("file", "by-name.ipfix"), ("fd", "by-fd.ipfix")):
        assert out[0][name] == [want["exported"], want["messages"], want["export_bytes"]], name
        assert os.path.getsize(home / path) == size, name
        assert os.stat(home / path).st_uid == nobody()[0], name


def test_functions_that_write_are_exports():
    """Job control's classes: whatever writes a file or sends records is an export, so a
    credential allowing counters only cannot write with RECORD_STORE or FLOW_REPORT."""
    from mapi.jobcontrol.policy import function_class
    from mapi.registry import get_registry
    reg = get_registry()
    for name in ("TO_FILE", "FLOW_REPORT", "RECORD_REPORT", "RECORD_STORE"):
        assert function_class(reg.function(name)) == "export", name
    assert function_class(reg.function("PKT_COUNTER")) == "counter"
