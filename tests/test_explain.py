"""mapi explain: the graph with sharing, placement and hit counters equal to tcpdump's counts."""
import json
import subprocess
import sys

from helpers import generated, tcpdump_records

TRACE = str(generated("mixed.pcap"))


def explain(*args):
    out = subprocess.run([sys.executable, "-m", "mapi.cli", "explain", "-r", TRACE, *args],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_explain_on_the_combo6_card_shows_placement_sharing_and_hits():
    data = json.loads(explain("--backend", "combo6", "--json",
                              'BPF_FILTER("tcp port 80") PKT_COUNTER',
                              'BPF_FILTER("tcp port 80") BYTE_COUNTER',
                              'BPF_FILTER("not port 22") SAMPLE(10, PERIODIC) PKT_COUNTER'))
    nodes = data["nodes"]
    web = [n for n in nodes if n["args"] == ["tcp port 80"]]
    assert len(web) == 1 and web[0]["shared"] and len(web[0]["owners"]) == 2
    assert web[0]["placement"] == "LUP" and web[0]["exact"] is True
    assert web[0]["pkts_out"] == len(tcpdump_records(TRACE, "tcp port 80")[0])
    sample = [n for n in nodes if n["function"] == "SAMPLE"][0]
    assert sample["placement"] == "SAU"
    notssh = len(tcpdump_records(TRACE, "not port 22")[0])
    assert sample["pkts_in"] == notssh and sample["pkts_out"] == (notssh + 9) // 10
    # counters only: nothing but the card's clock packets crosses the bus
    assert data["hardware"]["bus"]["packets"] == data["hardware"]["bus"]["clock_packets"]


def test_explain_text_in_software():
    text = explain('BPF_FILTER("udp") PKT_COUNTER', 'BPF_FILTER("udp") BYTE_COUNTER')
    udp = len(tcpdump_records(TRACE, "udp")[0])
    assert "BPF_FILTER('udp')  [flows 1.1, 2.1, shared] on software" in text
    assert "out %d" % udp in text
