"""Time passes on a live device without packets: after traffic stops, PKT_RATE and BIT_RATE
fall to 0 within two intervals, BUCKET keeps adding (empty) intervals, THRESHOLD on intervals
fires for each idle interval when it ends, and FLOW_REPORT exports flows at their idle timeout
with no further packet.  On a veth pair fed by tcpreplay (capture inside the receiving
namespace) and on loopback (in this process, UDP sent by the test).

The deadlines are the functions' own (two intervals, the idle timeout) plus the device's
delivery lag and a margin for this shared machine's scheduling; without the device clock none
of these results would move after the last packet."""
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

import mapi
from helpers import ROOT, generated, need_tool
from helpers import timewatch

sys.path.insert(0, str(ROOT))
from tools import netns  # noqa: E402

TRACE = generated("mixed.pcap")                 # 4631 packets, ~0.9 s at 5000 packets/s
INTERVAL = 500 * 10 ** 6
IDLE = 10 ** 9
LAG = 50 * 10 ** 6                              # mapi.ticks.DEFAULT_LAG_NS
MARGIN = 300 * 10 ** 6                          # scheduling on a busy 2-core machine


def spec(dev, expr=""):
    return dict(dev=dev, interval=INTERVAL, idle_timeout=IDLE, quiet_s=3.5, timeout_s=60,
                filter=expr)


def check_time_passed(doc):
    obs = doc["obs"]
    count, t_last = obs[-1]["count"]            # packets, timestamp of the last one
    assert count > 0, "no packet captured"
    t_end = obs[-1]["t"]
    assert t_end - t_last >= 3 * 10 ** 9, "watched less than 3 s after the last packet"

    # rates: non-zero while traffic came, 0 within two intervals after it stopped
    assert any(o["rate"][0] for o in obs), "PKT_RATE never saw the traffic"
    late = [o for o in obs if o["t"] >= t_last + 2 * INTERVAL + LAG + MARGIN]
    assert late
    for o in late:
        assert o["rate"][0] == 0.0 and o["bits"][0] == 0.0, (o, t_last)
        assert o["rate"][1] > t_last + INTERVAL, "the rate's interval did not move on"

    # BUCKET: every interval closes, packets or not; the per-interval counts add up to the count
    entries = obs[-1]["bucket"][0]
    assert sum(v for _, v in entries) == count
    idle = [(start, v) for start, v in entries if start > t_last]
    assert all(v == 0 for _, v in idle)
    assert len(idle) >= (t_end - t_last - 2 * INTERVAL - LAG - MARGIN) // INTERVAL, (len(idle), entries)
    starts = [s for s, _ in entries]
    assert all(b - a == INTERVAL for a, b in zip(starts, starts[1:]))

    # THRESHOLD(LESS, count, 1, interval): one event per idle interval, raised when it ends
    after = [(wall, ts) for wall, ts in doc["events"] if ts > t_last + INTERVAL]
    assert len(after) >= len(idle) - 1, (after, idle)
    delays = sorted(wall - ts for wall, ts in after)
    assert delays[len(delays) // 2] < INTERVAL, delays

    # FLOW_REPORT: every flow expired (idle or ended) and exported with no packet after them
    report = obs[-1]["report"][0]
    assert report["flows"] > 0 and report["active"] == 0, report
    assert report["records"] == report["flows"] and report["exported"] == report["records"], report
    assert doc["received"], "no IPFIX datagram arrived"
    expired = next(o for o in obs if o["report"][0]["active"] == 0 and o["t"] > t_last)
    # sweeps run every half timeout: a flow goes at most 1.5 timeouts after its last packet, and
    # the observation that sees it gone comes at most one interval later
    assert expired["t"] <= t_last + IDLE * 3 // 2 + INTERVAL + LAG + MARGIN, (expired["t"] - t_last)


@pytest.fixture(scope="module")
def veth_ok():
    ok, why = netns.can_create()
    if not ok:
        pytest.skip("live tests: " + why)
    need_tool("tcpreplay")


@pytest.mark.parametrize("backend", ["ring", "nic"])
def test_time_passes_on_an_idle_veth(veth_ok, backend):
    with netns.VethPair() as net:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests")]))
        p = net.spawn(net.ns_rx, [sys.executable, str(ROOT / "tests" / "helpers" / "timewatch.py"),
                                  json.dumps(spec("%s:%s" % (backend, net.rx_if)))],
                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        line = p.stdout.readline()
        assert line.strip() == "READY", (line, p.stderr.read() if p.poll() is not None else "")
        sent = net.replay(TRACE, pps=5000)
        out, err = p.communicate(timeout=90)
    assert p.returncode == 0, err[-3000:]
    doc = json.loads(out.splitlines()[-1])
    assert doc["obs"][-1]["count"][0] == sent["packets"]
    check_time_passed(doc)


def test_time_passes_on_idle_loopback():
    try:
        probe = mapi.create_flow("nic:lo")
    except mapi.MapiError as exc:
        pytest.skip("loopback capture: %s" % exc)
    mapi.close_flow(probe)
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))                   # a listener: no ICMP port unreachable back
    port = rx.getsockname()[1]
    s = spec("nic:lo", "udp dst port %d" % port)

    def send():
        tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for i in range(300):
            tx.sendto(b"%04d" % i * 16, ("127.0.0.1", port))
            time.sleep(0.003)
        tx.close()
    ready = threading.Event()
    sender = threading.Thread(target=lambda: (ready.wait(30), send()))
    sender.start()
    try:
        doc = timewatch.main(s, on_ready=ready.set)
    finally:
        ready.set()
        sender.join()
        rx.close()
    assert doc["obs"][-1]["count"][0] == 300
    check_time_passed(doc)
    assert doc["obs"][-1]["report"][0]["flows"] == 1


def test_mapi_run_interval_rows_show_the_rate_fall_to_zero(veth_ok):
    """`mapi run -i --interval`: the rows go on at their cadence after the replay, with
    PKT_RATE falling to 0 and the counters' rows adding up to what was sent."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with netns.VethPair() as net:
        p = net.spawn(net.ns_rx, [sys.executable, "-m", "mapi.cli", "run", "-i", "ring:" + net.rx_if,
                                  "--interval", "500ms", "--json", 'PKT_COUNTER PKT_RATE("500ms")'],
                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                      cwd=str(ROOT))
        line = p.stderr.readline()
        assert line.startswith("mapi: listening on"), (line, p.stderr.read() if p.poll() else "")
        sent = net.replay(TRACE, pps=5000)
        done = time.time_ns()
        time.sleep(3)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    rows = [d for d in map(json.loads, out.splitlines()) if d["type"] == "interval"]
    values = [[f["value"] for f in r["flows"][0]["functions"]] for r in rows]
    assert sum(count for count, _ in values) == sent["packets"]
    assert any(rate for _, rate in values)
    idle = [v for r, v in zip(rows, values) if r["start_ns"] >= done + INTERVAL]
    assert len(idle) >= 3 and all(v == [0, 0.0] for v in idle), values
    assert all(b["start_ns"] - a["start_ns"] == INTERVAL for a, b in zip(rows, rows[1:]))
