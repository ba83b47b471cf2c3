"""TO_FILE: pcap output byte-identical to `tcpdump -r IN EXPR -w OUT`; ERF output equal to
libtrace's conversion and readable back by libtrace."""
import os
import shutil
import struct
import subprocess

import pytest

import mapi
from helpers import CORPUS, generated, inputs, need_tool, needs_corpus, sample

PCAP = CORPUS / "pcap"
TCPD = CORPUS / "tcpdump" / "pcap"
MIXED, SLOW = generated("mixed.pcap"), generated("slow.pcap")


def tcpdump_write(src, expr, out, count=None):
    cmd = [need_tool("tcpdump"), "-r", str(src), "-w", str(out)]
    if count:
        cmd += ["-c", str(count)]
    if expr:
        cmd.append(expr)
    r = subprocess.run(cmd, capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    return open(out, "rb").read()


def mapi_write(src, expr, out, fmt=mapi.MFF_PCAP, count=0, close_early=False):
    dev = mapi.create_offline_device(str(src))
    try:
        fd = mapi.create_flow(dev)
        if expr:
            mapi.apply_function(fd, "BPF_FILTER", expr)
        fid = mapi.apply_function(fd, "TO_FILE", fmt, str(out), count)
        cnt = mapi.apply_function(fd, "PKT_COUNTER")
        mapi.connect(fd)
        if close_early:
            res = mapi.read_results(fd, fid).value
            mapi.close_flow(fd)
            return res, None
        mapi.start_offline_device(dev)
        mapi.wait_offline_device(dev)
        res = mapi.read_results(fd, fid).value
        passed = mapi.read_results(fd, cnt).value
        mapi.close_flow(fd)
        return res, passed
    finally:
        mapi.delete_offline_device(dev)


def pcap_records(blob):
    out, pos = [], 24
    while pos + 16 <= len(blob):
        caplen = struct.unpack_from("<I", blob, pos + 8)[0]
        out.append(blob[pos:pos + 16 + caplen])
        pos += 16 + caplen
    assert pos == len(blob)
    return out


CASES = inputs([
    (SLOW, ""),
    (SLOW, "tcp port 80 and tcp[tcpflags] & tcp-push != 0"),
    (MIXED, "udp"),
    (MIXED, "tcp and greater 500"),
    (MIXED, "ip6"),
    (generated("mixed-ns.pcap"), ""),                         # ns input: µs output
    (PCAP / "PcapPlusPlus__4KHttpRequests.pcap", ""),
    (PCAP / "PcapPlusPlus__4KHttpRequests.pcap", "tcp port 80 and tcp[tcpflags] & tcp-push != 0"),
    (PCAP / "PcapPlusPlus__example.pcap", "udp"),
    (PCAP / "PcapPlusPlus__example.pcap", "tcp and greater 500"),
    (PCAP / "PcapPlusPlus__tls2.pcap", "ip6"),
    (PCAP / "libtrace__100_packetsns.pcap", ""),              # ns input: µs output
    (PCAP / "libtrace__100_sll.pcap", ""),                    # Linux cooked
    (PCAP / "PcapPlusPlus__raw_ip.pcap", "udp"),
    (PCAP / "PcapPlusPlus__null_loopback.pcap", ""),
    (PCAP / "libpcap__brcm-tag-stp.pcap", ""),                # big-endian input
    (TCPD / "pptp.pcap", ""),                                 # big-endian input
    (TCPD / "tcp-handshake-nano.pcap", "tcp"),
    (TCPD / "dccp_options-oobr.pcap", ""),                    # caplen > snaplen; thiszone != 0
    (TCPD / "q933-heapoverflow-2.pcap", ""),                  # snaplen 9
    (TCPD / "aarp-heapoverflow-1.pcap", ""),                  # FCS bits in the link type
    (TCPD / "lisp_invalid_length.pcap", ""),                  # negative snaplen
    (TCPD / "quic_retry.pcap", ""),                           # snaplen 524288
])


@pytest.mark.parametrize("src, expr", CASES, ids=lambda v: getattr(v, "name", v))
def test_pcap_output_equals_tcpdump_w(tmp_path, src, expr):
    want = tcpdump_write(src, expr, tmp_path / "tcpdump.pcap")
    res, passed = mapi_write(src, expr, tmp_path / "mapi.pcap")
    got = open(tmp_path / "mapi.pcap", "rb").read()
    assert got[:24] == want[:24]                            # header: snaplen, link type, ...
    assert pcap_records(got) == pcap_records(want)          # record for record
    assert got == want
    assert res["packets"] == passed == len(pcap_records(want))
    assert res["bytes"] == len(want) and res["complete"] and res["error"] is None


@pytest.mark.parametrize("src", inputs([SLOW, PCAP / "PcapPlusPlus__4KHttpRequests.pcap"]))
@pytest.mark.parametrize("count", [1, 10, 384, 385, 1000])
def test_count_limit_equals_tcpdump_c(tmp_path, count, src):
    want = tcpdump_write(src, "tcp", tmp_path / "t.pcap", count)
    res, passed = mapi_write(src, "tcp", tmp_path / "m.pcap", count=count)
    assert open(tmp_path / "m.pcap", "rb").read() == want
    assert res["packets"] == min(count, passed)
    assert res["complete"]


def test_large_multi_batch_file(tmp_path):
    """~11 MB of records: several batches and several buffer flushes."""
    src_recs = open(generated("mixed-6k.pcap"), "rb").read()
    big = tmp_path / "big.pcap"
    with open(big, "wb") as f:
        f.write(src_recs)
        body = src_recs[24:]
        for k in (1, 2):                       # same records again, later in time
            pos = 0
            while pos < len(body):
                sec, usec, caplen, wl = struct.unpack_from("<IIII", body, pos)
                f.write(struct.pack("<IIII", sec + k * 100000, usec, caplen, wl))
                f.write(body[pos + 16:pos + 16 + caplen])
                pos += 16 + caplen
    want = tcpdump_write(big, "tcp or udp", tmp_path / "t.pcap")
    res, _ = mapi_write(big, "tcp or udp", tmp_path / "m.pcap")
    assert res["bytes"] > 2 * (4 << 20)
    assert open(tmp_path / "m.pcap", "rb").read() == want


def test_closing_the_flow_completes_the_file(tmp_path):
    src = SLOW
    res, _ = mapi_write(src, "", tmp_path / "m.pcap", close_early=True)
    blob = open(tmp_path / "m.pcap", "rb").read()
    assert len(blob) == 24 and blob[:4] == b"\xd4\xc3\xb2\xa1"


def erf_records(blob):
    out, pos = [], 0
    while pos < len(blob):
        ts, = struct.unpack_from("<Q", blob, pos)
        typ, flags = blob[pos + 8], blob[pos + 9]
        rlen, lctr, wlen = struct.unpack_from(">HHH", blob, pos + 10)
        pad = 2 if typ == 2 else 0
        out.append(dict(ts=ts, type=typ, flags=flags, rlen=rlen, lctr=lctr, wlen=wlen,
                        pad=blob[pos + 16:pos + 16 + pad], data=blob[pos + 16 + pad:pos + rlen]))
        pos += rlen
    assert pos == len(blob)
    return out


@needs_corpus
def test_erf_equals_libtrace_conversion_of_the_same_pcap(tmp_path):
    """derived/tls2.derived.erf is traceconvert's ERF of PcapPlusPlus__tls2.pcap."""
    res, _ = mapi_write(PCAP / "PcapPlusPlus__tls2.pcap", "", tmp_path / "m.erf", mapi.MFF_DAG_ERF)
    got = erf_records(open(tmp_path / "m.erf", "rb").read())
    want = erf_records(open(CORPUS / "derived" / "tls2.derived.erf", "rb").read())
    assert len(got) == len(want) == res["packets"] == 7451
    for g, w in zip(got, want):
        # libtrace leaves the pad bytes uninitialised and sets other flags; all else must agree
        assert (g["ts"], g["type"], g["rlen"], g["lctr"], g["wlen"], g["data"]) == \
               (w["ts"], w["type"], w["rlen"], w["lctr"], w["wlen"], w["data"])
        assert g["pad"] == b"\x00\x00" and g["flags"] & 0x04


def libtrace_to_pcap(erf, out):
    tool = shutil.which("traceconvert")
    if tool is None:
        pytest.skip("traceconvert (libtrace-tools) is not installed")
    r = subprocess.run([tool, "erf:%s" % erf, "pcapfile:%s" % out], capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    import dpkt
    import gzip
    with gzip.open(out, "rb") as f:             # traceconvert compresses pcapfile: output
        return [(round(ts * 1e6), data) for ts, data in dpkt.pcap.Reader(f)]


@pytest.mark.parametrize("src, expr", inputs([(MIXED, "tcp"), (PCAP / "PcapPlusPlus__example.pcap", "tcp"),
                                              (PCAP / "PcapPlusPlus__raw_ip.pcap", ""),
                                              (PCAP / "PcapPlusPlus__linktype_ipv6.pcap", "")]),
                         ids=lambda v: getattr(v, "name", v))
def test_erf_reads_back_through_libtrace(tmp_path, src, expr):
    import dpkt
    want_blob = tcpdump_write(src, expr, tmp_path / "t.pcap")
    want = [(round(ts * 1e6), data) for ts, data in dpkt.pcap.Reader(open(tmp_path / "t.pcap", "rb"))]
    res, _ = mapi_write(src, expr, tmp_path / "m.erf", mapi.MFF_DAG_ERF)
    assert res["packets"] == len(want) > 0 and res["skipped"] == 0
    back = libtrace_to_pcap(tmp_path / "m.erf", tmp_path / "back.pcap")
    assert [d for _, d in back] == [d for _, d in want]
    assert all(abs(a - b) <= 1 for (a, _), (b, _) in zip(back, want))   # libtrace rounds to µs
    types = {r["type"] for r in erf_records(open(tmp_path / "m.erf", "rb").read())}
    assert types <= {2, 22, 23}
    assert want_blob


def error_of(src, *args):
    dev = mapi.create_offline_device(str(src))
    try:
        fd = mapi.create_flow(dev)
        with pytest.raises(mapi.MapiError) as e:
            mapi.apply_function(fd, "TO_FILE", *args)
        return e.value
    finally:
        mapi.delete_offline_device(dev)


def test_bad_arguments(tmp_path):
    src = SLOW
    e = error_of(src, mapi.MFF_PCAPNG, str(tmp_path / "x"))
    assert e.code == 1020 and e.where["argument"] == "fmt"
    e = error_of(src, "csv", str(tmp_path / "x"))
    assert e.code == 1005 and e.where["argument"] == "fmt"
    e = error_of(src, mapi.MFF_PCAP, str(tmp_path / "no" / "such" / "dir" / "x.pcap"))
    assert e.code == 1010 and "does not exist" in str(e)
    e = error_of(src, mapi.MFF_PCAP, str(tmp_path))
    assert e.code == 1010 and "directory" in str(e)
    e = error_of(src, mapi.MFF_PCAP, str(tmp_path / "x"), -1)
    assert e.where["argument"] == "count"
    e = error_of(sample("tcpdump/pcap/q933-heapoverflow-2.pcap"), mapi.MFF_DAG_ERF, str(tmp_path / "x.erf"))
    assert e.code == 1020 and "link type 107" in str(e)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_write_error_is_reported_not_ignored():
    src = SLOW
    dev = mapi.create_offline_device(str(src))
    try:
        fd = mapi.create_flow(dev)
        fid = mapi.apply_function(fd, "TO_FILE", mapi.MFF_PCAP, "/dev/full")
        mapi.connect(fd)
        mapi.start_offline_device(dev)
        with pytest.raises(mapi.MapiError) as e:
            mapi.wait_offline_device(dev)
        assert "/dev/full" in str(e.value) and "No space" in str(e.value)
        assert mapi.read_results(fd, fid).value["error"] is not None
    finally:
        mapi.delete_offline_device(dev)
