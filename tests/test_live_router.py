"""The router backend: a mirror port whose ACL entries and counters the mapper uses as hardware.
Whatever runs in the router, results equal the software path and tcpdump; only the packets some
software node needs cross the mirror port."""
import os
import sys
import time

import pytest

import mapi
from helpers import backends_fixture, generated, tcpdump_records, need_netns

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from tools import netns  # noqa: E402

EXAMPLE = generated("mixed.pcap")        # 4631 packets, as many as the corpus's example.pcap


router_backend = backends_fixture("scampi.backends.router", "scampi.backends.afpacket.ring")


def count(expr):
    recs, err = tcpdump_records(EXAMPLE, expr)
    assert recs is not None, err
    return len(recs)


JOBS = [
    [("BPF_FILTER", "tcp port 80"), ("PKT_COUNTER",), ("BYTE_COUNTER",)],       # ACL + ACL counters
    [("BPF_FILTER", "host 10.0.0.6"), ("PKT_COUNTER",)],                       # ARP paths: superset
    [("BPF_FILTER", "tcp[13] & 2 != 0"), ("PKT_COUNTER",)],                    # TCP flags: superset
    [("PKT_COUNTER",), ("BYTE_COUNTER",)],                                     # interface counters
    [("BPF_FILTER", "udp and net 10.0.0.0/8"), ("BPF_FILTER", "udp dst port 53"), ("PKT_COUNTER",)],
]


def run(jobs, path=EXAMPLE, **dev_options):
    dev = mapi.create_offline_device(str(path), **dev_options)
    flows = []
    for job in jobs:
        fd = mapi.create_flow(dev)
        flows.append((fd, [mapi.apply_function(fd, *fn) for fn in job]))
        mapi.connect(fd)
    mapi.start_offline_device(dev)
    mapi.wait_offline_device(dev)
    res = [[mapi.read_results(fd, f).value for f in fids] for fd, fids in flows]
    info = [[mapi.get_function_info(fd, f) for f in fids] for fd, fids in flows]
    hw = mapi.get_device_info(dev).get("hardware")
    mapi.delete_offline_device(dev)
    return res, info, hw


def test_router_results_equal_software_and_tcpdump():
    soft, _, _ = run(JOBS)
    hard, info, hw = run(JOBS, backend="router")
    assert hard == soft
    assert hard[0][1] == count("tcp port 80") and hard[1][1] == count("host 10.0.0.6")
    assert hard[2][1] == count("tcp[13] & 2 != 0") and hard[3][0] == 4631
    assert hard[4][2] == count("udp and net 10.0.0.0/8 and udp dst port 53")
    where = {i[0]["args"][0] if i[0]["args"] else "root": (i[0]["placement"], i[0]["hw_exact"]) for i in info}
    assert where["tcp port 80"] == ("ACL", True)
    assert where["host 10.0.0.6"] == ("ACL", False)         # ARP/RARP addresses: not ACL fields
    assert where["tcp[13] & 2 != 0"] == ("ACL", False)
    assert where["root"] == ("IFCOUNTERS", True)
    assert info[0][1]["placement"] == "IFCOUNTERS"             # ACL entry hit counters
    assert info[1][1]["placement"] == "software"               # under a superset: software
    # only what software needs crossed the mirror: the two supersets' packets (the second
    # filter of the last flow runs in the ACL too, under an exact parent)
    crossing = count("(ip and host 10.0.0.6) or arp or rarp or (ip and tcp and ip[6:2] & 0x1fff = 0)")
    assert hw["link_packets"] == 4631
    assert hw["mirror_packets"] == crossing < 4631


def test_full_acl_newest_filters_fall_back_to_software():
    jobs = [[("BPF_FILTER", "src host 10.0.0.%d and udp" % i), ("PKT_COUNTER",)] for i in (6, 138, 1, 2, 3)]
    soft, _, _ = run(jobs)
    hard, info, hw = run(jobs, backend="router", acl_rules=2)
    assert hard == soft
    assert [i[0]["placement"] for i in info] == ["ACL", "ACL", "software", "software", "software"]
    assert "full" in info[-1][0]["hw_note"]
    assert hw["acl_rules_used"] == 2


def test_counters_survive_flows_coming_and_going():
    """Hardware counters keep counting across reconfigurations (a flow closing mid-replay)."""
    dev = mapi.create_offline_device(str(EXAMPLE), backend="router")
    a = mapi.create_flow(dev)
    ca = mapi.apply_function(a, "PKT_COUNTER")
    mapi.connect(a)
    b = mapi.create_flow(dev)
    mapi.apply_function(b, "BPF_FILTER", "udp")
    cb = mapi.apply_function(b, "PKT_COUNTER")
    mapi.connect(b)
    mapi.start_offline_device(dev)
    mapi.wait_offline_device(dev)
    assert mapi.get_function_info(a, ca)["placement"] == "IFCOUNTERS"
    got_b = mapi.read_results(b, cb).value
    mapi.close_flow(b)                        # reconfigures the router: a's counter stays
    assert mapi.read_results(a, ca).value == 4631 and got_b == count("udp")
    mapi.delete_offline_device(dev)


def test_router_mirror_of_a_live_link():
    need_netns()
    flows = [{"functions": [list(fn) for fn in job]} for job in JOBS]
    with netns.VethPair() as net:
        spec = dict(dev="router:" + net.rx_if, register=["scampi.backends.router"], flows=flows,
                    until=None, timeout=30, wait_for_stats=4631)
        cap = net.capture(spec)
        net.replay(EXAMPLE, pps=20000)
        out = cap.finish()
    assert "error" not in out, out
    soft, _, _ = run(JOBS)
    assert out["results"] == soft
    hw = out["info"]["hardware"]
    assert hw["link_packets"] == 4631 and hw["mirror_packets"] < 4631
    assert out["stats"]["kernel_drops"] == 0
