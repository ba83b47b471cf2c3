"""mapi collect: export messages in, rotating files of records out (as nfcapd keeps them); every
record arrives, the totals equal nfdump's of the same messages, every IANA element of the
templates is kept beside the fixed fields."""
import gzip
import os
import re
import socket
import subprocess
import sys
import time

import dpkt

import mapi
from mapi._engine import ffi, lib
from mapi.ipfix_ie import ELEMENTS
from helpers import CORPUS, ROOT, generated, need_tool, needs_corpus
from helpers.cli import run_cli
from helpers.flowtools import UdpSink, free_udp_port, softflowd
from helpers.nfexports import corpus_groups, nfcapd_of, nfdump, udp_payloads
from helpers.pktbuild import ether, udp4, write_pcap

RECORD = ffi.sizeof("mapi_flowrec")


def softflowd_messages():
    sink = UdpSink()
    softflowd(generated("mixed.pcap"), sink.port, 10, {})
    messages = sink.messages()
    assert len(messages) > 5
    return messages


def spread_capture(path, messages, t0, step):
    """The messages as captured exports, one every `step` seconds from t0."""
    frames = [(t0 + i * step, ether(udp4("192.0.2.1", "192.0.2.2", 50000, 2055, m, ident=i)))
              for i, m in enumerate(messages)]
    write_pcap(path, frames)
    return path


def read_records(path):
    """(ts_ns, fixed record, extras bytes) of a file mapi collect wrote, read with dpkt."""
    out = []
    with open(path, "rb") as f:
        r = dpkt.pcap.Reader(f)
        assert r.datalink() == lib.MAPI_LINKTYPE_FLOWREC and r.snaplen == RECORD + lib.MAPI_FLOWREC_MAX_EXTRA
        for ts, buf in r:
            rec = ffi.new("mapi_flowrec *")
            ffi.memmove(rec, buf[:RECORD], RECORD)
            out.append((int(round(ts * 1e6)) * 1000, rec, buf[RECORD:]))
    return out


def extras(raw):
    """{element id: value} of a record's extra elements (flowrec.h's layout)."""
    out, i = {}, 0
    while i + 4 <= len(raw):
        ie, n = int.from_bytes(raw[i:i + 2], "big"), int.from_bytes(raw[i + 2:i + 4], "big")
        if ie == 0:
            break
        out[ie] = raw[i + 4:i + 4 + n]
        i += 4 + n
    return out


def nfdump_totals(directory):
    text = nfdump(directory, "-I").stdout
    return {k: int(v) for k, v in re.findall(r"^(Flows|Packets|Bytes): (\d+)$", text, re.M)}


def test_collect_from_captured_exports_rotates_on_minutes(tmp_path):
    messages = softflowd_messages()
    t0 = 1700000000.0 - 1700000000.0 % 60 + 30          # half past a minute
    cap = spread_capture(tmp_path / "exports.pcap", messages, t0, 20.0)
    out = tmp_path / "flows"
    code, text, err = run_cli("collect", "-r", cap, "-w", out, "-t", "1m", "--json")
    assert code == 0, err
    files = sorted(os.listdir(out))
    minutes = sorted({int(t0 + i * 20.0) // 60 * 60 for i in range(len(messages))})
    assert files == ["records.%s.pcap" % time.strftime("%Y%m%d%H%M%S", time.gmtime(m)) for m in minutes]
    total = []
    for name, start in zip(files, minutes):
        recs = read_records(out / name)
        assert recs and all(start * 10**9 <= ts < (start + 60) * 10**9 for ts, _, _ in recs)
        total += recs
    need_tool("nfcapd")
    ref = nfdump_totals(nfcapd_of(messages, tmp_path / "nfcapd"))
    assert (len(total), sum(r.packets for _, r, _ in total), sum(r.bytes for _, r, _ in total)) == \
        (ref["Flows"], ref["Packets"], ref["Bytes"])
    # mapi records reads the directory back: the same totals
    code, text, err = run_cli("records", "-r", out, "-s", "proto", "--json")
    assert code == 0, err
    import json
    tot = json.loads(text)["totals"]
    assert (tot["records"], tot["packets"], tot["bytes"]) == (ref["Flows"], ref["Packets"], ref["Bytes"])


def test_collect_live_until_its_duration(tmp_path):
    messages = softflowd_messages()
    port = free_udp_port()
    out = tmp_path / "flows"
    p = subprocess.Popen([sys.executable, "-m", "mapi.cli", "collect", "netflow:udp:127.0.0.1:%d" % port,
                          "-w", str(out), "--duration", "4s", "--json"], cwd=str(ROOT),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for m in messages:
            s.sendto(m, ("127.0.0.1", port))
            time.sleep(0.001)
    stdout, stderr = p.communicate(timeout=60)
    assert p.returncode == 0, stderr
    files = os.listdir(out)
    assert files and not [f for f in files if f.endswith(".current")], files
    recs = [r for f in files for r in read_records(out / f)]
    need_tool("nfcapd")
    ref = nfdump_totals(nfcapd_of(messages, tmp_path / "nfcapd"))
    assert (len(recs), sum(r.packets for _, r, _ in recs)) == (ref["Flows"], ref["Packets"])
    # arrival times: now, not the exporter's clock
    assert all(abs(ts / 1e9 - time.time()) < 120 for ts, _, _ in recs)


def tshark_templates(group_file):
    """{template id: element ids} of the templates in tshark's decode of the group (the
    reference)."""
    out, current = {}, None
    for line in gzip.open(str(CORPUS / "reference" / group_file), "rt"):
        m = re.match(r"\s+Template Id: (\d+)$", line)
        if m:
            current = out.setdefault(int(m.group(1)), set())
        m = re.match(r"\s+Type: .*\((\d+)\)$", line)
        if m and current is not None:
            current.add(int(m.group(1)))
    return out


@needs_corpus
def test_every_registry_element_is_kept(tmp_path):
    """ipfixprobe's and the NAT/MPLS exports: every element their templates carry that IANA's
    registry defines is in the stored records, in a fixed field or beside it (by its id)."""
    from scampi.plugins.stdfuncs import _record_vocab as vocab
    fixed = set(vocab._FIXED_ELEMENTS) | set(vocab._FIXED_ADDRESS_ELEMENTS) | set(vocab._FOLDED)
    for group, ref in [("akvorado:ipfixprobe", "akvorado__ipfixprobe.tshark-cflow.txt.gz"),
                       ("akvorado:nat", "akvorado__nat.tshark-cflow.txt.gz"),
                       ("akvorado:mpls", "akvorado__mpls.tshark-cflow.txt.gz")]:
        messages = udp_payloads(corpus_groups()[group])
        cap = spread_capture(tmp_path / "x.pcap", messages, 1700000000.0, 0.001)
        out = tmp_path / group.replace(":", "_")
        code, text, err = run_cli("collect", "-r", cap, "-w", out, "-t", "0", "--json")
        assert code == 0, err
        recs = [r for f in os.listdir(out) for r in read_records(out / f)]
        templates = tshark_templates(ref)
        assert recs
        for _, rec, raw in recs:
            expected = {ie for ie in templates[rec.template_id] if ie in ELEMENTS and ie != 210}
            kept = set(extras(raw)) | fixed
            assert expected <= kept, (group, sorted(expected - kept))
        if group == "akvorado:nat":      # the NAT translation, fixed and readable by filters
            assert {socket.inet_ntoa(bytes(r.nat_src)[:4]) for _, r, _ in recs} == {"10.143.52.29"}
        if group == "akvorado:mpls":
            assert {r.mpls_label1 >> 4 for _, r, _ in recs} >= {20005}
