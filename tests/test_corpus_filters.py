"""Whole-path correctness on the corpus: BPF_FILTER + PKT_COUNTER + BYTE_COUNTER + TO_BUFFER on
one device with many flows select exactly the records `tcpdump -r FILE EXPR -w -` selects (counts,
wire bytes, and the records: timestamps, caplen, wirelen, bytes), for many expressions on every
corpus capture tcpdump reads; pcapng files give the packets tshark reads; ERF files give the
packets of the pcap libtrace's traceconvert made from them (timestamps within 1 us)."""
import gzip
import os
from concurrent.futures import ThreadPoolExecutor

import pytest

import mapi
from helpers import CORPUS, manifest, needs_corpus
from mapi.errors import MapiError, EFILTER
from helpers.savefile import parse_pcap_bytes, read_source, records_of, tcpdump_ref, tshark_ref

EXPRESSIONS = [
    "tcp port 80", "udp", "icmp", "ip6", "vlan", "arp", "not arp", "port 53",
    "net 192.168.0.0/16", "host 10.0.0.1 or net 172.16.0.0/12", "greater 500", "less 100",
    "tcp[tcpflags] & tcp-syn != 0", "ip[6:2] & 0x1fff != 0", "icmp6 or (ip6 and udp)",
    "ether broadcast or ether multicast", "mpls", "tcp and (port 443 or port 22)",
]
FULL_DIRS = ("pcap", "netflow", "derived")
ROTATING = 4          # expressions per tcpdump test input (they rotate over the list)

pytestmark = needs_corpus


def capture_files():
    """(path, expressions) for every corpus capture tcpdump can be asked about."""
    out = []
    for d in FULL_DIRS:
        for p in sorted((CORPUS / d).iterdir()):
            if p.suffix in (".pcap", ".pcapng", ".gz"):
                out.append((p, EXPRESSIONS))
    for i, p in enumerate(sorted((CORPUS / "tcpdump/pcap").iterdir())):
        out.append((p, [EXPRESSIONS[(i * ROTATING + k) % len(EXPRESSIONS)] for k in range(ROTATING)]))
    return out


def has_bad_fraction(path):
    recs, _, src = read_source(path, raw_ts=True)
    limit = 10 ** 9 if src.nsec else 10 ** 6
    return any((r[0] & 0xFFFFFFFF) >= limit for r in recs or ())


def reference(path, expr):
    if path.suffix == ".gz":
        return tcpdump_ref(None, expr, stdin=gzip.decompress(path.read_bytes()))
    return tcpdump_ref(path, expr)


def replay_flows(path, exprs):
    """One device, one flow per expression: {expr: (count, bytes, records) or MapiError}, and
    the device's error (or None)."""
    dev = mapi.create_offline_device(str(path))
    ring = max(1 << 20, 3 * os.path.getsize(path) + (1 << 20))
    if path.suffix == ".gz":
        ring *= 8
    flows, out = {}, {}
    try:
        for expr in exprs:
            fd = mapi.create_flow(dev)
            try:
                mapi.apply_function(fd, "BPF_FILTER", expr)
            except MapiError as exc:
                out[expr] = exc
                mapi.close_flow(fd)
                continue
            ids = [mapi.apply_function(fd, "PKT_COUNTER"), mapi.apply_function(fd, "BYTE_COUNTER"),
                   mapi.apply_function(fd, "TO_BUFFER", mapi.WAIT, ring)]
            mapi.connect(fd)
            flows[expr] = (fd, ids)
        mapi.start_offline_device(dev)
        dev_err = None
        try:
            mapi.wait_offline_device(dev, timeout=120)
        except MapiError as exc:
            dev_err = exc
        for expr, (fd, (cnt, byt, buf)) in flows.items():
            recs = []
            while True:
                p = mapi.get_next_pkt(fd, buf)
                if p is None:
                    break
                recs.append((p.ts, p.caplen, p.wlen, bytes(p.data)))
            out[expr] = (mapi.read_results(fd, cnt).value, mapi.read_results(fd, byt).value, recs)
        return out, dev_err
    finally:
        mapi.delete_offline_device(dev)


def check_flow(path, expr, ref, ref_err, mine, dev_err):
    """What differs between our flow and tcpdump's selection: a message, or None."""
    if isinstance(mine, MapiError):
        # libpcap cannot compile it for this link type: tcpdump says the same
        if mine.code == EFILTER and ref is None and ref_err and ref_err in str(mine):
            return None
        return "filter error %s where tcpdump says %r" % (mine, ref_err)
    if ref is None:
        return "tcpdump fails (%s), we select %d packets" % (ref_err, mine[0])
    count, wire, recs = mine
    if (count, wire) != (len(ref), sum(r[2] for r in ref)):
        return "count/bytes %s != tcpdump's %s" % ((count, wire), (len(ref), sum(r[2] for r in ref)))
    if [r[1:] for r in recs] != [r[1:] for r in ref]:
        return "TO_BUFFER records differ"
    if [r[0] for r in recs] != [r[0] for r in ref] and not has_bad_fraction(path):
        # tcpdump --nano scales a us fraction as a signed 32-bit value: only files with
        # out-of-range fractions (fuzzed tcpdump inputs) may differ in timestamps
        return "timestamps differ"
    if (dev_err.where["pcap_error"] if dev_err else None) != ref_err:
        return "device error %s, tcpdump %r" % (dev_err, ref_err)
    return None


# libpcap's compiler emits different code for a savefile handle than for pcap_open_dead() on
# DLT_NULL (BSD AF_INET6 values, the file's byte order): BPF_FILTER compiles on a dead handle.


def test_filters_equal_tcpdump_on_every_corpus_capture(monkeypatch):
    # hundreds of (link type, expression) programs: the interpreter, not a compiler run for each
    monkeypatch.setenv("MAPI_BPF_JIT", "0")
    files = capture_files()
    pairs = [(p, e) for p, exprs in files for e in exprs]
    with ThreadPoolExecutor(3) as pool:
        refs = dict(zip(pairs, pool.map(lambda pe: reference(*pe), pairs)))
    compared = selected = 0
    problems = []
    for path, exprs in files:
        if path.name == "libtrace__complex.pcapng":
            continue                # libpcap stops at its second link type (tshark test below)
        try:
            got, dev_err = replay_flows(path, exprs)
        except MapiError as exc:
            if not all(refs[(path, e)][0] is None for e in exprs):
                problems.append((path.name, "*", "open failed: %s" % exc))
            continue
        linktype = read_source(path)[2].linktype
        for expr in exprs:
            ref, ref_err = refs[(path, expr)]
            why = check_flow(path, expr, ref, ref_err, got[expr], dev_err)
            if why:
                problems.append((path.name, expr, why))
            elif not isinstance(got[expr], MapiError):
                compared += 1
                selected += got[expr][0]
    assert not problems, "%d differences from tcpdump, e.g. %s" % (len(problems), problems[:10])
    assert compared > 2500 and selected > 50000


def test_pcapng_files_give_the_packets_tshark_reads():
    rows = manifest()
    names = sorted(p for p in rows if p.endswith(".pcapng"))
    checked = 0
    for name in names:
        recs, err, _ = read_source(name)
        if recs is None:
            assert rows[name]["ref_exit_code"] == "1"          # the invalid-version files
            continue
        if err is not None:
            continue
        ref = tshark_ref(name)
        assert len(recs) == len(ref) > 0, name
        for (ts, cap, wire, data, ifx, _), ((section, rifx), rts, rcap, rwire, rdata) in zip(recs, ref):
            assert (cap, wire, data) == (rcap, rwire, rdata), name
            assert section == 1 and ifx == rifx, name
            assert rts is None or ts == rts, name
        if rows[name]["ref_exit_code"] == "0":
            assert records_of(recs) == tcpdump_ref(name)[0], name
        checked += 1
    assert checked >= 3


ERF_FILES = ["erf/libtrace__100_packets.erf", "erf/libtrace__5_packets.erf",
             "erf/libtrace__5_packets.erf.gz", "erf/libtrace__5_packets.erf.xz",
             "erf/libtrace__5_packets.erf.bz2", "derived/tls2.derived.erf"]


@pytest.mark.parametrize("name", ERF_FILES)
def test_erf_equals_the_pcap_traceconvert_made(name):
    rows = manifest()
    ref_path = CORPUS / rows[str(CORPUS / name)]["reference"].split(";")[0]
    ref = parse_pcap_bytes(ref_path.read_bytes())
    recs, err, src = read_source(CORPUS / name)
    assert err is None and src.format == "erf" and len(recs) == len(ref) == int(rows[str(CORPUS / name)]["packets"])
    assert [r[1:4] for r in recs] == [r[1:] for r in ref]
    assert max(abs(a[0] - b[0]) for a, b in zip(recs, ref)) <= 1000
    # BPF and counters on the ERF device agree with tcpdump on the converted pcap
    got, dev_err = replay_flows(CORPUS / name, ["tcp port 80", "udp", "tcp[tcpflags] & tcp-syn != 0"])
    assert dev_err is None
    for expr, (count, wire, frames) in got.items():
        want = tcpdump_ref(ref_path, expr)[0]
        assert (count, wire) == (len(want), sum(r[2] for r in want))
        assert [f[1:] for f in frames] == [r[1:] for r in want]


def test_derived_erf_has_the_original_timestamps():
    """tls2.derived.erf was made from pcap/PcapPlusPlus__tls2.pcap: rounding its binary fractions
    to the nearest ns gives the original microseconds back."""
    recs, err, _ = read_source(CORPUS / "derived/tls2.derived.erf")
    orig = parse_pcap_bytes((CORPUS / "pcap/PcapPlusPlus__tls2.pcap").read_bytes())
    assert err is None and [r[:4] for r in recs] == orig
