"""`mapi run -i` as an operator runs it: on a veth pair in network namespaces made by the test,
fed by tcpreplay from the other end.  The per-second rows add up to tcpdump's count of the
replayed file; Ctrl-C (SIGINT from the test), -c and --duration end the run with the final
results; several devices and card devices work the same."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from helpers import ROOT, generated, need_tool, tcpdump_pcap, need_netns
from helpers.cli import tcpdump_counts

sys.path.insert(0, str(ROOT))
from tools import netns  # noqa: E402

TRACE = generated("mixed.pcap")                               # 4631 packets
MAPI = [sys.executable, "-m", "mapi.cli"]
PPS = 5000


@pytest.fixture(scope="module", autouse=True)
def live_ok():
    need_netns("live CLI tests")
    need_tool("tcpreplay")
    if not TRACE.exists():
        pytest.skip("corpus trace %s missing" % TRACE)


def start(net, args, command="run"):
    """`mapi COMMAND ARGS` in the receiving namespace; returns once it listens."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = net.spawn(net.ns_rx, MAPI + [command] + args, stdout=subprocess.PIPE,
                  stderr=subprocess.PIPE, text=True, env=env, cwd=str(ROOT))
    heard = []
    while True:
        line = p.stderr.readline()
        heard.append(line)
        if not line:
            raise AssertionError("mapi run did not start: %s %s" % ("".join(heard), p.communicate()))
        if line.startswith("mapi: listening on"):
            return p


def finish(p, signal_it=True, timeout=60):
    if signal_it:
        p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=timeout)
    return p.returncode, out, err


def json_lines(out):
    docs = [json.loads(line) for line in out.splitlines() if line.strip()]
    return [d for d in docs if d["type"] == "interval"], [d for d in docs if d["type"] == "final"]


def column_sums(rows, flow=1, fid=None):
    sums = {}
    for r in rows:
        for fl in r["flows"]:
            if fl["flow"] != flow:
                continue
            for f in fl["functions"]:
                if f["kind"] == "count":
                    sums[f["name"]] = sums.get(f["name"], 0) + f["value"]
    return sums


def test_per_second_json_rows_add_up_to_tcpdump_count():
    want_all = tcpdump_counts(TRACE, "")
    want_web = tcpdump_counts(TRACE, "tcp port 80")
    with netns.VethPair() as net:
        p = start(net, ["-i", "ring:" + net.rx_if, "--interval", "1s", "--json",
                        "PKT_COUNTER BYTE_COUNTER", 'BPF_FILTER("tcp port 80") PKT_COUNTER'])
        sent = net.replay(TRACE, pps=PPS)
        time.sleep(1.5)
        code, out, err = finish(p)
    assert sent["packets"] == want_all[0]
    assert code == 0, err
    rows, (final,) = json_lines(out)
    assert len(rows) >= 2                    # the replay lasts about a second at 5000 pps
    assert column_sums(rows, 1) == {"PKT_COUNTER": want_all[0], "BYTE_COUNTER": want_all[1]}
    assert column_sums(rows, 2) == {"BPF_FILTER": want_web[0], "PKT_COUNTER": want_web[0]}
    assert final["flows"][0]["functions"][0]["result"] == want_all[0]
    assert final["live"] is True and final["stats"]["ps_drop"] == 0
    # wall-clock rows on the second grid, one after the other, times in ISO 8601 UTC
    assert all(b["start_ns"] - a["start_ns"] == 10 ** 9 for a, b in zip(rows, rows[1:]))
    assert all(r["end_ns"] % 10 ** 9 == 0 and r["end"].endswith(":%02dZ" % (r["end_ns"] // 10 ** 9 % 60))
               for r in rows)


def test_ctrl_c_prints_the_final_table():
    want = tcpdump_counts(TRACE, "udp")
    with netns.VethPair() as net:
        p = start(net, ["-i", net.rx_if, "--interval", "1s", "udp"])
        net.replay(TRACE, pps=PPS)
        time.sleep(1.2)
        code, out, err = finish(p)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["INTERVAL", "START", "(UTC)"]
    table = lines[lines.index(next(l for l in lines if l.startswith("FLOW  FUNCTION"))):]
    assert table[1].split()[-4:] == ["passed", str(want[0]), "of", str(4631)] or \
        "passed %d of" % want[0] in table[1]
    assert table[2].split()[-1] == str(want[0]) and table[3].split()[-1] == str(want[1])
    assert table[-1].startswith("%d packets captured on %s" % (4631, net.rx_if))
    per_interval = [int(l.split()[2]) for l in lines[1:lines.index(table[0])] if l.strip()]
    assert sum(per_interval) == want[0]


def test_count_and_duration_end_the_run(tmp_path):
    out_file = tmp_path / "first100.pcap"
    with netns.VethPair() as net:
        p = start(net, ["-i", "nic:" + net.rx_if, "-c", "100", "-w", str(out_file), "--json", "tcp"])
        net.replay(TRACE, pps=PPS)
        code, out, err = finish(p, signal_it=False)
        assert code == 0, err
        funcs = {f["name"]: f["result"] for f in json.loads(out)["flows"][0]["functions"]}
        assert funcs["LIMIT"] == funcs["PKT_COUNTER"] == 100
        # the file holds what tcpdump -c 100 tcp writes from the replayed trace
        ref = tmp_path / "ref.pcap"
        subprocess.run([need_tool("tcpdump"), "-r", str(TRACE), "-c", "100", "-w", str(ref), "tcp"],
                       check=True, capture_output=True)
        assert [(w, d) for _, w, d in tcpdump_pcap(out_file, "")] == \
            [(w, d) for _, w, d in tcpdump_pcap(ref, "")]
        t0 = time.monotonic()
        p = start(net, ["-i", "ring:" + net.rx_if, "--duration", "2s", "--json", "PKT_COUNTER"])
        code, out, err = finish(p, signal_it=False)
        assert code == 0 and time.monotonic() - t0 >= 2, err
        assert json.loads(out)["flows"][0]["functions"][0]["result"] == 0


def test_several_devices_and_a_card():
    want = tcpdump_counts(TRACE, "tcp port 80")
    with netns.VethPair() as net:
        p = start(net, ["-i", "ring:" + net.rx_if, "-i", "combo6:" + net.rx_if, "--interval", "1s",
                        "--json", 'BPF_FILTER("tcp port 80") PKT_COUNTER BYTE_COUNTER'])
        net.replay(TRACE, pps=PPS)
        time.sleep(1.5)
        code, out, err = finish(p)
    assert code == 0, err
    rows, finals = json_lines(out)
    assert sorted(f["device"] for f in finals) == sorted(["ring:" + net.rx_if, "combo6:" + net.rx_if])
    for dev in ("ring:", "combo6:"):
        mine = [r for r in rows if r["device"] == dev + net.rx_if]
        assert column_sums(mine, 1)["PKT_COUNTER"] == want[0]
        assert column_sums(mine, 1)["BYTE_COUNTER"] == want[1]


def test_plot_of_a_live_run(tmp_path):
    pytest.importorskip("matplotlib", reason="plots need matplotlib")
    png = tmp_path / "live.png"
    with netns.VethPair() as net:
        p = start(net, ["-o", str(png), "-i", net.rx_if, "--json", "tcp"], command="plot")
        net.replay(TRACE, pps=PPS)
        time.sleep(1.2)
        code, out, err = finish(p)
    assert code == 0, err
    rows, _ = json_lines(out)
    assert "%d intervals plotted into %s" % (len(rows), png) in err
    from PIL import Image
    img = Image.open(png).convert("L")
    assert img.size == (1100, 750) and img.histogram()[255] < 0.98 * 1100 * 750
    assert column_sums(rows)["PKT_COUNTER"] == tcpdump_counts(TRACE, "tcp")[0]


def test_unknown_device_is_one_clear_line():
    out = subprocess.run(MAPI + ["run", "-i", "nosuchif0", "PKT_COUNTER"], capture_output=True,
                         text=True, timeout=60, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.startswith("mapi: ") and "nosuchif0" in out.stderr
    assert out.stderr.count("\n") == 1


def scrape(net, port):
    """{(name, frozenset(labels)): value} of the metrics served in the receiving namespace."""
    code = ("import urllib.request; print(urllib.request.urlopen("
            "'http://127.0.0.1:%d/metrics', timeout=10).read().decode())" % port)
    text = net.ns_exec(net.ns_rx, [sys.executable, "-c", code]).stdout
    from prometheus_client.parser import text_string_to_metric_families
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def metric(samples, name, **labels):
    want = {k: str(v) for k, v in labels.items()}
    found = [v for (n, ls), v in samples.items() if n == name and want.items() <= dict(ls).items()]
    assert len(found) == 1, (name, labels, found)
    return found[0]


def test_metrics_during_a_live_run_equal_the_final_results():
    pytest.importorskip("prometheus_client", reason="--metrics needs prometheus-client")
    web = tcpdump_counts(TRACE, "tcp port 80")
    # the flows' filters go to the kernel as one union socket filter: the device sees only that
    wanted = tcpdump_counts(TRACE, "(tcp port 80) or ip")[0]
    port = 9108
    with netns.VethPair() as net:
        dev = "ring:" + net.rx_if
        p = start(net, ["-i", dev, "--metrics", "127.0.0.1:%d" % port, "--json",
                        'BPF_FILTER("tcp port 80") PKT_COUNTER BYTE_COUNTER',
                        'BPF_FILTER("ip") TOP(2, "ip.src")'])
        net.replay(TRACE, pps=PPS)
        deadline = time.monotonic() + 30
        while True:                  # until the engine has taken every packet in
            samples = scrape(net, port)
            if metric(samples, "mapi_device_packets_total", device=dev) == wanted or \
                    time.monotonic() > deadline:
                break
            time.sleep(0.2)
        code, out, err = finish(p)
    assert code == 0, err
    final = json.loads(out)
    assert metric(samples, "mapi_device_packets_total", device=dev) == final["packets"] == wanted
    assert metric(samples, "mapi_function_value", device=dev, flow=1, function="PKT_COUNTER") == web[0]
    assert metric(samples, "mapi_function_value", device=dev, flow=1, function="BYTE_COUNTER") == web[1]
    assert metric(samples, "mapi_function_packets_out_total", device=dev, flow=1,
                  function="BPF_FILTER") == web[0]
    funcs = final["flows"][0]["functions"]
    assert [funcs[1]["result"], funcs[2]["result"]] == list(web)
    for rank, entry in enumerate(final["flows"][1]["functions"][1]["result"], 1):
        assert metric(samples, "mapi_function_top_packets", device=dev, rank=rank,
                      key=entry["value"]) == entry["packets"]
        assert metric(samples, "mapi_function_top_bytes", device=dev, rank=rank) == entry["bytes"]
    for layer in ("kernel", "interface", "engine"):
        assert metric(samples, "mapi_drops_total", device=dev, layer=layer) == 0
