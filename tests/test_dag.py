"""The DAG-like emulator: DSM bit-mask filters against libpcap's interpreter, steering hashes
and ERF writing against the software functions, the loss counter against hand-made records,
the classifier's limit."""
import struct

import pytest

import mapi
from mapi.hardware import HardwareError
from mapi.registry import get_registry
from helpers import CORPUS, backends_fixture, file_sets, generated, needs_corpus
from helpers.savefile import count_offline
from helpers.cards import (CARRIED_ETHERNET_FILES, ETHERNET_FILES, assert_same_results,
                           check_tags_against_bpf, configure, filter_config, finish, placements,
                           module_trace, run)

import scampi.backends.cards.dag as dag

EXAMPLE = generated("mixed.pcap")
ERF_100 = CORPUS / "erf" / "libtrace__100_packets.erf"
# byte tests at fixed offsets within 64 bytes: exact on the DSM
FITS = ["icmp", "ip6", "arp", "host 10.0.0.1", "net 192.168.0.0/16", "ip proto 47",
        "src host 172.16.0.1 and tcp", "ether broadcast", "ether multicast", "vlan 100",
        "ip[6:2] & 0x1fff != 0", "ether[0:4] = 0xffffffff", "not ip", "ether proto 0x88cc",
        "ip6 and tcp port 443", "ip src 10.0.0.1 or ip6 src ::1"]
# IP-header-relative or length tests: supersets
BROADER = ["tcp port 80", "udp port 53", "tcp[tcpflags] & tcp-syn != 0", "ip and len > 1000",
           "tcp dst port 80 and ip[8] < 64", "icmp[icmptype] = icmp-echo"]


backends_registered = backends_fixture(dag)


@pytest.fixture(scope="module")
def erf_trace(tmp_path_factory):
    return module_trace(tmp_path_factory, "mixed.erf", 20000, 5)


@pytest.mark.parametrize("captures", file_sets(CARRIED_ETHERNET_FILES, ETHERNET_FILES[:8] + [ERF_100]))
def test_dsm_tags_equal_libpcap(erf_trace, captures):
    checked = 0
    files = [CORPUS / "pcap" / n for n in captures] + [erf_trace[0]]
    for path in files:
        for group in (FITS[:6], FITS[6:12], FITS[12:], BROADER[:3], BROADER[3:]):
            card = dag.open_offline(str(path), None, {})
            assigns = []
            # as many filters as the 7 bit-mask filters hold
            for e in group:
                try:
                    assigns = filter_config(card, "DSM", [a.args[0] for a in assigns] + [e])
                except HardwareError:
                    assert e in BROADER or len(assigns) > 0, e
            if not assigns:
                continue
            checked += check_tags_against_bpf(card, assigns, exact_required=group[0] in FITS)
            if group[0] in BROADER:
                assert not any(a.offer.exact for a in assigns)
    assert checked > 50000


def test_dsm_offers_say_what_was_dropped():
    card = dag.open_offline(str(EXAMPLE), None, {})
    desc = get_registry().function("BPF_FILTER")
    unit = card.unit("DSM")
    o = unit.offer(desc, ("tcp port 80",), card)
    assert not o.exact and "sport, dport dropped: superset" in o.note
    assert o.demand == {"filters": 3}          # IPv6 sport, IPv6 dport, IPv4 TCP unfragmented
    assert unit.offer(desc, ("greater 500",), card) is None        # nothing left to test
    assert unit.offer(desc, ("ip6 and tcp port 443",), card).exact


def test_over_seven_filters_is_refused_naming_the_dsm():
    card = dag.open_offline(str(EXAMPLE), None, {})
    specs = [("DSM", "BPF_FILTER", ("host 10.0.0.%d" % i,), None) for i in (1, 2)]
    with pytest.raises(HardwareError) as exc:
        configure(card, specs)
    assert "DSM" in str(exc.value) and "filters" in str(exc.value) and "7" in str(exc.value)
    assert exc.value.hw_ids == (1,)


def test_jobs_equal_software_on_erf(erf_trace, tmp_path):
    path, stats = erf_trace
    soft_erf, hard_erf = tmp_path / "soft.erf", tmp_path / "hard.erf"

    def jobs(out):
        return [
            [("BPF_FILTER", "icmp"), ("PKT_COUNTER",), ("BYTE_COUNTER",)],
            [("BPF_FILTER", "tcp port 443"), ("PKT_COUNTER",)],
            [("HASHSAMP", 200), ("PKT_COUNTER",)],
            [("BPF_FILTER", "ip6"), ("TO_FILE", mapi.MFF_DAG_ERF, str(out))],
        ]
    soft, _, _, _ = run(path, jobs(soft_erf))
    hard, infos, info, _ = run(path, jobs(hard_erf), backend="dag")
    for f in (soft, hard):
        f[3][1].pop("path")
    pending = assert_same_results(hard, soft, infos)
    assert placements(infos) == [["DSM", "software", "software"], ["DSM", "software"],
                                 ["HASH", "software"], ["DSM", "ERF"]]
    assert infos[1][0]["hw_exact"] is False
    assert hard_erf.read_bytes() == soft_erf.read_bytes()
    assert soft[3][1]["packets"] == stats.kinds["tcp6"] + stats.kinds["udp6"] > 0
    hw = info["hardware"]
    # crossing: ICMP (counted in software), the DSM's superset of tcp port 443, HASHSAMP's pick;
    # the IPv6 packets TO_FILE writes stay on the card
    need = run(path, [[("BPF_FILTER", "icmp or (ip and tcp and ip[6:2] & 0x1fff = 0) or "
                                      "(ip6 and tcp port 443)"),
                       ("TO_BUFFER",)], [("HASHSAMP", 200), ("TO_BUFFER",)]],
               packets_of=(0, 1))[3]
    bus = hw["bus"]
    assert bus["packets"] - bus["clock_packets"] == len({s for pk in need for s, _, _ in pk})
    assert hw["link"]["packets"] == stats.packets
    assert hw["loss_counter"] == 0
    finish(pending)


@needs_corpus
def test_erf_corpus_file_equals_software():
    jobs = [[("BPF_FILTER", "tcp"), ("PKT_COUNTER",), ("BYTE_COUNTER",)],
            [("BPF_FILTER", "host 192.168.1.1 or arp"), ("PKT_COUNTER",)],
            [("PKT_COUNTER",)]]
    soft = run(ERF_100, jobs)[0]
    hard, infos, info, _ = run(ERF_100, jobs, backend="dag")
    assert hard == soft and soft[2][0] == 100
    assert placements(infos)[2] == ["software"]
    assert info["hardware"]["bus"]["packets"] == 100        # a flow wants every packet


def erf_record(ts_ns, frame, lctr, rtype=2):
    """One ERF Ethernet record (16-byte header, 2-byte pad), as the ERF specification lays it."""
    sec, ns = divmod(ts_ns, 10 ** 9)
    ts = (sec << 32) | ((ns << 32) // 10 ** 9)
    rlen = 16 + 2 + len(frame)
    return struct.pack("<Q", ts) + struct.pack(">BBHHH", rtype, 0x04, rlen, lctr,
                                               len(frame) + 4) + b"\0\0" + frame


def test_loss_counter_adds_the_records_lctr(tmp_path):
    frame = bytes.fromhex("ffffffffffff0011223344550806") + bytes(46)      # ARP-sized
    t0 = 1_700_000_000 * 10 ** 9
    lctrs = [0, 3, 0, 0, 250, 1]
    path = tmp_path / "lossy.erf"
    path.write_bytes(b"".join(erf_record(t0 + 1000 * i, frame, c) for i, c in enumerate(lctrs)))
    count, info, stats = count_offline(path, backend="dag")
    assert count == 6
    assert info["hardware"]["loss_counter"] == 254
    assert stats["ps_ifdrop"] == 254


def test_dag_clock_stamps_erf_fixed_point(tmp_path):
    """Packets carry the ERF timestamps of their records: seconds.fraction (2^-32 s) to ns."""
    frame = bytes.fromhex("ffffffffffff0011223344550806") + bytes(46)
    raw = [(1_700_000_000 << 32) | f for f in (0, 1, 0x80000000, 0xFFFFFFFF, 4294967)]
    path = tmp_path / "clock.erf"
    path.write_bytes(b"".join(
        struct.pack("<Q", t) + struct.pack(">BBHHH", 2, 0x04, 18 + len(frame), 0, len(frame) + 4)
        + b"\0\0" + frame for t in raw))
    pk = run(path, [[("TO_BUFFER",)]], backend="dag", packets_of=(0,))[3][0]
    want = [(t >> 32) * 10 ** 9 + (((t & 0xFFFFFFFF) * 10 ** 9 + (1 << 31)) >> 32) for t in raw]
    assert [ts for _, ts, _ in pk] == want


def test_bad_options():
    with pytest.raises(mapi.MapiError, match="DSM has 0..7"):
        mapi.create_offline_device(str(EXAMPLE), backend="dag", limits={"DSM": {"filters": 9}})
    with pytest.raises(mapi.MapiError, match="unknown option"):
        mapi.create_offline_device(str(EXAMPLE), backend="dag", speed=10)


def test_limited_classifier_falls_back_newest_first():
    jobs = [[("BPF_FILTER", e), ("PKT_COUNTER",)] for e in ("icmp", "arp", "ip6", "host 10.0.0.6")]
    soft = run(EXAMPLE, jobs)[0]
    hard, infos, info, _ = run(EXAMPLE, jobs, backend="dag", limits={"DSM": {"filters": 3}})
    assert hard == soft
    assert [f[0]["placement"] for f in infos] == ["DSM", "DSM", "DSM", "software"]
    assert "DSM is full" in infos[3][0]["hw_note"]
