"""The COMBO6 emulator: every unit against the software path and independent references.

First the units alone (configure() by hand; tags and counters against libpcap's BPF interpreter
and hand computations), then whole jobs through the mapper (results equal to the software path
on the same traces), the emulated bus (only what software needs crosses), limits (a refusal
naming the unit) and the 10 ns clock."""
import subprocess
import sys
from pathlib import Path

import pytest

import mapi
from mapi._engine import ffi, lib
from mapi.errors import MapiError
from mapi.hardware import Assignment, HardwareConfig, HardwareError
from mapi.registry import get_registry
from mapi.bpf import compile_filter
from helpers import (CORPUS, backends_fixture, file_sets, generated, inputs, need_tool, needs_corpus, sample,
                     tcpdump_records)
from helpers.cards import (CARRIED_ETHERNET_FILES, ETHERNET_FILES, Ref, assert_same_results,
                           check_tags_against_bpf, configure, filter_config, finish, frames, placements,
                           module_trace, run)

import scampi.backends.cards.combo6 as combo6
from scampi.backends.cards import ffi as card_ffi, lib as card_lib

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from tools.gentrace import SIGNATURES, write_trace  # noqa: E402

HTTP = CORPUS / "pcap" / "PcapPlusPlus__4KHttpRequests.pcap"
EXAMPLE = CORPUS / "pcap" / "PcapPlusPlus__example.pcap"
MIXED, SLOW = generated("mixed.pcap"), generated("slow.pcap")
EXPRESSIONS = [
    "tcp port 80", "udp port 53", "icmp", "ip6", "arp", "host 10.0.0.1", "net 192.168.0.0/16",
    "tcp[tcpflags] & tcp-syn != 0", "tcp and (port 443 or port 22)", "greater 500", "less 100",
    "src host 172.16.0.1 and tcp", "udp and not port 53", "not port 22", "vlan and tcp",
    "ip and len > 1000", "ip[6:2] & 0x1fff != 0", "portrange 1000-2000", "ip proto 47",
    "ether broadcast", "ether multicast", "tcp[13] = 18", "ip6 and tcp port 443", "vlan 100",
    "icmp[icmptype] = icmp-echo", "ip[2:2] > 576", "tcp[tcpflags] & (tcp-syn|tcp-fin) != 0",
    "udp[8:2] = 0x1234", "ether[0:4] = 0xffffffff", "ip src 10.0.0.1 or ip6 src ::1", "not ip",
    "ether proto 0x88cc", "tcp dst port 80 and ip[8] < 64", "ip[0] & 0xf > 5",
    "vlan and tcp port 80", "vlan and (udp port 53 or icmp)", "vlan and ip6 and tcp",
]
# conditions outside the header record: these run as supersets
SUPERSETS = ["tcp and ether[200] = 0x41", "ip and ip[120:2] = 0x4745", "tcp and tcp[40:4] = 0x47455420",
             "vlan and vlan and tcp port 80"]


backends_registered = backends_fixture(combo6)


@pytest.fixture(scope="module")
def trace(tmp_path_factory):
    """A generated mixed trace (TCP/UDP/ICMP/IPv6, payloads with signatures)."""
    return module_trace(tmp_path_factory, "mixed.pcap", 30000, 11)


# --- the units alone (helpers.cards configures them) -----------------------------------------
@pytest.mark.parametrize("files", file_sets(CARRIED_ETHERNET_FILES, ETHERNET_FILES))
def test_lup_tags_equal_libpcap_on_corpus_and_generated(trace, files):
    big = {"LUP": {"rules": 4096, "ranges": 256}}
    checked = 0
    for name in files:
        card = combo6.open_offline(str(CORPUS / "pcap" / name), None, {"limits": big})
        assert card.linktype == 1, name
        assigns = filter_config(card, "LUP", EXPRESSIONS)
        checked += check_tags_against_bpf(card, assigns, exact_required=True)
    card = combo6.open_offline(str(trace[0]), None, {"limits": big})
    assigns = filter_config(card, "LUP", EXPRESSIONS[:20] + SUPERSETS)
    checked += check_tags_against_bpf(card, assigns, exact_required=False)
    assert [a.offer.exact for a in assigns[20:]] == [False] * len(SUPERSETS)
    assert checked > 30000


def test_lup_record_fields_are_absent_when_the_frame_is_short():
    """A frame cut inside the IPv4 header: "ip src 10.0.0.1" must not match (BPF's load fails),
    and "not ip src 10.0.0.1" must not match either (the field is absent, not different)."""
    frame = bytes.fromhex("ffffffffffff00112233445508004500003c1c4640004006")  # cut at byte 24
    card = combo6.open_offline(str(MIXED), None, None)
    filter_config(card, "LUP", ["ip src 10.0.0.1", "not ip src 10.0.0.1", "ip", "ip proto 6"])
    comp = card.compiled
    h = card_ffi.new("card_hdr *")
    buf = card_ffi.new("uint8_t[]", frame)
    card_lib.card_hfe_extract(buf, len(frame), 60, h)
    assert h.avail[0] == 24 and h.avail[1] == 0
    got = [card_lib.card_lup_accepts(comp.c, comp.c.nodes[i].first, comp.c.nodes[i].count, h)
           for i in range(4)]
    want = [lib.mapi_bpf_run(compile_filter(e, 1, 262144)[0], frame, 60, len(frame)) for e in
            ["ip src 10.0.0.1", "not ip src 10.0.0.1", "ip", "ip proto 6"]]
    assert got == [0, 0, 1, 1] == [int(w != 0) for w in want]


@pytest.mark.parametrize("path", inputs([SLOW, HTTP]))
def test_sau_and_stu_equal_hand_computation(path):
    """SAMPLE 1-in-3 below a filter and counters below it, against tcpdump's record list."""
    recs, err = tcpdump_records(path, "tcp port 80")
    assert recs is not None, err
    card = combo6.open_offline(str(path), None, None)
    configure(card, [("LUP", "BPF_FILTER", ("tcp port 80",), None),
                     ("SAU", "SAMPLE", (3, mapi.PERIODIC, 1), 0),
                     ("STU", "PKT_COUNTER", (), 1), ("STU", "BYTE_COUNTER", (), 1),
                     ("STU", "PKT_COUNTER", (), 0)])
    for _ in frames(card):
        pass
    kept = recs[::3]
    assert card.hw_result(2)[0] == len(kept)
    assert card.hw_result(3)[0] == sum(len(r[2]) for r in kept)       # caplen == wirelen here
    assert card.hw_result(4)[0] == len(recs)
    assert card.hw_result(1)[0] == len(kept)                           # SAMPLE's own result
    assert card.hw_result(2)[1] == round(kept[-1][0] * 1e6) * 1000
    with pytest.raises(KeyError):
        card.hw_result(0)                                              # a filter has no result


@needs_corpus
def test_counters_survive_reconfiguration():
    """Assignment.key identifies a node across configurations: its counter set keeps counting."""
    card = combo6.open_offline(str(HTTP), None, None)
    reg = get_registry()
    pkt = card.unit("STU").offer(reg.function("PKT_COUNTER"), (), card)

    def config(*keys):
        return HardwareConfig(assignments=[
            Assignment(hw_id=i, unit="STU", function="PKT_COUNTER", args=(), offer=pkt,
                       parent_hw_id=None, deliver=False, key=k) for i, k in enumerate(keys)],
            deliver_all=True)
    card.configure(config(7))
    it = frames(card)
    first = next(it).n
    card.configure(config(8, 7))            # node 7 moves to tag bit 1; node 8 is new
    rest = sum(b.n for b in it)
    assert card.hw_result(1)[0] == first + rest == 385
    assert card.hw_result(0)[0] == rest


def test_over_the_cam_is_refused_naming_the_unit():
    card = combo6.open_offline(str(MIXED), None, {"limits": {"LUP": {"rules": 8}}})
    specs = [("LUP", "BPF_FILTER", (e,), None) for e in ("tcp port 80", "host 10.0.0.1")]
    with pytest.raises(HardwareError) as exc:
        configure(card, specs)
    msg = str(exc.value)
    assert "LUP" in msg and "rules" in msg and "10" in msg and "8" in msg
    assert exc.value.hw_ids == (1,)          # the newest node is the one that does not fit
    assert card.compiled is None             # nothing applied
    with pytest.raises(HardwareError, match="PCK"):
        card2 = combo6.open_offline(str(MIXED), None, {"limits": {"PCK": {"patterns": 3}}})
        configure(card2, [("PCK", "STR_SEARCH", (("GET", "HTTP", "Host", "Accept"), 0, 0,
                                                 "auto", True), None)])


def test_bad_options_are_clear_errors():
    with pytest.raises(MapiError) as exc:
        mapi.create_offline_device(str(MIXED), backend="combo6", cam=3)
    assert exc.value.code == mapi.errors.EBADARG and "cam" in str(exc.value)
    with pytest.raises(MapiError, match="XYZ"):
        mapi.create_offline_device(str(MIXED), backend="combo6", limits={"XYZ": {"rules": 1}})
    with pytest.raises(MapiError, match="bogus"):
        mapi.create_offline_device(str(MIXED), backend="combo6", limits={"LUP": {"bogus": 1}})


# --- whole jobs through the mapper -------------------------------------------------------------
def test_jobs_equal_software_on_generated_trace(trace, tmp_path):
    path, stats = trace
    sigs = [x for x in SIGNATURES if len(x) <= 16][:40]
    jobs = [
        [("BPF_FILTER", "tcp port 80"), ("PKT_COUNTER",), ("BYTE_COUNTER",)],
        [("BPF_FILTER", "udp"), ("SAMPLE", 10), ("PKT_COUNTER",), ("BYTE_COUNTER",)],
        [("SAMPLE", 25, mapi.PROBABILISTIC, 99), ("PKT_COUNTER",)],
        [("STR_SEARCH", sigs), ("PKT_COUNTER",)],
        [("BPF_FILTER", "ip6 and tcp"), ("STR_SEARCH", "GET /index.html"), ("BYTE_COUNTER",)],
        [("STATS", Ref(0, 2), 0, True)],
        [("BPF_FILTER", "tcp[tcpflags] & tcp-syn != 0"), ("HASHSAMP", 300), ("PKT_COUNTER",)],
        [("BPF_FILTER", "greater 1000"), ("SAMPLE", 7), ("TO_BUFFER",)],
        [("STR_SEARCH", list(SIGNATURES)), ("PKT_COUNTER",)],     # some longer than 16 bytes
    ]
    soft, _, _, soft_pk = run(path, jobs, packets_of=(7,))
    hard, infos, info, hard_pk = run(path, jobs, backend="combo6", packets_of=(7,))
    pending = assert_same_results(hard, soft, infos)
    assert hard_pk == soft_pk and len(hard_pk[0]) > 100
    assert soft[3][0] == sum(stats.signatures[s] for s in sigs) > 0     # the generator's count
    assert placements(infos) == [
        ["LUP", "STU", "STU"], ["LUP", "SAU", "STU", "STU"], ["SAU", "STU"], ["PCK", "STU"],
        ["LUP", "PCK", "STU"], ["STU"], ["LUP", "software", "software"],
        ["LUP", "SAU", "software"], ["PCK", "software"]]
    assert "cut to 16 bytes: superset" in infos[8][0]["hw_note"]
    assert soft[8][1] == sum(stats.signatures.values())
    hw = info["hardware"]
    assert hw["link"]["packets"] == stats.packets
    # only the packets software nodes need crossed the bus: HASHSAMP's SYNs, TO_BUFFER's sample
    # and what the 16-byte prefixes of the signatures match (refined in software)
    prefixes = sorted({x[:16] for x in SIGNATURES})
    need = run(path, [[("BPF_FILTER", "tcp[tcpflags] & tcp-syn != 0"), ("TO_BUFFER",)],
                      [("BPF_FILTER", "greater 1000"), ("SAMPLE", 7), ("TO_BUFFER",)],
                      [("STR_SEARCH", prefixes), ("TO_BUFFER",)]],
               packets_of=(0, 1, 2))[3]
    assert len(need[2]) >= soft[8][1]
    crossing = {seq for pk in need for seq, _, _ in pk}
    bus = hw["bus"]
    assert bus["packets"] - bus["clock_packets"] == len(crossing) < stats.packets / 5
    finish(pending)


@needs_corpus
def test_jobs_equal_software_on_corpus():
    jobs = [
        [("BPF_FILTER", "host 10.0.0.6"), ("PKT_COUNTER",), ("BYTE_COUNTER",)],
        [("BPF_FILTER", "udp port 53"), ("PKT_COUNTER",)],
        [("BPF_FILTER", "vlan and tcp"), ("PKT_COUNTER",)],
        [("SAMPLE", 4), ("BYTE_COUNTER",)],
        [("STR_SEARCH", ["|00 00|", "HTTP/1.1"], 10, 200), ("PKT_COUNTER",)],
        [("BPF_FILTER", "ip and ether[80:2] = 0x0000"), ("PKT_COUNTER",)],
    ]
    pending = []
    for name in ETHERNET_FILES[:6]:
        path = CORPUS / "pcap" / name
        soft = run(path, jobs)[0]
        hard, infos, _, _ = run(path, jobs, backend="combo6")
        pending += assert_same_results(hard, soft, infos)
        assert infos[5][0]["placement"] == "LUP" and infos[5][0]["hw_exact"] is False
    finish(pending)


def test_a_five_percent_job_moves_only_its_packets(trace, tmp_path):
    """ICMP is about 5 % of the generated trace: only those packets cross the bus, and the file
    TO_FILE writes from them equals tcpdump's."""
    path, stats = trace
    out = tmp_path / "icmp.pcap"
    jobs = [[("BPF_FILTER", "icmp"), ("PKT_COUNTER",), ("TO_FILE", mapi.MFF_PCAP, str(out))]]
    res, infos, info, _ = run(path, jobs, backend="combo6")
    recs, err = tcpdump_records(path, "icmp")
    assert recs is not None, err
    hw = info["hardware"]
    share = len(recs) / stats.packets
    assert 0.03 < share < 0.07
    assert res[0][1] == len(recs)
    bus = hw["bus"]
    # besides the ICMP packets, only the first and last packet of each batch cross (the
    # link's time, so ticks and intervals fall where software puts them)
    assert bus["packets"] - bus["clock_packets"] == len(recs)
    assert bus["bytes"] - bus["clock_bytes"] == sum(len(r[2]) for r in recs)
    assert bus["clock_packets"] <= 2 * info["batches"]
    assert hw["link"]["packets"] == stats.packets
    assert placements(infos) == [["LUP", "STU", "software"]]
    ref = tmp_path / "ref.pcap"
    subprocess.run([need_tool("tcpdump"), "-r", str(path), "-w", str(ref), "icmp"], check=True,
                   capture_output=True)
    assert out.read_bytes() == ref.read_bytes()


@pytest.mark.parametrize("path", inputs([MIXED, EXAMPLE]))
def test_full_units_fall_back_newest_first_and_results_stay_exact(path):
    jobs = [[("BPF_FILTER", "host 10.0.0.%d" % i), ("PKT_COUNTER",)] for i in (6, 138, 1, 2)]
    soft = run(path, jobs)[0]
    hard, infos, info, _ = run(path, jobs, backend="combo6", limits={"LUP": {"rules": 13}})
    assert hard == soft
    where = [f[0]["placement"] for f in infos]
    assert where == ["LUP", "LUP", "software", "software"]     # 6 CAM entries per host filter
    assert "LUP is full" in infos[3][0]["hw_note"]
    lup = next(u for u in info["hardware"]["units"] if u["name"] == "LUP")
    assert lup["used"] == {"rules": 12} and lup["limits"]["rules"] == 13


def test_tsu_stamps_at_10_ns(tmp_path):
    path = tmp_path / "ns.pcap"
    write_trace(str(path), packets=2000, seed=3, fmt="pcap-ns")
    jobs = [[("BPF_FILTER", "udp"), ("TO_BUFFER",)]]
    soft = run(path, jobs, packets_of=(0,))[3][0]
    hard = run(path, jobs, backend="combo6", packets_of=(0,))[3][0]
    assert len(hard) == len(soft) > 100
    assert any(ts % 10 for _, ts, _ in soft)                  # the trace has ns digits
    assert [(s, ts - ts % 10, d) for s, ts, d in soft] == hard


@pytest.mark.parametrize("path", inputs([sample("pcap/PcapPlusPlus__raw_ip.pcap"),
                                         sample("pcap/PcapPlusPlus__null_loopback.pcap"),
                                         CORPUS / "pcap" / "libtrace__100_sll.pcap"]))
def test_non_ethernet_links_run_in_software(path):
    jobs = [[("BPF_FILTER", "tcp"), ("PKT_COUNTER",)]]
    soft = run(path, jobs)[0]
    hard, infos, _, _ = run(path, jobs, backend="combo6")
    assert hard == soft
    assert infos[0][0]["placement"] == "software"
    assert infos[0][1]["placement"] == "software"       # its parent is in software


@needs_corpus
def test_a_non_ethernet_batch_under_header_filters_is_a_clear_error():
    """The card's header units parse Ethernet: a pcapng whose later interface is not Ethernet
    stops with an error naming the file and the first packet concerned; results stay readable."""
    path = CORPUS / "pcap" / "libtrace__complex.pcapng"
    dev = mapi.create_offline_device(str(path), backend="combo6")
    fd = mapi.create_flow(dev)
    mapi.apply_function(fd, "BPF_FILTER", "ip")
    cnt = mapi.apply_function(fd, "PKT_COUNTER")
    mapi.connect(fd)
    assert mapi.get_function_info(fd, 1)["placement"] == "LUP"
    mapi.start_offline_device(dev)
    with pytest.raises(MapiError) as exc:
        mapi.wait_offline_device(dev)
    assert "link type" in str(exc.value) and str(path) in str(exc.value) and "#" in str(exc.value)
    assert mapi.read_results(fd, cnt).value >= 0
    mapi.delete_offline_device(dev)


def test_results_read_while_packets_flow_stay_in_software(trace):
    """BUCKET, DIST and THRESHOLD read a counter during replay; the card's counters run a batch
    ahead, so the card refuses to hold them (the mapper keeps them in software) and every
    snapshot, bin and event equals the software path."""
    path, _ = trace
    jobs = [[("BPF_FILTER", "icmp"), ("PKT_COUNTER",)],
            [("BUCKET", Ref(0, 1), "1ms")],
            [("DIST", Ref(0, 1), 0, 1000, 100, "2ms", True)],
            [("BPF_FILTER", "udp"), ("BYTE_COUNTER",)],
            [("THRESHOLD", mapi.GREATER, Ref(3, 1), 1000000)],
            [("BPF_FILTER", "tcp"), ("PKT_COUNTER",)]]
    soft = run(path, jobs)[0]
    hard, infos, _, _ = run(path, jobs, backend="combo6")
    assert hard == soft
    assert len(soft[1][0]) > 20
    assert placements(infos) == [["LUP", "software"], ["software"], ["software"],
                                 ["LUP", "software"], ["software"], ["LUP", "STU"]]
    assert "read by BUCKET while packets flow" in infos[0][1]["hw_note"]


def test_every_standard_function_equals_software(trace, tmp_path):
    """All standard functions, in software or on the card's units, downstream of hardware
    filters: results, packets and files equal the plain software path (time-driven ones
    included: the link's time reaches the host)."""
    path, _ = trace
    out = {}

    def jobs(tag):
        out[tag] = (tmp_path / ("%s.pcap" % tag), tmp_path / ("%s.erf" % tag))
        return [
            [("BPF_FILTER", "tcp port 22 or icmp"), ("PKT_COUNTER",), ("BYTE_COUNTER",), ("GAP",),
             ("PKTINFO", "PKT_SIZE"), ("TOP", 3, "ip.src"), ("PKT_RATE", "3ms"),
             ("BIT_RATE", "5ms"), ("STARTSTOP", "+2ms", "+20ms"), ("PKT_COUNTER",)],
            [("BUCKET", Ref(0, 1), "2ms", True)],
            [("DIST", Ref(0, 2), 0, 100000, 5000)],
            [("STATS", Ref(0, 1), "4ms")],
            [("THRESHOLD", mapi.GREATER, Ref(0, 1), 50)],
            [("BINOP", mapi.ADD, Ref(0, 1), Ref(0, 2))],
            [("SAMPLE", 5), ("REGEXP", "GET /[a-z]+"), ("HASHSAMP", 512), ("PKT_COUNTER",),
             ("TO_BUFFER",)],
            [("STR_SEARCH", "User-Agent"), ("TO_FILE", mapi.MFF_PCAP, str(out[tag][0])),
             ("TO_FILE", mapi.MFF_DAG_ERF, str(out[tag][1]))],
            [("BPF_FILTER", "udp"), ("STATS", Ref(0, 2), 0, True)],
        ]
    soft, _, _, soft_pk = run(path, jobs("soft"), packets_of=(6,))
    hard, infos, _, hard_pk = run(path, jobs("hard"), backend="combo6", packets_of=(6,))
    for r in (soft, hard):
        for fid in (1, 2):
            r[7][fid].pop("path")
    pending = assert_same_results(hard, soft, infos)
    assert hard_pk == soft_pk and soft_pk[0]
    for k in (0, 1):
        assert out["hard"][k].read_bytes() == out["soft"][k].read_bytes()
    names = {i["name"] for f in infos for i in f}
    assert names >= {
        "BPF_FILTER", "PKT_COUNTER", "BYTE_COUNTER", "GAP", "PKTINFO", "TOP", "PKT_RATE",
        "BIT_RATE", "STARTSTOP", "BUCKET", "DIST", "STATS", "THRESHOLD", "BINOP", "SAMPLE",
        "REGEXP", "HASHSAMP", "TO_BUFFER", "STR_SEARCH", "TO_FILE"}
    where = placements(infos)
    assert where[0][0] == "LUP" and where[6][0] == "SAU" and where[7][0] == "PCK"
    finish(pending)
