"""`make demo`: each flow's findings on the generated trace equal what tcpdump, dpkt and a plain
byte search find in the same file."""
import collections
import ipaddress
import os
import subprocess

import dpkt
import pytest

from mapi import demo
from mapi.registry import get_registry

from helpers import ROOT, tcpdump_pcap

PACKETS, SEED = 30_000, 3


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    outdir = tmp_path_factory.mktemp("demo")
    rep, stats = demo.run_demo(PACKETS, SEED, str(outdir))
    flows = {f["name"]: f for f in rep["flows"]}
    every = tcpdump_pcap(rep["trace"], "")
    index = {(ts, data): i for i, (ts, _, data) in enumerate(every)}
    return rep, stats, flows, every, index


def test_every_flow_ran(run):
    rep, stats, flows, every, _ = run
    assert list(flows) == ["web", "dns", "signatures", "talkers", "alert"]
    assert [f["skipped"] for f in flows.values()] == [None] * 5
    assert rep["packets"] == len(every) == stats.packets == PACKETS
    assert rep["error"] is None


def test_web_counters(run):
    rep, _, flows, _, _ = run
    web = tcpdump_pcap(rep["trace"], "tcp port 80")
    assert flows["web"]["found"] == dict(packets=len(web), bytes=sum(r[1] for r in web))


def test_dns_sampler(run):
    rep, _, flows, _, index = run
    dns = tcpdump_pcap(rep["trace"], "udp port 53")
    found = flows["dns"]["found"]
    every_tenth = dns[::demo.DNS_SAMPLE_EVERY]
    assert found["packets"] == len(dns)
    assert found["sampled"] == found["taken"] == len(every_tenth)
    expect = []
    for ts, _, data in every_tenth[:demo.SHOW_QUERIES]:
        ip = dpkt.ethernet.Ethernet(data).data
        query = dpkt.dns.DNS(ip.data.data).qd[0].name
        expect.append(dict(ts=ts, seq=index[(ts, data)], query=query))
    assert found["first_sampled"] == expect


def test_signature_search_and_file(run):
    rep, stats, flows, every, _ = run
    sigs = [s.encode() for s in demo.signatures()]
    hits = [r for r in every if any(s in r[2] for s in sigs)]
    per = collections.Counter(s.decode() for r in hits for s in sigs if s in r[2])
    found = flows["signatures"]["found"]
    assert found["packets"] == found["written"] == len(hits) == stats.sig_packets
    assert found["per_pattern"] == dict(per)
    # the pcap holds exactly the matching frames, as tcpdump reads them back
    assert os.path.dirname(found["file"]) == os.path.dirname(rep["trace"])
    assert tcpdump_pcap(found["file"], "") == hits


def test_top_talkers(run):
    rep, _, flows, _, _ = run
    ipv4 = tcpdump_pcap(rep["trace"], "ip")
    count = collections.defaultdict(lambda: [0, 0])
    for _, wire, data in ipv4:
        src = dpkt.ethernet.Ethernet(data).data.src
        count[src][0] += 1
        count[src][1] += wire
    best = sorted(count.items(), key=lambda kv: (-kv[1][0], -kv[1][1], kv[0]))[:demo.TOP_N]
    found = flows["talkers"]["found"]
    assert found["ip_packets"] == len(ipv4)
    assert found["top"] == [dict(value=str(ipaddress.IPv4Address(a)), packets=p, bytes=b)
                            for a, (p, b) in best]


def test_threshold_alert(run):
    rep, _, flows, _, index = run
    web = tcpdump_pcap(rep["trace"], "tcp port 80")
    limit = demo.threshold_for(PACKETS)
    ts, _, data = web[limit]                  # the packet that takes the count above the limit
    assert flows["alert"]["found"] == dict(limit=limit, events=[dict(ts=ts, value=limit + 1,
                                                                     seq=index[(ts, data)])])


def test_report_text_has_the_numbers(run):
    rep, stats, flows, _, _ = run
    text = demo.format_report(rep)
    f = {k: v["found"] for k, v in flows.items()}
    assert "(%s packets, " % "{:,}".format(PACKETS) in text
    assert "    %s packets (" % "{:,}".format(f["web"]["packets"]) in text
    assert "%s DNS packets, %s kept by the 1-in-10 sampler" % (
        "{:,}".format(f["dns"]["packets"]), "{:,}".format(f["dns"]["sampled"])) in text
    assert "%d packets carry one of the signatures; %d written to %s" % (
        stats.sig_packets, stats.sig_packets, f["signatures"]["file"]) in text
    first = f["talkers"]["top"][0]
    assert "  1. %-15s %s packets" % (first["value"], "{:,}".format(first["packets"])) in text
    assert "event: web packets passed %s" % "{:,}".format(f["alert"]["limit"]) in text


def test_missing_function_is_skipped_not_fatal(tmp_path, monkeypatch):
    reg = get_registry()
    without = {k: v for k, v in reg.functions.items() if k not in ("TOP", "THRESHOLD")}
    monkeypatch.setattr(reg, "functions", without)
    rep, stats = demo.run_demo(2000, SEED, str(tmp_path))
    flows = {f["name"]: f for f in rep["flows"]}
    assert flows["talkers"]["skipped"] == "TOP is not installed"
    assert flows["alert"]["skipped"] == "THRESHOLD is not installed"
    web = tcpdump_pcap(rep["trace"], "tcp port 80")
    assert flows["web"]["found"]["packets"] == len(web)
    text = demo.format_report(rep)
    assert "    skipped: TOP is not installed" in text


def test_make_demo_command(tmp_path):
    # what `make demo` runs, on its default trace
    env = dict(os.environ, SCAMPI_DEMO_DIR=str(tmp_path))
    proc = subprocess.run([str(ROOT / ".venv" / "bin" / "python"), "-m", "mapi.demo"], cwd=str(ROOT),
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    trace = tmp_path / ("demo-%d-%d.pcap" % (demo.DEFAULT_PACKETS, demo.DEFAULT_SEED))
    web = tcpdump_pcap(trace, "tcp port 80")
    assert "    %s packets (" % "{:,}".format(len(web)) in proc.stdout
    assert "skipped" not in proc.stdout
    assert "written to %s" % (tmp_path / "matches.pcap") in proc.stdout


def test_demo_runs_without_tools_even_when_a_foreign_tools_shadows_it(tmp_path):
    # mapi.demo uses the installed mapi.tracegen: an unrelated `tools` (or `backends`) package
    # first on sys.path, as another distribution might install one, changes nothing
    for name in ("tools", "backends"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("raise ImportError('a foreign %s package')\n" % name)
    out = tmp_path / "out"
    proc = subprocess.run([str(ROOT / ".venv" / "bin" / "python"), "-m", "mapi.demo", "--packets", "3000",
                           "--seed", str(SEED), "--dir", str(out)], cwd=str(tmp_path),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    web = tcpdump_pcap(out / ("demo-3000-%d.pcap" % SEED), "tcp port 80")
    assert "    %s packets (" % "{:,}".format(len(web)) in proc.stdout
    assert "skipped" not in proc.stdout
