"""The mapi command with remote servers: `mapi --server grpcs://... run` replays the sensor's
trace there and prints what tcpdump counts; `mapi run -i 'grpcs://s1/dev, grpcs://s2/dev'`
runs a distributed flow over two live sensors and prints combined and per-sensor values."""
import json
import subprocess
import sys

import pytest

from helpers import generated, need_tool, tcpdump_records, need_netns
from helpers.remote import RemoteMapid, Sensor, client_env, pki_fixture
from helpers.server import open_dir

FLOW = 'BPF_FILTER("tcp") PKT_COUNTER'
pki = pki_fixture()


def mapi_cmd(pki, *args, **kw):
    return subprocess.run([sys.executable, "-m", "mapi.cli", *args], capture_output=True,
                          text=True, env=client_env(pki), timeout=120, **kw)


def test_server_option_runs_on_the_sensor(tmp_path, pki):
    traces = open_dir("scampi-remote-cli-")
    trace = generated("mixed.pcap")
    (traces / "mixed.pcap").write_bytes(trace.read_bytes())
    want = len(tcpdump_records(trace, "tcp")[0])
    with RemoteMapid(tmp_path, pki, traces=traces) as m:
        r = mapi_cmd(pki, "--server", m.remote_url, "run", "--json", "-r", "mixed.pcap", FLOW,
                     cwd=str(tmp_path))
        assert r.returncode == 0, r.stderr
        out = json.loads(r.stdout)
        assert out["flows"][0]["functions"][1]["result"] == want
        r = mapi_cmd(pki, "--server", m.remote_url, "explain", "-r", "mixed.pcap", FLOW,
                     cwd=str(tmp_path))
        assert r.returncode == 0, r.stderr
        assert "BPF_FILTER('tcp')" in r.stdout and "alice (remote" in r.stdout
        bad = subprocess.run([sys.executable, "-m", "mapi.cli", "--server", m.remote_url, "run",
                              "-r", "mixed.pcap", FLOW], capture_output=True, text=True,
                             env=client_env(pki, pki.foreign), timeout=60, cwd=str(tmp_path))
        assert bad.returncode == 2 and m.remote_url in bad.stderr


def test_distributed_run_prints_combined_and_per_sensor(tmp_path, pki):
    need_netns("distributed run on live sensors")
    need_tool("tcpreplay")
    files = [generated("mixed.pcap"), generated("tcp4.pcap")]
    want = [len(tcpdump_records(f, "tcp")[0]) for f in files]
    sensors = []
    try:
        for i in range(2):
            sensors.append(Sensor(10 + i, tmp_path, pki))
        scope = ", ".join(s.device_url() for s in sensors)
        proc = subprocess.Popen([sys.executable, "-m", "mapi.cli", "run", "--json", "-i", scope,
                                 "--duration", "6s", FLOW], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=client_env(pki))
        line = proc.stderr.readline()                     # the flows are connected
        assert "flows on 2 sensors" in line, line + proc.stderr.read()
        for s, f in zip(sensors, files):
            s.replay(f, pps=20000)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        rows = json.loads(out)
        counter = rows[1]
        assert counter["combined"] == sum(want)
        assert [counter["sensors"][s.device_url()] for s in sensors] == want
        assert not counter["partial"]
        text = subprocess.run([sys.executable, "-m", "mapi.cli", "run", "-i", scope,
                               "--duration", "1s", FLOW], capture_output=True, text=True,
                              env=client_env(pki), timeout=60)
        assert text.returncode == 0, text.stderr
        head = text.stdout.splitlines()[0].split()
        assert head[:3] == ["FLOW", "FUNCTION", "COMBINED"]
        assert head[3:] == [s.device_url()[len("grpcs://"):] for s in sensors]
    finally:
        for s in sensors:
            s.close()
