"""Savefile parsers (classic pcap, pcapng, ERF) against independent references: tcpdump
(libpcap 1.10.3) on crafted files -- the records it delivers and its error text, record for
record -- tshark for what libpcap refuses to read, and hand-computed values for ERF, which no
stock tool here reads.  Compressed input, region boundaries and bad arguments:
test_savefile_input.py."""
import struct

import pytest

import mapi
from helpers.savefile import (PKT, assert_same_as_tcpdump, count_offline, erf_record, ng_block, ng_epb,
                              ng_idb, ng_interface_numbers, ng_option, ng_pb, ng_shb, ng_spb, pcap_header,
                              pcap_record, read_source, tshark_ref)
from mapi.errors import EFORMAT, ETRUNC


# --- classic pcap: what libpcap 1.10.3 delivers -------------------------------------------------
def _usb_mmapped(order, ndesc=2, urb_len=100):
    h = struct.pack(order + "Q", 0x1122334455667788) + b"C" + bytes([0, 0x81, 5]) + \
        struct.pack(order + "H", 3) + b"\0\0" + struct.pack(order + "qiiII", 1000, 5, 0, urb_len, 0)
    h += struct.pack(order + "ii", 0, ndesc) + struct.pack(order + "iiII", 1, 2, 3, ndesc)
    return h + struct.pack(order + "iII", 0, 0, 10) + b"\0" * 4 + struct.pack(order + "iII", 0, 50, 20) + b"\0" * 4


PCAP_CASES = {
    # snapshot length 0 / above INT_MAX: the link type's maximum (262144; D-Bus 128 MiB)
    "snaplen-0": pcap_header(snaplen=0) + pcap_record(PKT),
    "snaplen-2^31": pcap_header(snaplen=0x80000000) + pcap_record(PKT),
    "dbus-300k-record": pcap_header(linktype=231, snaplen=0) + pcap_record(b"x" * 300000),
    # caplen above the snapshot length: delivered cut to it, the rest skipped
    "caplen-over-snaplen": pcap_header(snaplen=40) + pcap_record(PKT, wirelen=100) +
    pcap_record(PKT, sec=1001),
    "over-snaplen-cut-in-skipped-part": pcap_header(snaplen=40) + pcap_record(PKT)[:16 + 50],
    "over-snaplen-cut-before-snaplen": pcap_header(snaplen=40) + pcap_record(PKT)[:16 + 30],
    # above the per-link-type maximum: an error at that record (two texts)
    "caplen-over-max-and-snaplen": pcap_header() + pcap_record(PKT) +
    pcap_record(b"x" * 10, caplen=300000),
    "caplen-over-max-under-snaplen": pcap_header(snaplen=400000) + pcap_record(PKT) +
    pcap_record(b"x" * 10, caplen=300000),
    "cut-in-record-header": pcap_header() + pcap_record(PKT) + pcap_record(PKT)[:10],
    "cut-in-record-data": pcap_header() + pcap_record(PKT) + pcap_record(PKT)[:40],
    "header-only": pcap_header(),
    "header-cut": pcap_header()[:10],
    "empty": b"",
    "two-bytes": b"\xd4\xc3",
    "garbage": b"hello world, this is not a capture file at all" * 3,
    "archaic-1.4": pcap_header(major=1) + pcap_record(PKT),
    "version-2.5": pcap_header(minor=5) + pcap_record(PKT),
    "version-3.0": pcap_header(major=3, minor=0) + pcap_record(PKT),
    # lengths swapped before 2.3; 2.3 when caplen > len; DG/UX 543.0
    "version-2.2": pcap_header(minor=2) + struct.pack("<IIII", 1, 2, 100, 60) + PKT,
    "version-2.3": pcap_header(minor=3) + struct.pack("<IIII", 1, 2, 60, 40) + PKT[:40] +
    pcap_record(PKT),
    "version-543.0": pcap_header(major=543, minor=0) + struct.pack("<IIII", 1, 2, 100, 60) + PKT,
    "kuznetzov": pcap_header(magic=0xA1B2CD34) + pcap_record(PKT, extra=b"\x01\0\0\0\x08\0\0\0") +
    pcap_record(PKT, sec=2000, extra=b"\0" * 8),
    "kuznetzov-snaplen+14": pcap_header(magic=0xA1B2CD34, snaplen=50) +
    pcap_record(PKT, extra=b"\0" * 8),
    "big-endian-us": pcap_header(order=">") + pcap_record(PKT, order=">", frac=999999),
    "big-endian-ns": pcap_header(magic=0xA1B23C4D, order=">") +
    pcap_record(PKT, frac=999999999, order=">"),
    "little-endian-ns": pcap_header(magic=0xA1B23C4D) + pcap_record(PKT, frac=123456789),
    "fcs-bits-in-linktype": pcap_header(linktype=0x30000001) + pcap_record(PKT),
    "caplen-0": pcap_header() + pcap_record(b""),
    "caplen-above-wirelen": pcap_header() + pcap_record(PKT, wirelen=10),
    # pseudo-headers libpcap rewrites: byte-swapped USB / NFLOG, fixed USB iso lengths
    "usb-mmapped-le-length-fix": pcap_header(linktype=220) +
    pcap_record(_usb_mmapped("<"), wirelen=64 + 32 + 100),
    "usb-mmapped-be": pcap_header(linktype=220, order=">") +
    pcap_record(_usb_mmapped(">"), wirelen=64 + 32 + 100, order=">"),
    "usb-be": pcap_header(linktype=189, order=">") +
    pcap_record(_usb_mmapped(">", ndesc=0)[:48] + b"datadata", order=">"),
    "nflog-be": pcap_header(linktype=239, order=">") +
    pcap_record(b"\x02\x00\x00\x01" + struct.pack(">HH", 8, 1) + b"abcd" +
                struct.pack(">HH", 6, 2) + b"xy\0\0", order=">"),
}


@pytest.mark.parametrize("name", sorted(PCAP_CASES))
def test_classic_pcap_like_libpcap(tmp_path, name):
    path = tmp_path / (name + ".pcap")
    path.write_bytes(PCAP_CASES[name])
    assert_same_as_tcpdump(path)


def test_classic_pcap_header_info_and_snapped_count(tmp_path):
    path = tmp_path / "a.pcap"
    path.write_bytes(PCAP_CASES["caplen-over-snaplen"])
    recs, err, src = read_source(path)
    assert err is None and [r[1] for r in recs] == [40, 40]
    assert src.stats()["snapped"] == 2 and src.snaplen == 40
    assert src.header["version"] == "2.4" and src.header["precision"] == "us"
    path.write_bytes(pcap_header(linktype=0x00010001) + pcap_record(PKT))
    recs, err, src = read_source(path)
    # libpcap 1.10 keeps 26 bits of link type (tcpdump: "link-type 65537")
    assert src.linktype == 65537 and recs[0][5] == 65537


def test_raw_timestamps_for_the_shim(tmp_path):
    """libpcap passes out-of-range fractions through (tcpdump prints "10.1000000000"); raw_ts
    keeps sec and frac exactly as stored."""
    path = tmp_path / "a.pcap"
    path.write_bytes(pcap_header(magic=0xA1B23C4D) + pcap_record(PKT, sec=5, frac=1000000000) +
                     pcap_record(PKT, sec=0x80000001, frac=7))
    recs, err, _ = read_source(path, raw_ts=True)
    # the ts array is int64: the bits of sec << 32 | frac
    assert err is None and [r[0] for r in recs] == [(5 << 32) | 1000000000,
                                                    ((0x80000001 << 32) | 7) - (1 << 64)]
    recs, err, _ = read_source(path)
    assert [r[0] for r in recs] == [6 * 10 ** 9, 0x80000001 * 10 ** 9 + 7]


# --- pcapng -------------------------------------------------------------------------------------
NG_CASES = {
    "two-epb": ng_shb() + ng_idb() + ng_epb(PKT) + ng_epb(PKT, ts=2000000),
    "big-endian": ng_shb(">") + ng_idb(order=">") + ng_epb(PKT, order=">"),
    "version-1.2": ng_shb(minor=2) + ng_idb() + ng_epb(PKT),
    "version-1.1": ng_shb(minor=1) + ng_idb() + ng_epb(PKT),
    "version-2.0": ng_shb(major=2) + ng_idb() + ng_epb(PKT),
    "block-length-8": ng_shb() + ng_idb() + ng_epb(PKT) + struct.pack("<II", 6, 8) + b"\0" * 4,
    "block-length-33": ng_shb() + ng_idb() + ng_epb(PKT) + ng_block(6, b"\0" * 20, total=33),
    "trailer-mismatch": ng_shb() + ng_idb() + ng_epb(PKT) +
    ng_block(6, struct.pack("<IIIII", 0, 0, 0, 4, 4) + b"abcd", trailer=99),
    "block-over-16MiB": ng_shb() + ng_idb() + ng_epb(PKT) + struct.pack("<II", 6, 0x2000000) +
    b"\0" * 100,
    "epb-before-idb": ng_shb() + ng_epb(PKT) + ng_idb(),
    "unknown-interface": ng_shb() + ng_idb() + ng_epb(PKT) + ng_epb(PKT, iface=3),
    "caplen-past-block": ng_shb() + ng_idb() + ng_epb(PKT) + ng_epb(PKT, caplen=200),
    "caplen-over-snaplen": ng_shb() + ng_idb(snaplen=40) + ng_epb(PKT[:30]) + ng_epb(PKT),
    "caplen-over-262144": ng_shb() + ng_idb() + ng_epb(b"x" * 300000),
    "cut-in-block-header": ng_shb() + ng_idb() + ng_epb(PKT) + ng_epb(PKT)[:6],
    "cut-in-block": ng_shb() + ng_idb() + ng_epb(PKT) + ng_epb(PKT)[:50],
    "no-idb": ng_shb(),
    "no-idb-other-block": ng_shb() + ng_block(0xBAD, b"xx"),
    "second-section-no-idb": ng_shb() + ng_idb() + ng_epb(PKT) + ng_shb() + ng_epb(PKT),
    "second-section-v2": ng_shb() + ng_idb() + ng_epb(PKT) + ng_shb(major=2) + ng_idb() +
    ng_epb(PKT),
    "two-sections": ng_shb() + ng_idb() + ng_epb(PKT) + ng_shb() + ng_idb() + ng_epb(PKT[:20]),
    "tsresol-ns": ng_shb() + ng_idb(options=ng_option(9, b"\x09") + ng_option(0, b"")) +
    ng_epb(PKT, ts=1500000000123456789),
    "tsresol-2^-20": ng_shb() + ng_idb(options=ng_option(9, b"\x94")) +
    ng_epb(PKT, ts=(1500000000 << 20) + 123456),
    "tsresol-10^-12": ng_shb() + ng_idb(options=ng_option(9, b"\x0c")) +
    ng_epb(PKT, ts=1500000000123456789),
    "tsresol-length-2": ng_shb() + ng_idb(options=ng_option(9, b"\x09\x01")) + ng_epb(PKT),
    "tsresol-10^-20": ng_shb() + ng_idb(options=ng_option(9, b"\x14")) + ng_epb(PKT),
    "tsresol-2^-64": ng_shb() + ng_idb(options=ng_option(9, b"\xc0")) + ng_epb(PKT),
    "tsresol-twice": ng_shb() + ng_idb(options=ng_option(9, b"\x06") + ng_option(9, b"\x06")) +
    ng_epb(PKT),
    "tsoffset": ng_shb() + ng_idb(options=ng_option(14, struct.pack("<q", 100))) + ng_epb(PKT),
    "tsoffset-length-4": ng_shb() + ng_idb(options=ng_option(14, b"\0" * 4)) + ng_epb(PKT),
    "endofopt-length-4": ng_shb() + ng_idb(options=ng_option(0, b"\0" * 4)) + ng_epb(PKT),
    "option-past-block": ng_shb() + ng_idb(options=struct.pack("<HH", 2, 100) + b"abcd") +
    ng_epb(PKT),
    "spb-uses-snaplen": ng_shb() + ng_idb(snaplen=50) + ng_spb(PKT) + ng_spb(PKT[:20]),
    "spb-too-short": ng_shb() + ng_idb() + ng_spb(PKT[:20], wirelen=60),
    "obsolete-packet-block": ng_shb() + ng_idb() + ng_pb(PKT, ts=5 << 32),
    "idb-too-short": ng_shb() + ng_block(1, b"\x01\x00"),
    "shb-length-16": ng_block(0x0A0D0D0A, struct.pack("<I", 0x1A2B3C4D)),
    "shb-cut": ng_shb()[:20],
    "shb-only-8-bytes": ng_shb()[:8],
    "shb-bad-byte-order-magic": b"\x0a\x0d\x0d\x0a\x1c\0\0\0\x11\x22\x33\x44" + b"\0" * 16,
    "epb-too-short": ng_shb() + ng_idb() + ng_block(6, b"\0" * 8),
    # name resolution (end record only), statistics, unknown and custom (with a PEN) blocks
    "skipped-blocks": ng_shb() + ng_block(4, b"\0" * 4) + ng_idb() + ng_block(5, b"\0" * 12) +
    ng_block(0xBAD, b"x") + ng_epb(PKT) + ng_block(0x40000BAD, struct.pack("<I", 32473) + b"ab"),
    "snaplen-2^32-1": ng_shb() + ng_idb(snaplen=0xFFFFFFFF) + ng_epb(PKT),
    # what libpcap refuses (we read these unless libpcap_compat is set)
    "second-linktype": ng_shb() + ng_idb() + ng_epb(PKT) + ng_idb(linktype=101) +
    ng_epb(PKT, iface=1),
    "second-snaplen": ng_shb() + ng_idb() + ng_epb(PKT) + ng_idb(snaplen=100) +
    ng_epb(PKT, iface=1),
    "section-other-byte-order": ng_shb() + ng_idb() + ng_epb(PKT) + ng_shb(">") +
    ng_idb(order=">") + ng_epb(PKT, order=">"),
}


@pytest.mark.parametrize("name", sorted(NG_CASES))
def test_pcapng_like_libpcap(tmp_path, name):
    path = tmp_path / (name + ".pcapng")
    path.write_bytes(NG_CASES[name])
    assert_same_as_tcpdump(path, libpcap_compat=True)


@pytest.mark.parametrize("name", ["second-linktype", "second-snaplen", "section-other-byte-order",
                                  "two-sections", "obsolete-packet-block", "tsresol-2^-20",
                                  "tsresol-10^-12", "tsoffset", "skipped-blocks"])
def test_pcapng_like_tshark(tmp_path, name):
    """Several interfaces, link types and byte orders: the packets tshark reads, on the same
    interfaces."""
    path = tmp_path / (name + ".pcapng")
    path.write_bytes(NG_CASES[name])
    recs, err, _ = read_source(path)
    assert err is None
    ref = tshark_ref(path)
    number = ng_interface_numbers(NG_CASES[name])
    assert len(recs) == len(ref) > 0
    for (ts, cap, wire, data, ifx, _), (rifx, rts, rcap, rwire, rdata) in zip(recs, ref):
        assert (ifx, cap, wire, data) == (number[rifx], rcap, rwire, rdata)
        assert ts == rts


def test_pcapng_link_type_change_ends_a_batch(tmp_path):
    path = tmp_path / "mixed.pcapng"
    path.write_bytes(NG_CASES["second-linktype"] + ng_epb(PKT) + ng_epb(PKT, iface=1))
    recs, err, _ = read_source(path)
    assert err is None and [(r[4], r[5]) for r in recs] == [(0, 1), (1, 101), (0, 1), (1, 101)]
    count, info, _ = count_offline(path)
    assert count == 4
    assert info["batches"] == 4


def test_pcapng_spb_takes_interface_0_and_no_time(tmp_path):
    path = tmp_path / "spb.pcapng"
    path.write_bytes(ng_shb() + ng_idb(snaplen=50, options=ng_option(14, struct.pack("<q", 7))) +
                     ng_spb(PKT))
    recs, err, _ = read_source(path)
    assert err is None and recs == [(7 * 10 ** 9, 50, 60, PKT[:50], 0, 1)]


# --- ERF (no stock tool reads it: hand-computed) -----------------------------------------------
def test_erf_records_hand_computed(tmp_path):
    ip4 = bytes.fromhex("4500001c000100004011f8e6c0a80001c0a80002") + b"\0" * 8
    ip6 = bytes.fromhex("6000000000081140") + b"\0" * 15 + b"\1" + b"\0" * 15 + b"\2" + b"\0" * 8
    recs = [
        # Ethernet, fraction 2^31 = 0.5 s, interface 1, lctr 3 (a loss counter)
        erf_record(PKT, sec=1600000000, frac=1 << 31, flags=0x05, lctr=3),
        # a pad record: skipped
        erf_record(b"\0" * 20, rtype=48),
        # Ethernet with two extension headers, captured 60 of 68 (+FCS) bytes, padded record
        erf_record(PKT + b"\0" * 6, ext=(b"\x03" + b"\0" * 7, b"\x04" + b"\0" * 7), wlen=72,
                   frac=1),
        # a color Ethernet record: lctr is a color, not a loss count
        erf_record(PKT, rtype=11, lctr=9, flags=0x42),
        erf_record(ip4, rtype=22, lctr=1),
        erf_record(ip6, rtype=23),
        erf_record(b"\x0f\x00\x08\x00" + ip4, rtype=1),
        erf_record(b"\xff\x03\x00\x21" + ip4, rtype=1),
        # ATM: counted and skipped
        erf_record(b"\0" * 52, rtype=3, lctr=2),
    ]
    path = tmp_path / "t.erf"
    path.write_bytes(b"".join(recs))
    got, err, src = read_source(path)
    assert err is None
    base = 1600000000 * 10 ** 9
    assert got[0] == (base + 500000000, 60, 60, PKT, 1, 1)
    # frac 1 = 2^-32 s = 0.23 ns, rounded to 0; caplen limited by wlen - FCS = 68
    assert got[1] == (base, 66, 68, PKT + b"\0" * 6, 0, 1)
    assert got[2][4] == 6 and got[2][5] == 1              # flags 0x42: interface 4 + 2
    assert got[3][1:] == (28, 28, ip4, 0, 101)
    assert got[4][1:] == (len(ip6), len(ip6), ip6, 0, 101)
    assert got[5][5] == 104 and got[6][5] == 50           # Cisco HDLC, PPP in HDLC framing
    assert len(got) == 7
    st = src.stats()
    assert st["ps_drop"] == 3 + 1 + 2 and st["skipped"] == 2 and st["records"] == 9


def test_erf_losses_reach_device_stats(tmp_path):
    path = tmp_path / "loss.erf"
    path.write_bytes(erf_record(PKT, lctr=5) + erf_record(PKT, lctr=7))
    count, info, stats = count_offline(path)
    assert count == 2 and stats["ps_drop"] == 12
    assert info["format"] == "erf"


@pytest.mark.parametrize("data, code, where", [
    (erf_record(PKT) + erf_record(PKT, rlen=8), EFORMAT, 78),
    (erf_record(PKT) + erf_record(PKT)[:40], ETRUNC, 78),
    (erf_record(PKT) + erf_record(PKT)[:10], ETRUNC, 78),
    (erf_record(PKT) + erf_record(b"", ext=(b"\x03" * 8,), rlen=20), EFORMAT, 78),
    (erf_record(PKT) + erf_record(b"", rlen=17), EFORMAT, 78),
])
def test_erf_bad_records(tmp_path, data, code, where):
    path = tmp_path / "bad.erf"
    path.write_bytes(data)
    got, err, _ = read_source(path, fmt=mapi.MFF_DAG_ERF)
    assert len(got) == 1 and got[0][3] == PKT
    assert err.code == code and err.where["offset"] == where and "offset %d" % where in str(err)
