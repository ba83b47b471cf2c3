"""The netflow collector device fed live by softflowd (v5, v9, IPFIX) exporting the corpus's
trace and a generated one; references: nfdump's decode of the same exports, and softflowd ->
nfcapd -> nfdump run here."""
import os
import socket
import subprocess
import sys
import time

import pytest

import mapi
from helpers import CORPUS, need_tool, needs_corpus
from helpers.collector import NFDUMP_KEYS, PER_PROTO, nfdump_totals, totals_of, use_netflow_backend

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module", autouse=True)
def netflow_backend():
    use_netflow_backend()


# --- softflowd, live ---------------------------------------------------------------------------
def softflowd(trace, port, version, tmp):
    """softflowd -r TRACE exporting to 127.0.0.1:port; returns once it exited (all flows out).
    softflowd 1.1.0 reading a file blocks in accept() on its control socket between rounds of
    its main loop: poke it with softflowctl until it has read everything and exits."""
    need_tool("softflowd")
    need_tool("softflowctl")
    ctl = os.path.join(tmp, "sf.ctl")
    p = subprocess.Popen(["softflowd", "-d", "-r", str(trace), "-v", str(version),
                          "-n", "127.0.0.1:%d" % port, "-p", os.path.join(tmp, "sf.pid"),
                          "-c", ctl], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and p.poll() is None:
            if os.path.exists(ctl):
                subprocess.run(["softflowctl", "-c", ctl, "statistics"], capture_output=True,
                               timeout=10)
            time.sleep(0.02)
        assert p.wait(5) == 0, p.stderr.read()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def nfcapd_totals(trace, version, tmp):
    """softflowd -> a fresh nfcapd here -> nfdump -I: the independent reference."""
    need_tool("nfcapd")
    need_tool("nfdump")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    d = os.path.join(tmp, "nfcapd")
    os.makedirs(d)
    p = subprocess.Popen(["nfcapd", "-b", "127.0.0.1", "-p", str(port), "-w", d, "-t", "3600"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        softflowd(trace, port, version, tmp)
        time.sleep(0.5)
    finally:
        p.terminate()
        p.wait(10)
    files = [os.path.join(d, f) for f in sorted(os.listdir(d)) if f.startswith("nfcapd.")]
    text = subprocess.run(["nfdump", "-I", "-R", d], capture_output=True, text=True, timeout=60).stdout \
        if files else ""
    return nfdump_totals(text)


def _live_softflowd(trace, version, tmp):
    name = "netflow:udp:127.0.0.1:0"
    fds = []
    for fl in PER_PROTO[:5]:
        fd = mapi.create_flow(name)
        fids = [mapi.apply_function(fd, *fn) for fn in fl]
        mapi.connect(fd)
        fds.append((fd, fids))
    try:
        port = mapi.get_device_info(name)["port"]
        softflowd(trace, port, version, tmp)
        deadline = time.time() + 20
        last = -1
        while time.time() < deadline:        # softflowd has exited: wait until all is decoded
            st = mapi.stats(name)
            if st["datagrams"] == last and mapi.get_device_info(name)["packets"] >= st["records"]:
                break
            last = st["datagrams"]
            time.sleep(0.2)
        results = [[mapi.read_results(fd, fid).value for fid in fids] for fd, fids in fds]
        return totals_of(results), mapi.stats(name)
    finally:
        for fd, _ in fds:
            mapi.close_flow(fd)


@needs_corpus
@pytest.mark.parametrize("version", [5, 9, 10])
def test_softflowd_on_the_corpus_trace_equals_nfdump(version, tmp_path):
    trace = CORPUS / "pcap/PcapPlusPlus__example.pcap"
    ref = nfdump_totals((CORPUS / "reference" / {5: "example.softflowd-nfv5.nfdump.txt",
                                                 9: "example.softflowd-nfv9.nfdump.txt",
                                                 10: "example.softflowd-ipfix.nfdump.txt"}[version]).read_text())
    got, st = _live_softflowd(trace, version, str(tmp_path))
    assert {k: got[k] for k in NFDUMP_KEYS} == {k: ref[k] for k in NFDUMP_KEYS}
    assert st["malformed"] == 0 and st["kernel_drops"] == 0


def test_softflowd_on_a_generated_trace_equals_nfcapd(tmp_path):
    sys.path.insert(0, ROOT)
    from tools.gentrace import write_trace
    trace = str(tmp_path / "gen.pcap")
    write_trace(trace, packets=30000, seed=11)
    ref = nfcapd_totals(trace, 10, str(tmp_path / "ref"))
    assert ref.get("Flows", 0) > 100
    got, st = _live_softflowd(trace, 10, str(tmp_path))
    assert {k: got[k] for k in NFDUMP_KEYS} == {k: ref[k] for k in NFDUMP_KEYS}
