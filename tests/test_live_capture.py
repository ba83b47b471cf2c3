"""Live capture (nic: AF_PACKET + recvmmsg; ring: TPACKET_V3, TPACKET_V2 immediate) on real
hosts: each test makes two network namespaces joined by a veth pair, replays a corpus trace
with tcpreplay from one end and captures with MAPI on the other (in a subprocess inside the
namespace).  Results on the live device must equal the results on the replayed file (MAPI
offline and tcpdump as references); a slow flow loses only its own packets."""
import os
import subprocess
import sys
import time

import pytest

import mapi
from helpers import (CORPUS, generated, need_tool, needs_corpus, register_backends, sample, tcpdump_records,
                     need_netns)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from tools import netns  # noqa: E402

EXAMPLE = generated("mixed.pcap")                             # 4631 packets, 2.6 MB
CORPUS_EXAMPLE = CORPUS / "pcap/PcapPlusPlus__example.pcap"   # 4631 packets, 3.7 MB
QINQ = sample("pcap/zeek__pppoe-over-qinq.pcap")              # 86 packets, two VLAN tags each
VLAN = sample("pcap/PcapPlusPlus__VlanPackets.pcap")
BACKENDS = ["scampi.backends.afpacket.nic", "scampi.backends.afpacket.ring"]
PPS = 20000          # well inside what the receiver keeps up with: no kernel drops expected
DEVICES = [("nic", {}), ("ring", {}), ("ring", {"immediate": True}),
           ("ring", {"block_size": 16384, "block_count": 64, "block_timeout_ms": 1})]
IDS = ["nic", "ring-v3", "ring-immediate", "ring-small-blocks"]


@pytest.fixture(scope="module", autouse=True)
def live_backends():
    need_netns("live capture tests")
    need_tool("tcpreplay")
    register_backends(*BACKENDS)


def tcpdump_count(path, expr):
    recs, err = tcpdump_records(path, expr)
    assert recs is not None, err
    return len(recs)


def offline_results(path, flows):
    dev = mapi.create_offline_device(str(path))
    fds = []
    for f in flows:
        fd = mapi.create_flow(dev)
        fids = [mapi.apply_function(fd, fn[0], *fn[1:]) for fn in f["functions"]]
        mapi.connect(fd)
        fds.append((fd, fids))
    mapi.start_offline_device(dev)
    mapi.wait_offline_device(dev)
    out = [[mapi.read_results(fd, fid).value for fid in fids] for fd, fids in fds]
    mapi.delete_offline_device(dev)
    return out


def live_run(backend, options, trace, flows, until, pps=PPS, timeout=30, **extra):
    with netns.VethPair() as net:
        spec = dict(dev="%s:%s" % (backend, net.rx_if), options=options, register=BACKENDS,
                    flows=flows, until=until, timeout=timeout, **extra)
        cap = net.capture(spec)
        t0 = time.time_ns()
        sent = net.replay(trace, pps=pps)
        t1 = time.time_ns()
        out = cap.finish()
    assert "error" not in out, out
    out["sent"], out["t0"], out["t1"] = sent, t0, t1
    return out


def counted(results):
    """Counters only: TO_BUFFER's statistics dict is compared separately."""
    return [[v for v in r if not isinstance(v, dict)] for r in results]


MIXED = [
    {"functions": [["PKT_COUNTER"], ["BYTE_COUNTER"]]},
    {"functions": [["BPF_FILTER", "tcp"], ["PKT_COUNTER"], ["BYTE_COUNTER"]]},
    {"functions": [["BPF_FILTER", "udp port 53"], ["PKT_COUNTER"], ["TO_BUFFER"]], "drain": 2},
    {"functions": [["BPF_FILTER", "host 10.0.0.6"], ["BPF_FILTER", "tcp port 443"], ["PKT_COUNTER"]]},
]


@pytest.mark.parametrize("backend,options", DEVICES, ids=IDS)
def test_live_results_equal_the_replayed_file(backend, options):
    out = live_run(backend, options, EXAMPLE, MIXED, until={"flow": 0, "fid": 0, "value": 4631})
    assert out["sent"]["packets"] == 4631 and out["sent"].get("failed_packets", 0) == 0
    assert out["stats"]["kernel_drops"] == 0, out["stats"]
    assert out["reached"], out["results"]
    want = offline_results(EXAMPLE, MIXED)
    assert counted(out["results"]) == counted(want)
    # independent references: tcpdump's counts of the same filters on the file
    assert out["results"][1][1] == tcpdump_count(EXAMPLE, "tcp")
    assert out["results"][3][2] == tcpdump_count(EXAMPLE, "host 10.0.0.6 and tcp port 443")
    # the packets themselves: bytes and lengths equal the file's, in order
    recs = tcpdump_records(EXAMPLE, "udp port 53")[0]
    got = out["packets"]["2"]
    assert [(c, w, bytes.fromhex(d)) for _, c, w, d in got] == [(r[1], r[1], r[2]) for r in recs]
    # nanosecond kernel timestamps, in order, inside the replay's wall-clock window
    ts = [p[0] for p in got]
    assert ts == sorted(ts)
    assert out["t0"] - 10**9 <= ts[0] and ts[-1] <= out["t1"] + 10**9
    st = out["stats"]
    assert st["kernel_drops"] == 0 and st["ps_drop"] == 0
    assert st["ps_recv"] == 4631 and st["delivered"] == 4631
    assert out["info"]["timestamps"] == "ns"
    assert out["results"][2][2] == {"written": len(recs), "dropped": 0, "delivered": len(recs)}


@pytest.mark.parametrize("backend", ["nic", "ring"])
def test_kernel_filter_delivers_only_what_flows_need(backend):
    """Every flow starts with a filter: the mapper places them in the kernel, which passes
    only their union to user space; each flow's count still equals tcpdump's."""
    flows = [
        {"functions": [["BPF_FILTER", "tcp port 80"], ["PKT_COUNTER"], ["BYTE_COUNTER"]]},
        {"functions": [["BPF_FILTER", "udp port 53"], ["PKT_COUNTER"]]},
        {"functions": [["BPF_FILTER", "udp"], ["BPF_FILTER", "src host 10.0.0.6"], ["PKT_COUNTER"]]},
    ]
    # the organizer puts the third flow's commuting filters in its canonical order; whichever
    # comes first sees the raw stream and joins the kernel's union
    union = tcpdump_count(EXAMPLE, "tcp port 80 or udp port 53 or src host 10.0.0.6")
    out = live_run(backend, {}, EXAMPLE, flows, until=None, wait_for_stats=union, timeout=20)
    assert out["reached"]
    roots = sorted(p["expr"] for p in out["info"]["hardware"]["placed"] if p["parent"] is None)
    assert roots == ["src host 10.0.0.6", "tcp port 80", "udp port 53"]
    assert counted(out["results"]) == counted(offline_results(EXAMPLE, flows))
    assert out["results"][0][1] == tcpdump_count(EXAMPLE, "tcp port 80")
    assert out["results"][2][2] == tcpdump_count(EXAMPLE, "udp and src host 10.0.0.6")
    hw = out["info"]["hardware"]
    assert hw["kernel_filter_insns"] > 0 and "union of 3" in hw["kernel_filter"]
    placed = [f[0]["placement"] for f in out["functions"]]
    assert placed == ["KERNEL-BPF"] * 3
    # the kernel passed exactly the union of the root filters, nothing else crossed
    assert out["stats"]["delivered"] == union < 4631
    assert out["stats"]["kernel_drops"] == 0


@pytest.mark.parametrize("backend,options", [("nic", {}), ("ring", {}), ("ring", {"immediate": True})],
                         ids=["nic", "ring-v3", "ring-immediate"])
def test_stripped_vlan_tags_are_put_back(backend, options):
    """The kernel hands VLAN tags over as metadata; the packets must come out as on the wire
    (QinQ: the outer 802.1Q tag is restored, the inner one never left the packet)."""
    n = tcpdump_count(QINQ, "")
    flows = [{"functions": [["PKT_COUNTER"], ["TO_BUFFER"]], "drain": 1},
             {"functions": [["BPF_FILTER", "vlan 3704 and vlan 2474"], ["PKT_COUNTER"]]}]
    out = live_run(backend, options, QINQ, flows, until={"flow": 0, "fid": 0, "value": n})
    recs = tcpdump_records(QINQ, "")[0]
    got = out["packets"]["0"]
    assert [(c, w, bytes.fromhex(d)) for _, c, w, d in got] == [(r[1], r[1], r[2]) for r in recs]
    assert out["results"][1][1] == tcpdump_count(QINQ, "vlan 3704 and vlan 2474") == n
    assert out["stats"]["vlan_restored"] == n


def test_vlan_packets_pass_the_kernel_filter():
    """Only filter flows (so a kernel filter is attached) on a VLAN trace: the kernel cannot
    see the stripped tag, so tagged packets bypass it and the engine's re-run decides."""
    flows = [{"functions": [["BPF_FILTER", "vlan and tcp"], ["PKT_COUNTER"]]},
             {"functions": [["BPF_FILTER", "arp"], ["PKT_COUNTER"]]}]
    want = [tcpdump_count(VLAN, "vlan and tcp"), tcpdump_count(VLAN, "arp")]
    tagged_or_arp = tcpdump_count(VLAN, "arp or vlan")   # what the kernel lets through
    out = live_run("ring", {}, VLAN, flows, until=None, wait_for_stats=tagged_or_arp)
    assert out["stats"]["delivered"] == tagged_or_arp
    assert [r[1] for r in out["results"]] == want
    assert out["info"]["hardware"]["kernel_filter_insns"] > 0


@needs_corpus
def test_slow_flow_loses_only_its_own_packets():
    """A flow that never reads its 1 MiB TO_BUFFER while 3.7 MB arrive: its buffer drops what
    does not fit; the flow counting everything next to it still sees every packet."""
    flows = [{"functions": [["TO_BUFFER", "WAIT", 1 << 20]]},
             {"functions": [["PKT_COUNTER"], ["BYTE_COUNTER"]]},
             {"functions": [["BPF_FILTER", "tcp"], ["PKT_COUNTER"]]}]
    out = live_run("ring", {}, CORPUS_EXAMPLE, flows, until={"flow": 1, "fid": 0, "value": 4631})
    buf = out["results"][0][0]
    assert out["results"][1] == [4631, 3738523]
    assert out["results"][2][1] == tcpdump_count(CORPUS_EXAMPLE, "tcp")
    assert buf["written"] + buf["dropped"] == 4631
    assert buf["dropped"] > 0 and buf["delivered"] == 0
    assert out["stats"]["kernel_drops"] == 0


@pytest.mark.parametrize("backend", ["nic", "ring"])
def test_interface_going_down_ends_the_capture_with_an_error(backend):
    with netns.VethPair() as net:
        spec = dict(dev="%s:%s" % (backend, net.rx_if), register=BACKENDS, until=None, until_state="done",
                    timeout=20,
                    flows=[{"functions": [["PKT_COUNTER"], ["TO_BUFFER"]], "drain": 1}])
        cap = net.capture(spec)
        net.replay(VLAN, pps=1000)
        net.link(False)
        out = cap.finish()
    assert "error" not in out, out
    info = out["info"]
    assert info["state"] == "done"
    assert any("went down" in e for e in info["errors"]), info["errors"]
    assert out["results"][0][0] == 26 and len(out["packets"]["0"]) == 26


def test_capture_without_privileges_is_a_clear_error():
    need_tool("setpriv")
    code = ("import importlib, mapi\n"
            "from mapi.registry import get_registry\n"
            "assert not get_registry().problems, get_registry().problems\n"
            "try:\n    mapi.create_flow('nic:lo')\n"
            "except mapi.MapiError as e:\n    print(e.code, e)\n")
    r = subprocess.run(["setpriv", "--bounding-set", "-net_raw", "--inh-caps", "-net_raw",
                        sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       cwd=ROOT)
    assert r.stdout.startswith("1018 "), (r.stdout, r.stderr[-2000:])
    assert "CAP_NET_RAW" in r.stdout


def test_bad_names_and_options():
    with pytest.raises(mapi.MapiError) as e:
        mapi.create_flow("nic:nosuchif0")
    assert e.value.code == 1003 and "nosuchif0" in str(e.value)
    with pytest.raises(mapi.MapiError) as e:
        mapi.create_flow("ring:lo", blocksize=4096)
    assert e.value.code == 1005 and "blocksize" in str(e.value)
    with pytest.raises(mapi.MapiError) as e:
        mapi.create_flow("ring:lo", block_size=1000)
    assert e.value.code == 1005 and "page size" in str(e.value)
    with pytest.raises(mapi.MapiError) as e:
        mapi.create_flow("nic:lo", direction="sideways")
    assert e.value.code == 1005
    assert "nosuchif0" not in mapi.devices()


def test_union_program_is_a_superset_of_each_filter():
    """The kernel program (union + VLAN bypass) accepts a packet iff one of the filters does,
    checked with the engine's own BPF interpreter on every packet of a trace."""
    from scampi.backends.afpacket import union_program
    from mapi.bpf import compile_insns as _program
    from mapi._engine import ffi, lib
    exprs = ["tcp port 80", "udp port 53", "icmp", "ip6 and tcp"]
    progs = [_program(e, 1, 262144) for e in exprs]
    union = union_program(progs, 1)[3:]            # without the VLAN prefix (kernel-only loads)
    arr = ffi.new("mapi_bpf_insn[]", len(union))
    for i, (c, jt, jf, k) in enumerate(union):
        arr[i].code, arr[i].jt, arr[i].jf, arr[i].k = c, jt, jf, k
    assert lib.mapi_bpf_validate(arr, len(union)) == 1
    import dpkt
    with open(str(EXAMPLE), "rb") as f:
        pkts = [bytes(b) for _, b in dpkt.pcap.Reader(f)]
    accepted = sum(1 for p in pkts if lib.mapi_bpf_run(arr, p, len(p), len(p)))
    assert accepted == tcpdump_count(EXAMPLE, " or ".join("(%s)" % e for e in exprs))
