"""The pcap backend (pcapy-ng: any capture source libpcap knows) against stock tcpdump capturing
at the same time: on a veth pair (a generated trace replayed with tcpreplay) and on the "any"
device of a fresh namespace (datagrams the test sends over its loopback).  Counts, wire bytes
and filtered counts must equal those of tcpdump's own capture file."""
import os
import signal
import struct
import subprocess
import sys
import time

import pytest

import mapi
from mapi.errors import ENODEV
from helpers import need_tool, tcpdump_records, need_netns

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from tools import netns  # noqa: E402
from tools.gentrace import write_trace  # noqa: E402

BACKEND = ["scampi.backends.pcap"]
PPS = 20000


@pytest.fixture(scope="module", autouse=True)
def live():
    need_netns("live capture tests")
    pytest.importorskip("pcapy")
    need_tool("tcpdump")


def pcap_totals(path):
    """(packets, wire bytes) of a classic pcap file, from its record headers."""
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack("<I", data[:4])[0]
    order = "<" if magic in (0xa1b2c3d4, 0xa1b23c4d) else ">"
    pos, packets, wire = 24, 0, 0
    while pos + 16 <= len(data):
        _, _, incl, orig = struct.unpack(order + "IIII", data[pos:pos + 16])
        packets += 1
        wire += orig
        pos += 16 + incl
    return packets, wire


class Tcpdump:
    """Stock tcpdump writing what it sees on `iface` of namespace `ns` to a file."""

    def __init__(self, net, ns, iface, path, extra=()):
        self.path = path
        self.proc = net.spawn(ns, [need_tool("tcpdump"), "-i", iface, "-n", "-U", *extra,
                                   "-w", str(path)], stderr=subprocess.PIPE, text=True)
        lines = []
        while not lines or ("listening on" not in lines[-1] and lines[-1]):
            lines.append(self.proc.stderr.readline())   # "listening on IFACE, link-type ..."
        assert "listening on" in lines[-1], lines

    def stop(self):
        time.sleep(0.3)                              # the last packets reach the file
        self.proc.send_signal(signal.SIGINT)
        self.proc.communicate(timeout=20)
        return pcap_totals(self.path)


FLOWS = [
    {"functions": [["PKT_COUNTER"], ["BYTE_COUNTER"]]},
    {"functions": [["BPF_FILTER", "tcp"], ["PKT_COUNTER"], ["BYTE_COUNTER"]]},
    {"functions": [["BPF_FILTER", "udp port 53"], ["PKT_COUNTER"], ["TO_BUFFER"]], "drain": 2},
]


def test_veth_capture_equals_tcpdumps(tmp_path):
    need_tool("tcpreplay")
    trace = tmp_path / "trace.pcap"
    sent_stats = write_trace(str(trace), packets=3000, seed=5)
    ref = tmp_path / "tcpdump.pcap"
    with netns.VethPair() as net:
        dump = Tcpdump(net, net.ns_rx, net.rx_if, ref)
        cap = net.capture(dict(dev="pcap:" + net.rx_if, register=BACKEND, flows=FLOWS,
                               until={"flow": 0, "fid": 0, "value": 3000}, timeout=30))
        sent = net.replay(trace, pps=PPS)
        out = cap.finish()
        packets, wire = dump.stop()
    assert "error" not in out, out
    assert sent["packets"] == 3000 and out["reached"], (sent, out["results"])
    assert out["stats"]["kernel_drops"] == 0, out["stats"]
    # tcpdump's capture of the same wire, and the replayed file itself
    assert out["results"][0] == [packets, wire] == [3000, sent_stats.frame_bytes]
    tcp = tcpdump_records(ref, "tcp")[0]
    assert out["results"][1][1:] == [len(tcp), sum(r[1] for r in tcp)]
    dns = tcpdump_records(ref, "udp port 53")[0]
    assert out["results"][2][1] == len(dns) > 0
    assert [bytes.fromhex(p[3]) for p in out["packets"]["2"]] == [r[2] for r in dns]
    info = out["info"]
    assert info["backend"] == "pcap" and info["linktype"] == 1 and "hardware" not in info
    assert "next_batch" in info["reading"] and info["library"]["path"]


SENDER = r"""
import socket, sys
n = int(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(n):
    s.sendto(bytes(range(256)) * (1 + i % 5), ("127.0.0.1", 9000 + i % 3))
"""


@pytest.mark.parametrize("device,options", [("any", {}), ("pcap:lo", {"snaplen": 300})],
                         ids=["any-bare-name", "lo-snaplen-cut"])
def test_loopback_traffic_equals_tcpdumps(tmp_path, device, options):
    """Datagrams of 256..1280 bytes over the loopback of a fresh namespace (nothing else
    talks there).  "any" is a bare name: the pcap backend claims it (no interface has that
    name).  With a cut snapshot length packets arrive one callback each and the wire lengths
    still count in full."""
    n = 600
    ref = tmp_path / "tcpdump.pcap"
    iface = device.split(":")[-1]
    extra = ["-s", str(options["snaplen"])] if "snaplen" in options else []
    if iface == "any":
        extra = ["-y", "LINUX_SLL"]     # pcapy-ng's libpcap 1.9 has no SLL2: the same headers
    with netns.VethPair() as net:
        dump = Tcpdump(net, net.ns_rx, iface, ref, extra)
        flows = [{"functions": [["PKT_COUNTER"], ["BYTE_COUNTER"]]},
                 {"functions": [["BPF_FILTER", "udp dst port 9001"], ["PKT_COUNTER"]]}]
        cap = net.capture(dict(dev=device, options=options, register=BACKEND, flows=flows,
                               until_quiet_ms=700, timeout=30))
        net.ns_exec(net.ns_rx, [sys.executable, "-c", SENDER, str(n)])
        out = cap.finish()
        packets, wire = dump.stop()
    assert "error" not in out, out
    assert out["info"]["backend"] == "pcap", out["info"]
    assert out["stats"]["ps_drop"] == 0, out["stats"]
    assert packets >= n                    # every datagram, once or (any: in and out) twice
    assert out["results"][0] == [packets, wire]
    filtered = tcpdump_records(ref, "udp dst port 9001")[0]
    assert out["results"][1][1] == len(filtered) >= n // 3
    if "snaplen" in options:
        assert "dispatch" in out["info"]["reading"]
        assert wire > packets * 300        # the wire lengths, not the cut ones


def test_unknown_source_is_a_clear_error():
    with pytest.raises(mapi.MapiError) as exc:
        mapi.create_flow("pcap:nosuchdev0")
    assert exc.value.code == ENODEV
    assert "nosuchdev0" in str(exc.value) and "any" in str(exc.value)   # libpcap's devices listed
