"""The netflow collector device: NetFlow v5/v9/IPFIX export packets in, flow records out.

References: nfdump's decode of the same exports (corpus reference/*.nfdump.txt: the UDP payloads
of each group replayed in the manifest's order to nfcapd 1.7.1), softflowd exporting corpus
and generated traces (checked against nfcapd+nfdump run here), hand-made export packets."""
import csv
import importlib
import io
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time

import pytest

import mapi
from mapi._engine import ffi, lib
from mapi.registry import get_registry
from helpers import CORPUS, need_tool, needs_corpus, parametrize_from_corpus
from helpers.nfexports import corpus_groups, udp_payloads

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module", autouse=True)
def netflow_backend():
    reg = get_registry()
    if "netflow" not in reg.backends:
        reg.register(importlib.import_module("scampi.backends.netflow"), name="backend-netflow")


# --- corpus groups and their nfdump references ------------------------------------------------
def reference_file(group):
    if group.startswith("derived/"):
        return CORPUS / "reference" / (os.path.basename(group)[:-5] + ".nfdump.txt")
    src, name = group.split(":")
    return CORPUS / "reference" / (("akvorado__" if src == "akvorado" else "pta__") + name + ".nfdump.txt")


def nfdump_totals(text):
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+): (\d+)$", text, re.M)}


def nfdump_flows(text):
    """(proto, src, sport, dst, dport, packets, bytes) of each line of nfdump's listing."""
    out = []
    for line in text.splitlines():
        p = line.split()
        if len(p) >= 12 and re.match(r"\d{4}-\d\d-\d\d", p[0]):
            out.append((int(p[5]), p[6], p[7], p[8], p[9], int(p[10]), int(p[11])))
    return out


# --- running the collector --------------------------------------------------------------------
def live_collector(flows, payloads=(), options=None, senders=None):
    """Open netflow:udp:127.0.0.1:0 with `flows` (lists of (NAME, args...)), send `payloads`
    from one socket (or per sender), wait until every datagram was decoded; return
    (results, stats, info, drained records)."""
    name = "netflow:udp:127.0.0.1:0"
    fds = []
    for fl in flows:
        fd = mapi.create_flow(name, **(options or {}))
        fids = [mapi.apply_function(fd, fn[0], *fn[1:]) for fn in fl]
        mapi.connect(fd)
        fds.append((fd, fids, fl))
    try:
        port = mapi.get_device_info(name)["port"]
        sent = 0
        if senders is None:
            senders = [payloads]
        socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in senders]
        for s, pl in zip(socks, senders):
            for p in pl:
                s.sendto(p, ("127.0.0.1", port))
                sent += 1
        deadline = time.time() + 20
        while time.time() < deadline:
            st = mapi.stats(name)
            if st["packets"] >= sent and mapi.get_device_info(name)["packets"] >= st["records"]:
                break
            time.sleep(0.02)
        for s in socks:
            s.close()
        time.sleep(0.05)
        drained = {}
        for i, (fd, fids, fl) in enumerate(fds):
            for k, fn in enumerate(fl):
                if fn[0] == "TO_BUFFER":
                    recs = []
                    while True:
                        p = mapi.get_next_pkt(fd, fids[k], timeout=0.2)
                        if p is None:
                            break
                        recs.append(record(p.data))
                    drained[i] = recs
        results = [[mapi.read_results(fd, fid).value for fid in fids] for fd, fids, _ in fds]
        return results, mapi.stats(name), mapi.get_device_info(name), drained
    finally:
        for fd, _, _ in fds:
            mapi.close_flow(fd)


def record(data):
    """A mapi_flowrec from a record's bytes, as a dict."""
    buf = ffi.new("mapi_flowrec *")
    ffi.memmove(buf, data, ffi.sizeof("mapi_flowrec"))
    return {k: (bytes(getattr(buf, k)) if isinstance(getattr(buf, k), ffi.CData) else getattr(buf, k))
            for k, _ in ffi.typeof("mapi_flowrec").fields}


def offline_collector(path, flows, **options):
    dev = mapi.create_offline_device(str(path), backend="netflow", **options)
    fds = []
    for fl in flows:
        fd = mapi.create_flow(dev)
        fids = [mapi.apply_function(fd, fn[0], *fn[1:]) for fn in fl]
        mapi.connect(fd)
        fds.append((fd, fids))
    mapi.start_offline_device(dev)
    mapi.wait_offline_device(dev)
    out = [[mapi.read_results(fd, fid).value for fid in fids] for fd, fids in fds]
    st = mapi.stats(dev)
    mapi.delete_offline_device(dev)
    return out, st


PER_PROTO = [
    [("RECORD_COUNTER",)],
    [("RECORD_FILTER", "proto=tcp"), ("RECORD_COUNTER",)],
    [("RECORD_FILTER", "proto=udp"), ("RECORD_COUNTER",)],
    [("RECORD_FILTER", "proto=icmp or proto=icmp6"), ("RECORD_COUNTER",)],
    [("RECORD_FILTER", "not (proto=tcp or proto=udp or proto=icmp or proto=icmp6)"), ("RECORD_COUNTER",)],
    [("PKT_COUNTER",), ("TO_BUFFER",)],
]


def totals_of(results):
    """nfdump -I's fields from RECORD_COUNTER results: nfdump adds a record's out (or biflow
    reverse) counters into the grand totals but not into the per-protocol ones."""
    out = {}
    for key, res in zip(("", "_tcp", "_udp", "_icmp", "_other"), results[:5]):
        c = res[-1]
        out["Flows" + key] = c["records"]
        out["Packets" + key] = c["packets"] + (c["out_packets"] if not key else 0)
        out["Bytes" + key] = c["bytes"] + (c["out_bytes"] if not key else 0)
    return out


NFDUMP_KEYS = [k + s for k in ("Flows", "Packets", "Bytes") for s in ("", "_tcp", "_udp", "_icmp", "_other")]


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


# --- bad input ----------------------------------------------------------------------------------
def v9_packet(sets, source_id=1, seq=0):
    body = b"".join(sets)
    return struct.pack(">HHIIII", 9, 1, 1000, 1700000000, seq, source_id) + body


def v9_template(tid, fields):
    rec = struct.pack(">HH", tid, len(fields)) + b"".join(struct.pack(">HH", t, l) for t, l in fields)
    return struct.pack(">HH", 0, 4 + len(rec)) + rec


def v9_data(tid, records):
    body = b"".join(records)
    return struct.pack(">HH", tid, 4 + len(body)) + body


TPL = [(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (2, 4), (1, 4)]


def rec(src, dst, sport, dport, proto, pkts, octets):
    return socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack(">HHBII", sport, dport, proto, pkts, octets)


@needs_corpus
def test_hostile_exports_are_counted_and_the_collector_keeps_serving(tmp_path):
    good = udp_payloads(corpus_groups()["derived/example.softflowd-nfv9.pcap"])
    ref = nfdump_totals(reference_file("derived/example.softflowd-nfv9.pcap").read_text())
    hostile = [
        b"",                                                        # empty datagram
        b"\x00\x05",                                                # too short
        struct.pack(">HH", 5, 30) + bytes(20),                      # v5 header says 30 records, has none
        struct.pack(">HH", 7, 1) + bytes(40),                       # unknown version
        v9_packet([struct.pack(">HH", 0, 200) + bytes(8)], 2),      # set longer than the packet
        v9_packet([struct.pack(">HH", 0, 2)], 2),                   # set shorter than its header
        v9_packet([v9_template(300, [])], 2),                       # template without fields
        v9_packet([v9_template(12, TPL)], 2),                       # template id below 256
        struct.pack(">HHIII", 10, 5000, 0, 0, 3) + bytes(20),       # IPFIX length past the packet
        v9_packet([v9_data(999, [bytes(23)])], 3),                  # data for a template never sent
        v9_packet([v9_template(400, TPL), v9_data(400, [rec("1.1.1.1", "2.2.2.2", 1, 2, 6, 1, 40)[:10]])], 4),
    ]
    # a template flood: 100 templates from one exporter whose limit is 16
    flood = [v9_packet([v9_template(256 + i, TPL)], 5, seq=i) for i in range(100)]
    # an exporter flood: 40 source ids, limit 32 (minus those already used above)
    exporters = [v9_packet([v9_template(256, TPL), v9_data(256, [rec("9.9.9.9", "8.8.8.8", 1, 2, 17, 1, 100)])],
                           1000 + i) for i in range(40)]
    results, st, info, drained = live_collector(
        PER_PROTO, senders=[good[:3], hostile + flood + exporters, good[3:]],
        options={"max_templates": 16, "max_exporters": 32, "pending_ttl_ms": 1000})
    totals = totals_of(results)
    # the good exporter's flows are all there, plus one record per accepted flooding exporter
    accepted = st["exporters"] - 1 - 4        # minus the good one and source ids 2..5
    assert totals["Flows"] == ref["Flows"] + accepted
    assert totals["Packets"] == ref["Packets"] + accepted
    assert st["exporters_rejected"] == 40 - accepted > 0
    assert st["templates_rejected"] >= 100 - 16
    assert st["malformed"] >= 6 and st["not_export"] >= 3
    assert st["pending_sets"] >= 1
    assert info["last_error"] is not None


@needs_corpus
def test_mutated_exports_never_crash(tmp_path):
    """Seeded random damage to real export packets: every packet is decoded or counted."""
    import random
    rnd = random.Random(5)
    base = udp_payloads(corpus_groups()["derived/example.softflowd-ipfix.pcap"]) + \
        udp_payloads(corpus_groups()["derived/example.softflowd-nfv9.pcap"]) + \
        udp_payloads(corpus_groups()["pta:401"])[:50]
    damaged = []
    for i in range(1500):
        p = bytearray(rnd.choice(base))
        for _ in range(rnd.randint(1, 6)):
            k = rnd.randrange(len(p))
            p[k] = rnd.randrange(256)
        if rnd.random() < 0.3:
            p = p[:rnd.randrange(len(p) + 1)]
        damaged.append(bytes(p))
    results, st, info, drained = live_collector([[("RECORD_COUNTER",)]], damaged)
    assert st["packets"] == len(damaged)
    assert results[0][0]["records"] == st["records"]


def test_collector_errors_are_clear():
    with pytest.raises(mapi.MapiError) as e:
        mapi.create_flow("netflow:tcp:127.0.0.1:2055")
    assert e.value.code == 1005
    with pytest.raises(mapi.MapiError) as e:
        mapi.create_flow("netflow:udp:127.0.0.1:notaport")
    assert e.value.code == 1005 and "notaport" in str(e.value)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        busy = s.getsockname()[1]
        with pytest.raises(mapi.MapiError) as e:
            mapi.create_flow("netflow:udp:127.0.0.1:%d" % busy)
        assert e.value.code == 1013 and str(busy) in str(e.value)
    with pytest.raises(mapi.MapiError) as e:
        mapi.create_flow("netflow:udp:127.0.0.1:0", max_templates=-1)
    assert e.value.code == 1005
    with pytest.raises(mapi.MapiError) as e:
        fd = mapi.create_flow("netflow:udp:127.0.0.1:0")
        try:
            mapi.apply_function(fd, "RECORD_FILTER", "proto = = 6")
        finally:
            mapi.close_flow(fd)
    assert e.value.code == 1009 and "offset" in str(e.value)


def test_collector_socket_without_privileges():
    need_tool("setpriv")
    code = ("import importlib, mapi\n"
            "from mapi.registry import get_registry\n"
            "assert not get_registry().problems, get_registry().problems\n"
            "try:\n    mapi.create_flow('netflow:udp:127.0.0.1:99')\n"
            "except mapi.MapiError as e:\n    print(e.code, e)\n")
    r = subprocess.run(["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups",
                        sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       cwd=ROOT)
    assert r.stdout.startswith("1018 "), (r.stdout, r.stderr[-2000:])
    assert "CAP_NET_BIND_SERVICE" in r.stdout


def test_record_filter_language():
    from scampi.plugins.stdfuncs.record_filter import compile_expr
    recs = []
    for src, dst, sp, dp, proto, pk, by in [("10.1.2.3", "192.168.0.1", 1234, 443, 6, 10, 5000),
                                           ("10.9.9.9", "8.8.8.8", 5353, 53, 17, 1, 80),
                                           ("172.16.0.1", "10.1.0.1", 80, 40000, 6, 3, 20000000)]:
        r = ffi.new("mapi_flowrec *")
        r.family, r.proto, r.sport, r.dport, r.packets, r.bytes = 4, proto, sp, dp, pk, by
        ffi.memmove(r.src, socket.inet_aton(src), 4)
        ffi.memmove(r.dst, socket.inet_aton(dst), 4)
        recs.append(r)

    def sel(expr):
        prog, n = compile_expr(expr)
        st = ffi.new("mapi_rf_state *", {"prog": prog, "n": n})
        return [i for i, r in enumerate(recs) if lib.mapi_rf_eval(st, r)]
    assert sel("proto=6 and dport=443") == [0]
    assert sel("proto=tcp") == [0, 2]
    assert sel("src in 10.0.0.0/8") == [0, 1]
    assert sel("host in 10.0.0.0/8") == [0, 1, 2]
    assert sel("host != 10.1.0.1") == [0, 1]
    assert sel("port = 53 or bytes >= 1000000") == [1, 2]
    assert sel("not (port=443 or port=53)") == [2]
    assert sel("port != 80") == [0, 1]
    assert sel("packets > 1 and packets < 10") == [2]
    assert sel("true") == [0, 1, 2]
    for bad in ("", "proto", "proto = ", "nosuch = 1", "src in banana", "(proto=6", "proto=6 )",
                "dport in 10.0.0.0/8", "src > 10.0.0.1"):
        with pytest.raises(mapi.MapiError) as e:
            compile_expr(bad)
        assert e.value.code == 1009
