"""Live devices through mapid: mapid runs in the receiving namespace of a veth pair, two client
processes (outside it, over the Unix socket) create flows on ring:IF, tcpreplay sends a trace
from the other end.  One device, one AF_PACKET socket for both clients; each flow's results
equal tcpdump's reading of the replayed file (counts, and the buffered packets byte for byte)."""
import json
import os
import subprocess
import sys
import time

import pytest

from helpers import generated, need_tool, tcpdump_pcap
from helpers.server import Mapid, open_dir, start_client

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from tools import netns  # noqa: E402

TRACE = generated("mixed.pcap")
PPS = 20000          # well inside what the receiver keeps up with: no kernel drops expected


@pytest.fixture(scope="module", autouse=True)
def can_capture():
    ok, why = netns.can_create()
    if not ok:
        pytest.skip("live capture through mapid: " + why)
    need_tool("tcpreplay")


class NamespacedMapid(Mapid):
    """mapid started inside the receiving namespace (its socket is in the shared file system)."""

    def __init__(self, directory, net):
        self.net = net
        super().__init__(directory)

    def _spawn(self, cmd, env):
        return self.net.spawn(self.net.ns_rx, cmd, stdout=self._log, stderr=subprocess.STDOUT,
                              env=env, cwd=ROOT)


CLIENT = """
    dev, expr, want = sys.argv[1], sys.argv[2], int(sys.argv[3])
    held = mapi.open_live_device(dev)            # opened by the server, not here
    fd = mapi.create_flow(dev)
    mapi.apply_function(fd, "BPF_FILTER", expr)
    c = mapi.apply_function(fd, "PKT_COUNTER")
    b = mapi.apply_function(fd, "TO_BUFFER", mapi.NOWAIT)
    mapi.connect(fd)
    emit({"device": held.name, "state": held.info()["state"], "fd": fd})
    packets = []
    deadline = time.time() + 60
    while len(packets) < want and time.time() < deadline:
        p = mapi.get_next_pkt(fd, b)
        if p is None:
            time.sleep(0.01)
        else:
            packets.append([p.caplen, p.wlen, p.data.hex()])
    time.sleep(0.5)                               # nothing more may come
    while True:
        p = mapi.get_next_pkt(fd, b)
        if p is None:
            break
        packets.append([p.caplen, p.wlen, p.data.hex()])
    emit({"count": mapi.read_results(fd, c).value, "packets": packets,
          "buffer": mapi.read_results(fd, b).value, "stats": mapi.stats(dev)})
"""


def line_of(p, m):
    """The next JSON line of client p, or its stderr and mapid's log as the failure."""
    line = p.stdout.readline()
    if not line:
        p.kill()
        raise AssertionError("client ended: %s\nmapid log:\n%s" % (p.communicate()[1], m.log_text()))
    return json.loads(line)


def packet_sockets(pid):
    """Inodes of the AF_PACKET sockets in `pid`'s network namespace, and those it holds."""
    with open("/proc/%d/net/packet" % pid) as f:
        in_ns = {int(line.split()[-1]) for line in list(f)[1:]}
    held = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if target.startswith("socket:["):
            held.add(int(target[8:-1]))
    return in_ns, held & in_ns


def test_two_clients_one_live_device(tmp_path):
    exprs = ["udp", "tcp port 80"]
    want = [len(tcpdump_pcap(TRACE, e)) for e in exprs]
    with netns.VethPair() as net:
        with NamespacedMapid(open_dir("scampi-mapid-live-"), net) as m:
            dev = "ring:" + net.rx_if
            procs = [start_client(m, CLIENT, args=[dev, e, str(n)]) for e, n in zip(exprs, want)]
            try:
                ready = [line_of(p, m) for p in procs]
                assert [r["device"] for r in ready] == [dev, dev]
                in_ns, held = packet_sockets(m.pid)
                assert len(in_ns) == 1 and held == in_ns     # one capture for both clients
                sent = net.replay(TRACE, pps=PPS)
                assert sent["packets"] == 4631 and sent.get("failed_packets", 0) == 0
                got = [line_of(p, m) for p in procs]
                for p in procs:
                    p.wait(60)
            finally:
                for p in procs:
                    if p.poll() is None:
                        p.kill()
            deadline = time.monotonic() + 10              # closed with the last flow
            while packet_sockets(m.pid)[0] and time.monotonic() < deadline:
                time.sleep(0.05)
            assert packet_sockets(m.pid)[0] == set()
    for expr, n, g in zip(exprs, want, got):
        ref = tcpdump_pcap(TRACE, expr)
        assert g["stats"]["kernel_drops"] == 0 and g["buffer"]["dropped"] == 0
        assert g["count"] == n == len(g["packets"]), expr
        assert [(len(bytes.fromhex(d)), w, bytes.fromhex(d)) for _, w, d in g["packets"]] == \
            [(len(r[2]), r[1], r[2]) for r in ref], expr


OTHER = """
    fd = mapi.create_flow(sys.argv[1])
    c = mapi.apply_function(fd, "PKT_COUNTER")
    mapi.connect(fd)
    emit({"fd": fd})
    sys.stdin.readline()
    import time
    last, now = -1, mapi.read_results(fd, c).value
    deadline = time.monotonic() + 10
    while now != last and time.monotonic() < deadline:    # the capture's last block may
        time.sleep(0.3)                                   # still be on its way
        last, now = now, mapi.read_results(fd, c).value
    emit({"count": now})
"""
MAPI = os.path.join(os.path.dirname(sys.executable), "mapi")


def mapi_run_live(m, dev, net, count):
    """`mapi --server URL run -i DEV -c COUNT --json udp` while the trace is replayed."""
    from helpers.server import clean_env
    cli = subprocess.Popen([MAPI, "--server", m.url, "run", "-i", dev, "-c", str(count), "--json",
                            "udp"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env=clean_env())
    try:
        line = cli.stderr.readline()
        assert "listening on %s" % dev in line, line + cli.stderr.read()
        net.replay(TRACE, pps=PPS)
        out, err = cli.communicate(timeout=60)
    finally:
        if cli.poll() is None:
            cli.kill()
    assert cli.returncode == 0, err
    return [f["result"] for f in json.loads(out)["flows"][0]["functions"]]


def test_mapi_run_live_through_the_server():
    """-c ends the run: with another client on the device its capture goes on (the run leaves
    it), alone the run stops the device; either way the counts are tcpdump's."""
    udp = tcpdump_pcap(TRACE, "udp")
    with netns.VethPair() as net:
        with NamespacedMapid(open_dir("scampi-mapid-live-"), net) as m:
            dev = "ring:" + net.rx_if
            other = start_client(m, OTHER, args=[dev])
            try:
                line_of(other, m)
                got = mapi_run_live(m, dev, net, 100)
                other.stdin.write("\n")
                other.stdin.flush()
                theirs = line_of(other, m)
                other.wait(30)
            finally:
                if other.poll() is None:
                    other.kill()
            alone = mapi_run_live(m, dev, net, 50)
    # BPF_FILTER, LIMIT, PKT_COUNTER, BYTE_COUNTER
    assert got[2:] == [100, sum(r[1] for r in udp[:100])]
    assert theirs == {"count": 4631}                  # the whole replay, not cut by the run
    assert alone[2:] == [50, sum(r[1] for r in udp[:50])]
