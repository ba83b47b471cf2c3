"""Sandboxed user code in a real mapid: the example module's filter counts what tcpdump counts;
a module looping forever, one allocating without bound and one reading out of bounds are each
stopped within their first batch, removed from their flow with an event to the owner, and
every other function's result stays exact (the flows run on without them)."""
import os

import pytest

from helpers.jobs import jobs_config, tcpdump_count
from helpers.server import Mapid, open_dir, run_client, trace

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mapid's database under a root dir")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

COMMON = """
  (memory (export "memory") 1)
  (func (export "scampi_abi_version") (result i32) (i32.const 1))
  (func (export "scampi_buffer") (param $b i32) (result i32)
    (drop (memory.grow (i32.add (i32.shr_u (local.get $b) (i32.const 16)) (i32.const 2))))
    (i32.const 65536))
"""
BAD = {
    "spin": '(func (export "scampi_filter_SPIN") (param i32 i32) (result i32) '
            '(loop $l (br $l)) (i32.const 0))',
    "hog": '(func (export "scampi_count_HOG") (param i32 i32) (result i32) '
           '(loop $l (br_if $l (i32.ne (memory.grow (i32.const 16)) (i32.const -1)))) '
           '(unreachable))',
    "peek": '(func (export "scampi_count_PEEK") (param i32 i32) (result i32) '
            '(i32.load (i32.const 0x7ffffff0)))',
}

CLIENT = """
wasm_dir = sys.argv[1]
for name in ("spin", "hog", "peek"):
    mapi.load_library(os.path.join(wasm_dir, name + ".wasm"), kind="sandboxed")
lib = mapi.load_library(sys.argv[2])
dev = "gen"
flows = {}
def flow(label, *functions):
    fd = mapi.create_flow(dev)
    fids = [mapi.apply_function(fd, *f) for f in functions]
    flows[label] = (fd, fids)
flow("tcp80", ("WASM_TCP80",), ("WASM_PACKETS",), ("PKT_COUNTER",))
flow("spin", ("BPF_FILTER", "udp"), ("SPIN",), ("PKT_COUNTER",))
flow("hog", ("BPF_FILTER", "icmp"), ("HOG",), ("PKT_COUNTER",))
flow("peek", ("PEEK",), ("BYTE_COUNTER",))
flow("plain", ("BPF_FILTER", "tcp port 443"), ("PKT_COUNTER",))
for fd, _ in flows.values():
    mapi.connect(fd)
mapi.start_offline_device(dev)
mapi.wait_offline_device(dev)
out = {"library": lib}
for label, (fd, fids) in flows.items():
    res = []
    for fid in fids:
        info = mapi.get_function_info(fd, fid)
        try:
            value = mapi.read_results(fd, fid).value
        except mapi.MapiError as exc:
            value = "error %d: %s" % (exc.code, exc)
        event = None
        if info.get("removed") is not None:
            ev = mapi.get_next_event(fd, fid, timeout=10)
            event = [ev.kind, ev.value]
        res.append({"name": info["name"], "value": value, "removed": info.get("removed"),
                    "in": info["pkts_in"], "out": info["pkts_out"], "event": event})
    out[label] = res
emit(out)
"""


@pytest.fixture(scope="module")
def built():
    where = open_dir("scampi-jobs-sandbox-")
    import wasmtime
    for name, body in BAD.items():
        (where / (name + ".wasm")).write_bytes(wasmtime.wat2wasm("(module %s %s)" % (COMMON, body)))
        os.chmod(where / (name + ".wasm"), 0o644)
    os.system("make -s -C %s wasm-example >/dev/null" % ROOT)
    return where


def test_runaway_modules_are_removed_and_others_stay_exact(built):
    path = trace(built, 30000, seed=6)
    cfg = jobs_config(str(built / "mapid.db"), devices={"gen": path}, grants={"0": '"all"'},
                      extra="costs = { free = 1.0, low = 10.0, high = 40.0 }\n"
                            "[jobcontrol.sandbox]\nmemory = 8388608\nfuel_base = 100000\n"
                            "fuel_per_packet = 2000\n")
    with Mapid(built, config=cfg) as m:
        out, _ = run_client(m, CLIENT, args=[str(built), os.path.join(ROOT, "examples", "wasm",
                                                                      "tcp80.wasm")], timeout=300)
        log = m.log_text()
    got = out[0]
    total = tcpdump_count(path, "")
    http = tcpdump_count(path, "tcp port 80")
    tcp80, packets, counter = got["tcp80"]
    assert tcp80["value"] == tcp80["out"] == http > 0 and tcp80["in"] == total
    assert packets["value"] == counter["value"] == http
    for label, expr, fid in (("spin", "udp", 1), ("hog", "icmp", 1), ("peek", None, 0)):
        funcs = got[label]
        bad = funcs[fid]
        assert bad["removed"] and "at batch 1:" in bad["removed"], bad
        assert bad["event"][0] == "REMOVED" and bad["event"][1] == bad["removed"]
        assert bad["value"].startswith("error 1017") and "was removed" in bad["value"]
        after = funcs[fid + 1]
        expect = tcpdump_count(path, expr) if expr else total
        assert after["in"] == expect                        # the flow ran on, without it
        if after["name"] == "PKT_COUNTER":
            assert after["value"] == expect
    assert "ran out of fuel" in got["spin"][1]["removed"]
    assert "trapped" in got["hog"][1]["removed"] and "unreachable" in got["hog"][1]["removed"]
    assert "memory fault at wasm address 0x7ffffff0" in got["peek"][0]["removed"]
    assert got["plain"][1]["value"] == tcpdump_count(path, "tcp port 443")
    assert log.count("removed from the flow") == 3
