"""The libpcap drop-in as a client of mapid, beyond what the per-tool tests check in both modes:
`mapi-preload --server`, no interpreter in the application, a server that cannot be reached
(libpcap's way: the open fails with a message), a mapid killed under a reading tcpdump (it
stops with an error within about a second, no hang), and eight tcpdumps reading one file at
once through one mapid."""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from helpers import generated
from helpers.server import Mapid
from scampi.libpcap_shim import testing

HTTP = generated("mixed.pcap")         # web traffic among the rest; needs no corpus


@pytest.fixture()
def mapid():
    if testing.tool("tcpdump") is None:
        pytest.skip("tcpdump is not installed (make test installs it)")
    testing.library()
    d = tempfile.mkdtemp(prefix="shim-srv-")
    m = Mapid(d)
    yield m
    if m.proc.poll() is None:
        assert m.stop() == 0, m.log_text()
    shutil.rmtree(d, ignore_errors=True)


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "MAPI_SERVER")}
    env.update(extra)
    return env


def test_mapi_preload_server_option(mapid, tmp_path):
    report = tmp_path / "report.jsonl"
    preload = os.path.join(os.path.dirname(sys.executable), "mapi-preload")
    argv = ["tcpdump", "-nr", str(HTTP), "-c", "20", "tcp port 80"]
    stock = subprocess.run(argv, capture_output=True, env=_env())
    shim = subprocess.run([preload, "--server", mapid.url, "--report", str(report)] + argv,
                          capture_output=True, env=_env())
    assert (shim.returncode, shim.stdout, shim.stderr) == (stock.returncode, stock.stdout, stock.stderr)
    assert stock.stdout.count(b"\n") == 20
    text = report.read_text()
    assert '"server": true' in text and '"python": false' in text
    assert '"filter": "tcp port 80"' in text and '"filter_where": "mapi"' in text


def test_unreachable_server_is_an_open_error(tmp_path):
    testing.library()
    where = str(tmp_path / "no-such.sock")
    run = testing.run(["tcpdump", "-nr", str(HTTP)], True, server="unix:" + where)
    assert run.returncode == 1
    assert run.stdout == b""
    assert run.stderr.startswith(b"tcpdump: %s: cannot reach the MAPI server at %s: No such file "
                                 b"or directory" % (str(HTTP).encode(), where.encode())), run.stderr


def test_mapid_killed_under_a_reading_tcpdump(mapid):
    """tcpdump -r - on a pipe that stops in the middle and stays open: tcpdump prints what came,
    then waits on its ring until mapid dies."""
    import threading
    r, w = os.pipe()
    whole = generated("mixed.pcap").read_bytes()
    data = (whole + whole[24:] * 4)[:6 << 20]     # more than the 4 MiB mapid reads pipes by
    writer = threading.Thread(target=os.write, args=(w, data))
    env = _env(**testing.preload_env(testing.library()), MAPI_SERVER=mapid.url)
    p = subprocess.Popen(["tcpdump", "-nr", "-"], stdin=r, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env)
    os.close(r)
    writer.start()
    try:
        writer.join(30)
        time.sleep(1.0)
        assert p.poll() is None, p.communicate()
        maps = open("/proc/%d/maps" % p.pid).read()
        assert "libpcap.so.0.8" in maps and "python" not in maps     # no interpreter, not even loaded
        mapid.kill()
        t0 = time.monotonic()
        out, err = p.communicate(timeout=10)
        waited = time.monotonic() - t0
    finally:
        os.close(w)
        if p.poll() is None:
            p.kill()
    assert waited < 1.5, waited
    assert p.returncode == 1
    assert out.count(b"\n") > 100, err             # the packets that came before
    assert err.endswith(b"tcpdump: pcap_loop: the MAPI server went away\n"), err


def test_eight_readers_of_one_file(mapid):
    argv = ["tcpdump", "-nr", str(generated("mixed.pcap")), "tcp or udp"]
    stock = subprocess.run(argv, capture_output=True, env=_env())
    env = _env(**testing.preload_env(testing.library()), MAPI_SERVER=mapid.url)
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
             for _ in range(8)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert stock.stdout.count(b"\n") > 1000
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == stock.returncode == 0, err
        assert out == stock.stdout
