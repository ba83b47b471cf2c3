"""The trace generator (mapi.tracegen; tools/gentrace.py is its command line) checked against stock
tools and independent parsing."""
import math
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from mapi import tracegen as gentrace
from mapi.tracegen import GET_INDEX, SIGNATURE_PPM, SIGNATURES, USER_AGENT, TraceGenerator, write_trace

ROOT = Path(__file__).resolve().parents[1]
N = 20000
SEED = 7


def tool(name):
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin")
    if path is None:
        pytest.skip("%s is not installed (make test installs it)" % name)
    return path


def pcap_frames(path):
    """Frames of a little-endian microsecond pcap, parsed here from the format's definition."""
    data = Path(path).read_bytes()
    magic, vmaj, vmin, _, _, snap, linktype = struct.unpack_from("<IHHiIII", data, 0)
    assert (magic, vmaj, vmin, linktype) == (0xA1B2C3D4, 2, 4, 1)
    frames, off = [], 24
    while off < len(data):
        sec, usec, caplen, wirelen = struct.unpack_from("<IIII", data, off)
        assert caplen == wirelen and usec < 1000000 and off + 16 + caplen <= len(data)
        frames.append((sec * 1000000 + usec, data[off + 16:off + 16 + caplen]))
        off += 16 + caplen
    return frames


def tcpdump_count(path, expr=""):
    out = subprocess.run([tool("tcpdump"), "--count", "-r", str(path)] + ([expr] if expr else []),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    m = re.search(r"^(\d+) packets?$", out.stdout, re.M)
    assert m, out.stdout
    return int(m.group(1))


@pytest.fixture(scope="module")
def trace(tmp_path_factory):
    path = tmp_path_factory.mktemp("gentrace") / "t.pcap"
    stats = write_trace(path, N, seed=SEED)
    return path, stats


def test_same_seed_same_bytes_other_seed_other_bytes(trace, tmp_path):
    path, _ = trace
    again = tmp_path / "again.pcap"
    write_trace(again, N, seed=SEED)
    assert again.read_bytes() == path.read_bytes()
    other = tmp_path / "other.pcap"
    write_trace(other, N, seed=SEED + 1)
    assert other.read_bytes() != path.read_bytes()
    # the streamed chunks are the file
    gen = TraceGenerator(packets=N, seed=SEED)
    assert b"".join(bytes(c) for c in gen.chunks(chunk_size=1 << 16)) == path.read_bytes()


def test_tcpdump_reads_every_record_cleanly(trace):
    path, stats = trace
    out = subprocess.run([tool("tcpdump"), "-r", str(path), "-w", "-"], capture_output=True, timeout=60)
    assert out.returncode == 0
    assert out.stderr.decode().strip() == "reading from file %s, link-type EN10MB (Ethernet), snapshot " \
                                          "length 262144" % path
    assert out.stdout == path.read_bytes()        # tcpdump rewrites the identical file
    assert tcpdump_count(path) == stats.packets == N
    frames = pcap_frames(path)
    assert len(frames) == N
    assert sum(len(f) for _, f in frames) == stats.frame_bytes
    ts = [t for t, _ in frames]
    assert ts == sorted(ts)
    # Poisson arrivals at 1 Mpps: N packets span about N microseconds
    assert 0.9 * N < ts[-1] - ts[0] < 1.1 * N
    assert ts[0] // 1000000 == gentrace.START_NS // 10 ** 9


def test_protocol_mix_equals_tcpdump_counts(trace):
    path, st = trace
    assert tcpdump_count(path, "ip and tcp") == st.kinds["tcp4"]
    assert tcpdump_count(path, "ip and udp") == st.kinds["udp4"]
    assert tcpdump_count(path, "icmp") == st.kinds["icmp4"]
    assert tcpdump_count(path, "ip6 and tcp") == st.kinds["tcp6"]
    assert tcpdump_count(path, "ip6 and udp") == st.kinds["udp6"]
    assert tcpdump_count(path, "udp port 53") == st.apps["dns"]
    assert tcpdump_count(path, "ip and tcp[13] & 2 != 0") + tcpdump_count(path, "ip6 and tcp and ip6[53] & 2 != 0") \
        == st.tcp_syn
    # the documented shares (60/30/5/3/2 %), within 4 binomial standard deviations
    for kind, share in (("tcp4", .60), ("udp4", .30), ("icmp4", .05), ("tcp6", .03), ("udp6", .02)):
        assert abs(st.kinds[kind] - share * N) < 4 * math.sqrt(N * share * (1 - share)), kind
    port80 = tcpdump_count(path, "tcp port 80")
    assert 0.2 * N < port80 < 0.32 * N
    assert 530 < st.frame_bytes / N < 640          # short traces: a few more handshakes than ~595 B
    assert st.flows >= 100


def test_string_counts_equal_a_plain_byte_search(trace):
    path, st = trace
    frames = [f for _, f in pcap_frames(path)]
    for pattern in SIGNATURES:
        raw = pattern.encode()
        assert sum(raw in f for f in frames) == st.signatures[pattern], pattern
    assert sum(GET_INDEX.encode() in f for f in frames) == st.get_index > 0
    assert sum(USER_AGENT.encode() in f for f in frames) == st.user_agent > 0
    assert sum(b"attack-sig" in f for f in frames) == sum(
        v for k, v in st.signatures.items() if k.startswith("attack-sig")) > 0
    assert st.sig_packets == sum(st.signatures.values())
    # no signature is a substring of another, so byte-search counts are unambiguous
    assert not [a for a in SIGNATURES for b in SIGNATURES if a != b and a in b]


def test_signature_frequencies_match_the_documented_rates():
    n = 300000
    gen = TraceGenerator(packets=n, seed=11)
    for _ in gen.chunks():
        pass
    st = gen.stats()
    assert st.packets == n
    assert 575 < st.frame_bytes / n < 615           # documented: mean frame about 595 B
    assert st.flows > 1500
    expected_total = n * sum(SIGNATURE_PPM) / 1e6
    assert abs(st.sig_packets - expected_total) < 5 * math.sqrt(expected_total)
    for k in (0, 1, 9):
        exp = n * SIGNATURE_PPM[k] / 1e6
        assert abs(st.signatures[SIGNATURES[k]] - exp) < 5 * math.sqrt(exp) + 1, SIGNATURES[k]
    assert SIGNATURES[0] == "attack-sig-XYZ" and SIGNATURE_PPM[0] == 200
    # documented: GET /index.html about 1.3 %, User-Agent about 2.35 % of packets
    assert 0.011 < st.get_index / n < 0.0155
    assert 0.020 < st.user_agent / n < 0.027


def _fold(s):
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def _sum16(b):
    if len(b) % 2:
        b += b"\0"
    return sum(struct.unpack("!%dH" % (len(b) // 2), b))


def test_checksums_verify_independently(trace):
    """Every IPv4 header, TCP, UDP and ICMP checksum sums to 0xffff (RFC 1071), computed here."""
    path, st = trace
    checked = {"ip": 0, "tcp": 0, "udp": 0, "icmp": 0}
    for _, f in pcap_frames(path):
        etype = struct.unpack_from("!H", f, 12)[0]
        if etype == 0x0800:
            ihl = (f[14] & 15) * 4
            assert _fold(_sum16(f[14:14 + ihl])) == 0xFFFF
            checked["ip"] += 1
            total = struct.unpack_from("!H", f, 16)[0]
            proto, seg = f[23], f[14 + ihl:14 + total]
            pseudo = f[26:34] + struct.pack("!BBH", 0, proto, len(seg))
        else:
            assert etype == 0x86DD
            plen = struct.unpack_from("!H", f, 18)[0]
            proto, seg = f[20], f[54:54 + plen]
            pseudo = f[22:54] + struct.pack("!IxxxB", len(seg), proto)
        if proto == 1:
            assert _fold(_sum16(seg)) == 0xFFFF
            checked["icmp"] += 1
        else:
            name = {6: "tcp", 17: "udp"}[proto]
            assert _fold(_sum16(pseudo + seg)) == 0xFFFF, name
            checked[name] += 1
    assert checked["tcp"] == st.kinds["tcp4"] + st.kinds["tcp6"]
    assert checked["udp"] == st.kinds["udp4"] + st.kinds["udp6"]
    assert checked["icmp"] == st.kinds["icmp4"] > 0


def test_tshark_finds_no_bad_checksum(trace):
    path, st = trace
    base = [tool("tshark"), "-n", "-r", str(path), "-o", "tcp.check_checksum:TRUE",
            "-o", "udp.check_checksum:TRUE", "-o", "ip.check_checksum:TRUE"]

    def count(flt):
        out = subprocess.run(base + ["-Y", flt, "-T", "fields", "-e", "frame.number"],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        return len(out.stdout.split())
    assert count("tcp.checksum.status == 0 || udp.checksum.status == 0 || ip.checksum.status == 0 "
                 "|| icmp.checksum.status == 0") == 0
    assert count("tcp.checksum.status == 1") == st.kinds["tcp4"] + st.kinds["tcp6"]
    assert count("udp.checksum.status == 1") == st.kinds["udp4"] + st.kinds["udp6"]


def test_pcapng_erf_and_nanosecond_files_hold_the_same_packets(tmp_path):
    n = 3000
    ref = write_trace(tmp_path / "t.pcap", n, seed=3)
    write_trace(tmp_path / "t.pcapng", n, seed=3)
    write_trace(tmp_path / "t.erf", n, seed=3)
    write_trace(tmp_path / "t_ns.pcap", n, seed=3, fmt="pcap-ns")
    frames = pcap_frames(tmp_path / "t.pcap")
    # tcpdump rewrites pcapng and nanosecond pcap as microsecond pcap: the same file as ours
    for name in ("t.pcapng", "t_ns.pcap"):
        out = subprocess.run([tool("tcpdump"), "-r", str(tmp_path / name), "-w", "-"], capture_output=True,
                             timeout=60)
        assert out.returncode == 0, out.stderr
        (tmp_path / "back.pcap").write_bytes(out.stdout)
        assert pcap_frames(tmp_path / "back.pcap") == frames, name
    # ERF: 16-byte header (LE fixed-point ts, type 2, BE rlen/lctr/wlen), 2-byte pad, frame
    data = (tmp_path / "t.erf").read_bytes()
    off, got = 0, []
    while off < len(data):
        ts, rtype, flags, rlen, lctr, wlen = struct.unpack_from("<QBB", data, off) + \
            struct.unpack_from(">HHH", data, off + 10)
        assert (rtype, lctr) == (2, 0) and rlen >= 18
        frame = data[off + 18:off + rlen]
        assert wlen == len(frame) + 4
        got.append((((ts >> 32) * 10 ** 6 + ((ts & 0xFFFFFFFF) * 10 ** 6 >> 32)), frame))
        off += rlen
    assert [f for _, f in got] == [f for _, f in frames]
    assert all(abs(a - b) <= 1 for (a, _), (b, _) in zip(got, frames))
    capinfos = shutil.which("capinfos")
    if capinfos:
        out = subprocess.run([capinfos, "-c", str(tmp_path / "t.erf")], capture_output=True, text=True)
        assert re.search(r"Number of packets:\s+%d\b" % n, out.stdout), out.stdout + out.stderr
    assert ref.packets == n


def test_byte_limit_and_cli(tmp_path):
    out = tmp_path / "cli.pcap"
    res = subprocess.run([sys.executable, str(ROOT / "tools" / "gentrace.py"), "--bytes", "500K", "-s", "5",
                          "-o", str(out), "--stats", str(tmp_path / "s.json")], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    size = out.stat().st_size
    assert 500000 - 1600 < size <= 500000
    assert tcpdump_count(out) == len(pcap_frames(out))
    import json
    st = json.loads((tmp_path / "s.json").read_text())
    assert st["file_bytes"] == size and st["packets"] == len(pcap_frames(out))
    bad = subprocess.run([sys.executable, str(ROOT / "tools" / "gentrace.py"), "--packets", "lots",
                          "-o", str(tmp_path / "x.pcap")], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "not a size: 'lots'" in bad.stderr
    with pytest.raises(ValueError, match="unknown format"):
        write_trace(tmp_path / "y.pcap", 10, fmt="snoop")
    assert not (tmp_path / "y.pcap").exists() and not (tmp_path / "y.pcap.part").exists()


def test_tools_wrapper_and_module_write_the_same_bytes(tmp_path):
    # tools/gentrace.py (developers, bench) and python -m mapi.tracegen are one generator
    outs = []
    for cmd in ([str(ROOT / "tools" / "gentrace.py")], ["-m", "mapi.tracegen"]):
        out = tmp_path / ("%d.pcapng" % len(outs))
        res = subprocess.run([sys.executable] + cmd + ["-n", "3000", "-s", "9", "-o", str(out), "-q"],
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr
        outs.append(out.read_bytes())
    write_trace(tmp_path / "api.pcapng", 3000, seed=9)
    assert outs[0] == outs[1] == (tmp_path / "api.pcapng").read_bytes()
    sys.path.insert(0, str(ROOT))
    try:
        from tools import gentrace as wrapper
    finally:
        sys.path.remove(str(ROOT))
    assert all(getattr(wrapper, name) is getattr(gentrace, name) for name in gentrace.__all__)


def test_installed_c_module_is_built_from_these_sources():
    # setup.py builds mapi.tracegen._gentrace with the engine: no compiler run at first use
    from mapi.tracegen import _native
    mod = _native._installed()
    assert mod is not None and mod.__name__ == "mapi.tracegen._gentrace"
    assert _native.load()[1] is mod.lib
