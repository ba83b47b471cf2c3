"""The netflow collector device: NetFlow v5/v9/IPFIX export packets in, flow records out.

References: nfdump's decode of the same exports (corpus reference/*.nfdump.txt: the UDP payloads
of each group replayed in the manifest's order to nfcapd 1.7.1), hand-made export packets.
softflowd as a live exporter: test_netflow_softflowd.py; hostile input: test_netflow_bad_input.py."""
import csv
import os
import socket
import struct
import subprocess
import time

import pytest

from mapi._engine import lib
from helpers import CORPUS, need_tool, needs_corpus, parametrize_from_corpus
from helpers.collector import (NFDUMP_KEYS, PER_PROTO, live_collector, nfdump_flows, nfdump_totals,
                               offline_collector, reference_file, totals_of, use_netflow_backend)
from helpers.nfexports import corpus_groups, udp_payloads


@pytest.fixture(scope="module", autouse=True)
def netflow_backend():
    use_netflow_backend()


@parametrize_from_corpus("group", lambda: sorted(g for g in corpus_groups() if g != "akvorado:generic-v9"))
def test_corpus_exports_equal_nfdump(group):
    ref = nfdump_totals(reference_file(group).read_text())
    results, st, info, drained = live_collector(PER_PROTO, udp_payloads(corpus_groups()[group]))
    assert {k: totals_of(results)[k] for k in NFDUMP_KEYS} == {k: ref[k] for k in NFDUMP_KEYS}
    assert results[5][0] == ref["Flows"] == len(drained[5])
    assert st["malformed"] == 0 and st["records_dropped"] == 0
    for r in drained[5]:
        assert r["version"] in (5, 9, 10) and r["exporter"][:4] == bytes([127, 0, 0, 1])


@needs_corpus
def test_sampling_and_templates_after_data_generic_v9():
    """akvorado's generic-v9 group: the first packet carries a data set *before* the template
    it needs, and the exporters announce their sampling in options data.  nfcapd drops the
    early set and multiplies the records that name a sampler by its interval."""
    payloads = udp_payloads(corpus_groups()["akvorado:generic-v9"])
    ref_text = reference_file("akvorado:generic-v9").read_text()
    ref = nfdump_totals(ref_text)
    # like nfcapd: nothing waits for a template
    results, st, _, drained = live_collector(PER_PROTO, payloads, options={"max_pending_bytes": 0})
    got = totals_of(results)
    assert {k: got[k] for k in NFDUMP_KEYS if k.startswith("Flows")} == \
        {k: ref[k] for k in NFDUMP_KEYS if k.startswith("Flows")}
    scaled_p = sum((r["packets"] + r["out_packets"]) * (r["sampling"] if r["flags"] & lib.MAPI_FLOWREC_SAMPLER_NAMED else 1)
                   for r in drained[5])
    scaled_b = sum((r["bytes"] + r["out_bytes"]) * (r["sampling"] if r["flags"] & lib.MAPI_FLOWREC_SAMPLER_NAMED else 1)
                   for r in drained[5])
    assert (scaled_p, scaled_b) == (ref["Packets"], ref["Bytes"])
    assert st["pending_dropped"] == 1
    # with buffering (the default) the early set is decoded once its template arrives: its
    # records are counted from the set's own length (dpkt) and the template's record size
    first = payloads[0]
    set_id, set_len = struct.unpack(">HH", first[20:24])
    assert set_id == 257
    results, st, _, drained = live_collector(PER_PROTO, payloads)
    tpl_len = sum(struct.unpack(">H", first[i + 2:i + 4])[0] for i in _template_fields(first, 257))
    early = (set_len - 4) // tpl_len
    assert results[0][0]["records"] == ref["Flows"] + early
    assert st["pending_sets"] == 1 and st["pending_decoded"] == 1 and st["pending_dropped"] == 0


def _template_fields(pkt, tid):
    """Offsets of the (type, length) pairs of v9 template `tid` in an export packet."""
    pos = 20
    while pos + 4 <= len(pkt):
        sid, slen = struct.unpack(">HH", pkt[pos:pos + 4])
        if sid == 0:
            p = pos + 4
            while p + 4 <= pos + slen:
                t, n = struct.unpack(">HH", pkt[p:p + 4])
                if t == tid:
                    return [p + 4 + 4 * i for i in range(n)]
                p += 4 + 4 * n
        pos += slen
    raise AssertionError("template %d not found" % tid)


@needs_corpus
@pytest.mark.parametrize("name", ["example.softflowd-nfv5", "example.softflowd-nfv9", "example.softflowd-ipfix"])
def test_offline_capture_filters_and_top_equal_nfdump(name):
    """An offline collector device over the captured exports; filters, counters and top-X on
    record fields against nfdump's listing of the same exports."""
    text = (CORPUS / "reference" / (name + ".nfdump.txt")).read_text()
    flows = nfdump_flows(text)
    https = [f for f in flows if f[0] == 6 and "443" in (f[2], f[4])]
    dns_from_host = [f for f in flows if f[0] == 17 and f[1] == "10.0.0.6" and f[4] == "53"]
    big = [f for f in flows if f[6] > 10000]
    by_src = {}
    for f in flows:
        s = by_src.setdefault(f[1], [0, 0, 0])
        s[0] += 1
        s[1] += f[5]
        s[2] += f[6]
    top = sorted(by_src.items(), key=lambda kv: (-kv[1][2], kv[0]))[:5]
    jobs = [[("RECORD_FILTER", "proto=tcp and port=443"), ("RECORD_COUNTER",)],
            [("RECORD_FILTER", "proto=17 and src=10.0.0.6 and dport=53"), ("PKT_COUNTER",), ("BYTE_COUNTER",)],
            [("RECORD_FILTER", "bytes > 10000"), ("PKT_COUNTER",)],
            [("RECORD_TOP", 5, "src")],
            [("PKT_COUNTER",), ("RECORD_COUNTER",)],
            [("TOP", 3, "ip.src")]]
    out, st = offline_collector(CORPUS / "derived" / (name + ".pcap"), jobs)
    # the standard TOP reads a record's key fields as a header: it ranks sources by records
    by_records = sorted(by_src.items(), key=lambda kv: (-kv[1][0], kv[0]))[:3]
    assert [(str(v[0]), v[1]) for v in out[5][0]] == [(k, v[0]) for k, v in by_records]
    assert out[0][1]["records"] == len(https) and out[0][1]["packets"] == sum(f[5] for f in https)
    assert out[0][1]["bytes"] == sum(f[6] for f in https)
    assert out[1][1:] == [len(dns_from_host), sum(f[6] for f in dns_from_host)]
    assert out[2][1] == len(big)
    assert [(e.value, e.records, e.packets, e.bytes) for e in out[3][0]] == \
        [(k, v[0], v[1], v[2]) for k, v in top]
    ref = nfdump_totals(text)
    assert out[4][0] == ref["Flows"] and out[4][1]["packets"] == ref["Packets"]
    assert st["records"] == ref["Flows"] and st["malformed"] == 0


# --- re-export -----------------------------------------------------------------------------------
@needs_corpus
def test_ipfix_reexport_reaches_nfcapd_unchanged(tmp_path):
    """RECORD_REPORT("ipfix", udp:...) re-exports the records of a collector device to nfcapd:
    its totals equal nfdump's of the original exports; CSV lines equal the records."""
    need_tool("nfcapd")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    d = str(tmp_path / "nfcapd")
    os.makedirs(d)
    p = subprocess.Popen(["nfcapd", "-b", "127.0.0.1", "-p", str(port), "-w", d, "-t", "3600"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        out, _ = offline_collector(CORPUS / "netflow/pmacct-test-automation__401-IPFIXv10-BMP-IPv6-CISCO-MPLS-multiple-sources__traffic-00.pcap",
                                   [[("RECORD_REPORT", "ipfix", "udp:127.0.0.1:%d" % port), ("RECORD_COUNTER",)],
                                    [("RECORD_REPORT", "csv", "file:" + str(tmp_path / "r.csv"))]])
        time.sleep(0.5)
    finally:
        p.terminate()
        p.wait(10)
    ref = nfdump_totals(subprocess.run(["nfdump", "-I", "-R", d], capture_output=True, text=True,
                                       timeout=60).stdout)
    c = out[0][1]
    assert ref["Flows"] == c["records"] == out[0][0]["records"] > 0
    assert ref["Packets"] == c["packets"] + c["out_packets"]
    assert ref["Bytes"] == c["bytes"] + c["out_bytes"]
    rows = list(csv.DictReader(open(str(tmp_path / "r.csv"))))
    assert len(rows) == c["records"] == out[1][0]["records"]
    assert sum(int(r["packets"]) for r in rows) == c["packets"]
