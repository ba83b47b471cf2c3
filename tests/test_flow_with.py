"""create_flow_with: a flow, its functions and its connect as one call.  In-process it is the
calls one after the other; through mapid one request (counted on the client's connection) that
job control checks and records step by step.  Results against tcpdump's counts and against the
same job made with the separate calls; a failed step closes the flow, names itself and leaves
no descriptor in mapid and no file behind."""
import os
import shutil

import pytest

from helpers.jobs import audit, jobs_config, tcpdump_count
from helpers.server import Mapid, open_dir, run_client, trace

import mapi

pytestmark = pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump not installed")
EXPR = "udp port 53"


@pytest.fixture(scope="module")
def workdir():
    return open_dir("scampi-flow-with-")


@pytest.fixture(scope="module")
def tracefile(workdir):
    return trace(workdir, 20000, seed=3)


@pytest.fixture(scope="module")
def expected(tracefile):
    return tcpdump_count(tracefile, EXPR)


def test_in_process_equals_tcpdump_and_the_separate_calls(tracefile, expected):
    dev = mapi.create_offline_device(str(tracefile))
    try:
        fd, fids = mapi.create_flow_with(dev, [("BPF_FILTER", EXPR), "PKT_COUNTER",
                                               {"name": "TOP", "args": [3, "ip.src"]}])
        plain = mapi.create_flow(dev)
        mapi.apply_function(plain, "BPF_FILTER", EXPR)
        count = mapi.apply_function(plain, "PKT_COUNTER")
        top = mapi.apply_function(plain, "TOP", 3, "ip.src")
        mapi.connect(plain)
        mapi.start_offline_device(dev)
        mapi.wait_offline_device(dev)
        assert fids == [1, 2, 3]
        assert mapi.read_results(fd, fids[1]).value == expected > 0
        assert mapi.read_results(fd, fids[2]).value == mapi.read_results(plain, top).value
        assert mapi.read_results(plain, count).value == expected
    finally:
        mapi.delete_offline_device(dev)


def test_in_process_failed_step_closes_the_flow(tracefile):
    dev = mapi.create_offline_device(str(tracefile))
    try:
        with pytest.raises(mapi.MapiError) as err:
            mapi.create_flow_with(dev, ["PKT_COUNTER", ("BPF_FILTER", "udp port"), "PKT_COUNTER"])
        assert err.value.code == mapi.EFILTER
        assert str(err.value).startswith("create_flow_with: function 2 of 3 (BPF_FILTER): ")
        assert err.value.where == {"argument": "expr", "step": "function 2 of 3 (BPF_FILTER)"}
        assert mapi.get_device_info(dev)["flows"] == []
        # connect=False: the flow stays open for more functions
        fd, fids = mapi.create_flow_with(dev, ["PKT_COUNTER"], connect=False)
        more = mapi.apply_function(fd, "BYTE_COUNTER")
        mapi.connect(fd)
        assert (fids, more) == ([1], 2)
        assert mapi.get_device_info(dev)["flows"] == [fd]
    finally:
        mapi.delete_offline_device(dev)


@pytest.mark.parametrize("functions", [[42], [("",)], [{"name": "PKT_COUNTER", "bogus": 1}],
                                       "PKT_COUNTER", [()]])
def test_bad_items_are_named(tracefile, functions):
    dev = mapi.create_offline_device(str(tracefile))
    try:
        with pytest.raises(mapi.MapiError) as err:
            mapi.create_flow_with(dev, functions)
        assert err.value.where.get("argument") in ("functions", "name")
        assert "create_flow_with" in str(err.value)
        assert mapi.get_device_info(dev)["flows"] == []
    finally:
        mapi.delete_offline_device(dev)


# --- through mapid ------------------------------------------------------------------------------
COUNTED = """
from mapi.client import connection
from mapi.client.install import installed
sent = []
real = connection.Connection.call_fds
def counted(self, request, fds=()):
    sent.append(request.WhichOneof("call"))
    return real(self, request, fds)
connection.Connection.call_fds = counted
"""


def test_mapid_one_request_same_results_and_records(workdir, tracefile, expected):
    out = workdir / "with.pcap"
    ref = workdir / "calls.pcap"
    for p in (out, ref):
        if p.exists():
            p.unlink()
    with Mapid(workdir) as m:
        got, _ = run_client(m, COUNTED + """
trace, out, ref = sys.argv[1:4]
dev = mapi.create_offline_device(trace)
for name in ("BPF_FILTER", "PKT_COUNTER", "TO_BUFFER", "TO_FILE"):
    installed().describe_function(name)     # the client learns the functions' arguments once
sent.clear()
fd, fids = mapi.create_flow_with(dev, [("BPF_FILTER", %r), "PKT_COUNTER",
                                       ("TO_BUFFER", mapi.WAIT, 1 << 22),
                                       ("TO_FILE", mapi.MFF_PCAP, out)])
one = list(sent)
plain = mapi.create_flow(dev)
mapi.apply_function(plain, "BPF_FILTER", %r)
mapi.apply_function(plain, "TO_FILE", mapi.MFF_PCAP, ref)
mapi.connect(plain)
mapi.start_offline_device(dev)
n, _ = mapi.api.function_instance(fd, fids[2]).drain_all()
mapi.wait_offline_device(dev)
emit({"sent": one, "fids": fids, "count": mapi.read_results(fd, fids[1]).value, "read": n,
      "pid": os.getpid()})
mapi.close_flow(fd)
mapi.close_flow(plain)
# last: nothing after it commits its decisions but its own answer's commit
mapi.create_flow_with(dev, ["PKT_COUNTER", "BYTE_COUNTER"], connect=False)
""" % (EXPR, EXPR), args=(str(tracefile), str(out), str(ref)))
        m.kill()                        # kill -9: only what was committed is there
    import collections
    r = got[0]
    assert r["sent"] == ["create_flow_with"]
    assert r["fids"] == [1, 2, 3, 4]
    assert r["count"] == r["read"] == expected > 0
    assert out.read_bytes() == ref.read_bytes()
    # job control saw the steps as the calls of their names, each allowed and recorded before
    # the answer (committed when mapid is killed right after): the two create_flow_with (one
    # connected, one not) and the separate calls
    ops = [a["operation"] for a in audit(m.database, decision="allow", pid=r["pid"])]
    first = ops.index("create_flow")
    assert ops[first:first + 6] == ["create_flow"] + ["apply_function"] * 4 + ["connect"]
    counts = collections.Counter(ops)
    assert (counts["create_flow"], counts["apply_function"], counts["connect"],
            counts["close_flow"]) == (3, 8, 2, 2)


def test_mapid_refused_step_closes_the_flow_and_its_files(workdir, tracefile):
    here = open_dir("scampi-flow-with-refuse-")
    database = str(here / "mapid.db")
    cfg = jobs_config(database, devices={"gen": str(tracefile)},
                      grants={"0": '{ devices = ["*"], classes = ["filter", "counter"] }'})
    target = workdir / "never.pcap"
    if target.exists():
        target.unlink()
    with Mapid(here, cfg) as m:
        got, _ = run_client(m, """
out = sys.argv[1]
tries = ([("BPF_FILTER", "tcp"), "PKT_COUNTER", ("TO_FILE", mapi.MFF_PCAP, out)],
         [("BPF_FILTER", "tcp port"), ("TO_FILE", mapi.MFF_PCAP, out)])
for functions in tries:
    try:
        mapi.create_flow_with("gen", functions)
        emit({"error": None})
    except mapi.MapiError as exc:
        emit({"code": exc.code, "message": str(exc), "step": exc.where.get("step")})
emit({"flows": [c["flows"] for c in mapi.clients() if c["pid"] == os.getpid()],
      "pid": os.getpid()})
""", args=(str(target),))
        fds = "/proc/%d/fd" % m.pid
        kept = [os.readlink(os.path.join(fds, f)) for f in os.listdir(fds)]
        refused = audit(database, decision="refuse", pid=got[-1]["pid"])
        m.stop()
    assert got[0]["code"] == mapi.EPERM and got[0]["step"] == "function 3 of 3 (TO_FILE)"
    assert got[0]["message"].startswith("create_flow_with: function 3 of 3 (TO_FILE): ")
    assert got[1]["code"] == mapi.EFILTER and got[1]["step"] == "function 1 of 2 (BPF_FILTER)"
    assert got[2]["flows"] == [[]]                     # both flows closed
    assert not target.exists()                         # the file the client made is gone
    assert not [k for k in kept if "never.pcap" in k]  # no descriptor of theirs kept
    assert [r["operation"] for r in refused] == ["apply_function"]
