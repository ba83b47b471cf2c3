"""REGEXP against Python's re on the bytes of the frames tcpdump -w - gives."""
import re
import struct

import pytest

from helpers import (CORPUS_EXAMPLE, CORPUS_HTTP, CORPUS_TLS,
                     generated, inputs, replay, sample, tcpdump_records, apply_error)

HTTP, EXAMPLE, TLS = CORPUS_HTTP, CORPUS_EXAMPLE, CORPUS_TLS
DNS = sample("pcap/PcapPlusPlus__DnsPackets.pcap")
MIXED, SLOW = generated("mixed.pcap"), generated("slow.pcap")


def run_flow(path, funcs, timeout=None):
    r = replay(path, [(name, args, {}) for name, *args in funcs], timeout=timeout)
    return [x.value for x in r.results], r.infos, [bytes(p.data) for p in r.packets]


def frames(path):
    recs, err = tcpdump_records(path)
    assert recs is not None, err
    return [data for _, _, data in recs]


@pytest.mark.parametrize("path, pattern", inputs([
    (SLOW, r"GET /[^ ]*\.(gif|jpg|png|css|js|html)"),
    (SLOW, r"Host: [a-z0-9.]+\.com"),
    (SLOW, r"HTTP/1\.[01] [23]\d\d"),
    (MIXED, r"(?i)user-agent: mozilla"),
    (MIXED, r"\r\n\r\n$"),
    (MIXED, r"www\.example[0-9]{3}\.com"),
    (MIXED, r"(?s)\xff\xff.{2}\x00"),
    (MIXED, r"\x03www[\x08-\x0a]example[0-9]+\x03com\x00"),
    (HTTP, r"GET /[^ ]*\.(gif|jpg|png|css|js)"),
    (HTTP, r"Host: [a-z0-9.]+\.com"),
    (HTTP, r"HTTP/1\.[01] [23]\d\d"),
    (HTTP, r"(?i)content-type: text/html"),
    (HTTP, r"\r\n\r\n$"),
    (TLS, r"\x16\x03[\x00-\x03]..\x01"),
    (TLS, r"^\x00\x0c\x29"),
    (EXAMPLE, r"[0-9]{4}-[0-9]{2}"),
    (EXAMPLE, r"(?s)\xff\xff.{2}\x00"),
    (DNS, r"\x03www\x06google\x03com\x00"),
    (DNS, r"nothing like this here"),
]))
def test_counts_and_packets_equal_python_re(path, pattern):
    fr = frames(path)
    want = [f for f in fr if re.search(pattern.encode("latin-1"), f)]
    (res,), (info,), got = run_flow(path, [("REGEXP", pattern)])
    assert res == len(want)
    assert got == want
    assert info["seen"] == len(fr) and info["match_errors"] == 0
    assert info["jit"]


@pytest.mark.parametrize("path", inputs([SLOW, HTTP]))
def test_after_a_filter(path):
    recs, _ = tcpdump_records(path, "tcp dst port 80")
    want = sum(1 for _, _, f in recs if re.search(rb"User-Agent: [^\r]*Firefox", f))
    (_, res), _, _ = run_flow(path, [("BPF_FILTER", "tcp dst port 80"),
                                     ("REGEXP", r"User-Agent: [^\r]*Firefox")])
    assert res == want > 0


def test_pathological_backtracking_drops_the_packet_and_counts(tmp_path):
    path = tmp_path / "aaa.pcap"
    frame = b"\x00" * 12 + b"\x08\x00" + b"a" * 4000 + b"!"
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i in range(3):
            f.write(struct.pack("<IIII", 1000 + i, 0, len(frame), len(frame)) + frame)
    (res,), (info,), _ = run_flow(path, [("REGEXP", r"(a+)+$")], timeout=120)
    assert res == 0
    assert info["match_errors"] == 3


@pytest.mark.parametrize("pattern, where", [("a(b", 3), ("[z-a]", 3), ("(?<=a+)b", None)])
def test_invalid_patterns_name_the_position(pattern, where):
    err = apply_error(SLOW, "REGEXP", pattern)
    assert err.code == 1005 and err.where["argument"] == "pcre"
    if where is not None:
        assert err.where["offset"] == where
        assert "at byte %d" % where in str(err)


def test_non_byte_character_is_rejected():
    err = apply_error(SLOW, "REGEXP", "caf\u00e9\u20ac")
    assert "position 4" in str(err)
