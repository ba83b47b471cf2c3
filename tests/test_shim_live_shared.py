"""Eight unchanged `tcpdump -i` on one interface through the libpcap drop-in in server mode are
eight flows on one mapid device: one AF_PACKET socket on the interface (the namespace's
/proc/net/packet) where eight native tcpdumps have eight, and each tcpdump writes exactly the
packets that were replayed (what native tcpdump prints for its file equals what it prints for
the replayed trace).  A veth pair in two namespaces made by the test (tools/netns.py), mapid in
the receiving one, tcpreplay at a rate that loses nothing here; the figures at the machine's top
rate are tools/bench_shim_server.py's."""
import os

import pytest

from helpers import ROOT, generated
from scampi.libpcap_shim import testing

TRACE = generated("slow.pcap")
N = 8


@pytest.fixture(scope="module")
def net():
    from tools.netns import VethPair, can_create
    ok, why = can_create()
    if not ok:
        pytest.skip(why)
    for t in ("tcpreplay", "tcpdump", "taskset"):
        if testing.tool(t) is None:
            pytest.skip("%s is not installed" % t)
    with VethPair() as pair:
        yield pair


def _replayed(tmp_path, trace):
    from tools.shim_live import printed
    return printed(str(trace))


def test_eight_tcpdumps_share_one_capture(net, tmp_path):
    from tools.shim_live import printed, run_set
    expected = printed(str(TRACE))
    assert expected.count(b"\n") > 100
    out = run_set(net, str(TRACE), n=N, mode="server", pps=2000, workdir=str(tmp_path))
    assert out["replay"].get("failed_packets", 0) == 0, out["replay"]
    # one packet socket on the interface: mapid's; the tcpdumps opened none
    assert out["sockets"] == 1, out["socket_rows"]
    for d in out["tcpdumps"]:
        assert d["rc"] == 0, (d, out["mapid_log"][-3000:])
        assert d["dropped"] == 0, d
        assert printed(d["file"]) == expected, d
        assert d["captured"] == expected.count(b"\n")


def test_eight_native_tcpdumps_have_eight_sockets(net, tmp_path):
    """The reference for the socket count (and that the rate loses nothing natively either)."""
    from tools.shim_live import printed, run_set
    expected = printed(str(TRACE))
    out = run_set(net, str(TRACE), n=N, mode="native", pps=2000, workdir=str(tmp_path))
    assert out["sockets"] == N, out["socket_rows"]
    for d in out["tcpdumps"]:
        assert d["rc"] == 0 and d["dropped"] == 0, d
        assert printed(d["file"]) == expected
