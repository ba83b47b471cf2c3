"""The netflow collector device on bad input: hostile and randomly damaged exports are counted
and never stop the collector; bad arguments and missing privileges give clear errors; the
record filter language accepts and rejects what it documents."""
import os
import socket
import struct
import subprocess
import sys

import pytest

import mapi
from mapi._engine import ffi, lib
from helpers import need_tool, needs_corpus
from helpers.collector import (PER_PROTO, live_collector, nfdump_totals, reference_file, totals_of,
                               use_netflow_backend)
from helpers.nfexports import corpus_groups, udp_payloads

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module", autouse=True)
def netflow_backend():
    use_netflow_backend()


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
