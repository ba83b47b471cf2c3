"""mapid's Prometheus endpoint: device, flow and client series equal the engine's own counts
(and tcpdump's), hardware placements are counted per unit."""
import json
import subprocess
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from helpers import free_port
from helpers.savefile import parse_pcap_bytes
from helpers.server import Mapid, open_dir, start_client, trace

PACKETS = 20000


def scrape(address):
    text = urllib.request.urlopen("http://%s/metrics" % address, timeout=10).read().decode()
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def value(samples, **labels):
    got = [v for l, v in samples if all(l.get(k) == str(x) for k, x in labels.items())]
    assert len(got) == 1, (labels, samples)
    return got[0]


CLIENT = """
    fd = mapi.create_flow("card")
    mapi.apply_function(fd, "BPF_FILTER", "tcp port 80")
    mapi.apply_function(fd, "PKT_COUNTER")
    buf = mapi.apply_function(fd, "TO_BUFFER", mapi.WAIT, 1 << 20)
    mapi.connect(fd)
    mapi.start_offline_device("card")
    mapi.wait_offline_device("card")
    # what the client itself reads out of its ring: the packets and captured bytes it got
    got, nbytes = mapi.api.function_instance(fd, buf).drain_all(0.2)
    # the same filter in software, on a device without hardware: the plan counts its bytes
    soft = mapi.create_flow("soft")
    mapi.apply_function(soft, "BPF_FILTER", "tcp port 80")
    mapi.apply_function(soft, "PKT_COUNTER")
    mapi.connect(soft)
    mapi.start_offline_device("soft")
    mapi.wait_offline_device("soft")
    emit({"fd": fd, "buffer": mapi.read_results(fd, buf).value, "read": got, "bytes": nbytes,
          "soft": soft})
    sys.stdin.readline()
"""


def test_metrics_match_the_engine(tmp_path):
    path = trace(open_dir("scampi-server-metrics-"), PACKETS, seed=3)
    address = "127.0.0.1:%d" % free_port()
    cfg = ('[devices.card]\nfile = "%s"\nbackend = "combo6"\n[devices.soft]\nfile = "%s"\n'
           % (path, path))
    with Mapid(tmp_path, config=cfg, args=["--metrics", address]) as m:
        client = start_client(m, CLIENT)
        got = json.loads(client.stdout.readline())
        metrics = scrape(address)
        client.stdin.write("\n")
        client.stdin.close()
        client.wait(30)
    web = len(subprocess.run(["tcpdump", "-n", "-q", "-r", str(path), "tcp port 80"],
                             capture_output=True, check=True).stdout.splitlines())
    # wire bytes, independently: the trace's record headers, and those of the packets that
    # tcpdump's own filter writes out
    all_wire = sum(r[2] for r in parse_pcap_bytes(path.read_bytes()))
    web_records = parse_pcap_bytes(subprocess.run(
        ["tcpdump", "-r", str(path), "-w", "-", "tcp port 80"], capture_output=True,
        check=True).stdout)
    assert len(web_records) == web
    web_wire = sum(r[2] for r in web_records)
    assert value(metrics["scampi_device_packets_total"], device="card") == PACKETS
    import mapi
    local = mapi.OfflineDevice(str(path))
    with local:
        local.run()
        wire = local.info()["bytes"]
    assert value(metrics["scampi_device_bytes_total"], device="card") == wire == all_wire
    who = dict(pid=client.pid, program="python")
    assert value(metrics["scampi_flow_packets_in_total"], fd=got["fd"], **who) == PACKETS
    assert value(metrics["scampi_flow_packets_out_total"], fd=got["fd"], **who) == web
    # wire bytes into the flow (its filter is in the card: the card's counters) and out of its
    # last function (the buffer, software: the plan's counters)
    assert value(metrics["scampi_flow_bytes_in_total"], fd=got["fd"], **who) == all_wire
    assert value(metrics["scampi_flow_bytes_out_total"], fd=got["fd"], **who) == web_wire
    soft = dict(fd=got["soft"], **who)
    assert value(metrics["scampi_flow_packets_out_total"], **soft) == web
    assert value(metrics["scampi_flow_bytes_in_total"], **soft) == all_wire
    assert value(metrics["scampi_flow_bytes_out_total"], **soft) == web_wire
    assert value(metrics["scampi_client_bytes_total"], **who) == 2 * all_wire
    buffered = got["buffer"]["written"]
    assert value(metrics["scampi_flow_buffer_packets_total"], fd=got["fd"], **who) == buffered
    drops = got["buffer"]["dropped"]
    assert buffered + drops == web
    assert value(metrics["scampi_flow_drops_total"], fd=got["fd"], layer="buffers", **who) == drops
    assert value(metrics["scampi_client_drops_total"], layer="buffers", **who) == drops
    assert value(metrics["scampi_device_drops_total"], device="card", layer="buffers") == drops
    assert value(metrics["scampi_clients"]) >= 1
    # bytes per flow and per client: what the client read out of its ring, byte for byte
    assert got["read"] == buffered
    assert value(metrics["scampi_flow_buffer_bytes_total"], fd=got["fd"], **who) == got["bytes"]
    assert value(metrics["scampi_client_buffer_bytes_total"], **who) == got["bytes"]
    assert value(metrics["scampi_client_packets_total"], **who) == 2 * PACKETS
    assert value(metrics["scampi_client_flows"], **who) == 2
    assert value(metrics["scampi_client_drops_total"], layer="socket", **who) == 0
    # a trace loses nothing below the engine
    for layer in ("kernel", "interface"):
        assert value(metrics["scampi_device_drops_total"], device="card", layer=layer) == 0
    placements = {l["placement"]: v for l, v in metrics["scampi_device_nodes"] if l["device"] == "card"}
    # the COMBO6 emulator takes the filter (LUP) and the counter (STU); the buffer is software
    assert placements == {"LUP": 1, "STU": 1, "software": 1}
