"""ANONYMIZE: Crypto-PAn against the reference distribution's sample (key and address pairs),
prefix preservation on random pairs, and anonymised traces checked with tshark (addresses,
checksums, lengths)."""
import ipaddress
import random
import subprocess

import pytest

import mapi
from helpers import CORPUS, generated, inputs, need_tool, replay
from scampi.plugins.stdfuncs.anonymize import Anonymize
from helpers.pktbuild import assert_rejected

PCAP = CORPUS / "pcap"
# The key of the sample in the original Crypto-PAn source distribution
SAMPLE_KEY = bytes([21, 34, 23, 141, 51, 164, 207, 128, 19, 10, 91, 22, 73, 144, 125, 16, 216, 152,
                    143, 131, 121, 121, 101, 39, 98, 87, 76, 45, 42, 132, 34, 2]).hex()
# Address pairs of its sample_trace_raw.dat / sample_trace_sanitized.dat
V4_VECTORS = """128.11.68.132 135.242.180.132 129.118.74.4 134.136.186.123 130.132.252.244 133.68.164.234
141.223.7.43 141.167.8.160 141.233.145.108 141.129.237.235 152.163.225.39 151.140.114.167
156.29.3.236 147.225.12.42 165.247.96.84 162.9.99.234 166.107.77.190 160.132.178.185
192.102.249.13 252.138.62.131 192.215.32.125 252.43.47.189 192.233.80.103 252.25.108.8
192.41.57.43 252.222.221.184 193.150.244.223 253.169.52.216 195.205.63.100 255.186.223.5
198.200.171.101 249.199.68.213 198.26.132.101 249.36.123.202 198.36.213.5 249.7.21.132
198.51.77.238 249.18.186.254 199.217.79.101 248.38.184.213 202.49.198.20 245.206.7.234
203.12.160.252 244.248.163.4 204.184.162.189 243.192.77.90 204.202.136.230 243.178.4.198
204.29.20.4 243.33.20.123 205.178.38.67 242.108.198.51 205.188.147.153 242.96.16.101
205.188.248.25 242.96.88.27 205.245.121.43 242.21.121.163 207.105.49.5 241.118.205.138
207.135.65.238 241.202.129.222 207.155.9.214 241.220.250.22 207.188.7.45 241.255.249.220
207.25.71.27 241.33.119.156 207.33.151.131 241.1.233.131 208.147.89.59 227.237.98.191
208.234.120.210 227.154.67.17 208.28.185.184 227.39.94.90 208.52.56.122 227.8.63.165
209.12.231.7 226.243.167.8 209.238.72.3 226.6.119.243 209.246.74.109 226.22.124.76
209.68.60.238 226.184.220.233 209.85.249.6 226.170.70.6 212.120.124.31 228.135.163.231
212.146.8.236 228.19.4.234 212.186.227.154 228.59.98.98 212.204.172.118 228.71.195.169
212.206.130.201 228.69.242.193 216.148.237.145 235.84.194.111 216.157.30.252 235.89.31.26
216.184.159.48 235.96.225.78 216.227.10.221 235.28.253.36 216.254.18.172 235.7.16.162
216.32.132.250 235.192.139.38 216.35.217.178 235.195.157.81 24.0.250.221 100.15.198.226
24.13.62.231 100.2.192.247 24.14.213.138 100.1.42.141 24.5.0.80 100.9.15.210
24.7.198.88 100.10.6.25 24.94.26.44 100.88.228.35 38.15.67.68 64.3.66.187
4.3.88.225 124.60.155.63 63.14.55.111 95.9.215.7 63.195.241.44 95.179.238.44
63.97.7.140 95.97.9.123 64.14.118.196 0.255.183.58 64.34.154.117 0.221.154.117
64.39.15.238 0.219.7.41""".split()
# The reference has no IPv6; these are the IPv6 results with the same key of an independent
# implementation (Yawning Angel's Go cryptopan package, its tests)
V6_VECTORS = ["::1", "78ff:f001:9fc0:20df:8380:b1f1:704:ed", "::2", "78ff:f001:9fc0:20df:8380:b1f1:704:ef",
              "::ffff", "78ff:f001:9fc0:20df:8380:b1f1:704:f838",
              "2001:db8::1", "4401:2bc:603f:d91d:27f:ff8e:e6f1:dc1e",
              "2001:db8::2", "4401:2bc:603f:d91d:27f:ff8e:e6f1:dc1c"]


def anon(key=SAMPLE_KEY):
    return Anonymize(key, "cryptopan", "keep", -1)


def pan(a, text):
    ip = ipaddress.ip_address(text)
    return ipaddress.ip_address(a.address(ip.packed))


def test_reference_vectors_ipv4():
    a = anon()
    pairs = list(zip(V4_VECTORS[::2], V4_VECTORS[1::2]))
    assert len(pairs) == 70
    assert [str(pan(a, x)) for x, _ in pairs] == [y for _, y in pairs]


def test_vectors_ipv6():
    a = anon()
    pairs = list(zip(V6_VECTORS[::2], V6_VECTORS[1::2]))
    assert [pan(a, x) for x, _ in pairs] == [ipaddress.ip_address(y) for _, y in pairs]


def common_prefix(x, y, bits):
    d = x ^ y
    return bits if d == 0 else bits - d.bit_length()


@pytest.mark.parametrize("bits", [32, 128])
def test_prefix_preservation_on_random_pairs(bits):
    a = anon(bytes(random.Random(bits).randrange(256) for _ in range(32)).hex())
    rng = random.Random(7)
    seen = {}
    for _ in range(3000):
        x = rng.getrandbits(bits)
        y = x ^ (rng.getrandbits(bits) >> rng.randrange(bits))     # pairs with long prefixes too
        ax, ay = (int(pan(a, str(ipaddress.ip_address(v)))) for v in (x, y))
        assert common_prefix(ax, ay, bits) == common_prefix(x, y, bits)
        seen[x] = ax
    assert len(set(seen.values())) == len(seen)                 # one-to-one


def tshark_fields(path, *fields):
    out = subprocess.run([need_tool("tshark"), "-r", str(path), "-o", "ip.check_checksum:TRUE",
                          "-o", "tcp.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE",
                          "-T", "fields", "-E", "separator=|"] + [a for f in fields for a in ("-e", f)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return [line.split("|") for line in out.stdout.splitlines()]


FIELDS = ("ip.src", "ip.dst", "ipv6.src", "ipv6.dst", "ip.checksum.status", "tcp.checksum.status",
          "udp.checksum.status", "frame.len", "frame.cap_len", "eth.src", "tcp.payload")


@pytest.mark.parametrize("path", inputs([generated("mixed.pcap"), generated("fragments.pcap"),
                                          "PcapPlusPlus__example.pcap", "PcapPlusPlus__tls2.pcap"],
                                         base="pcap"))
def test_anonymised_trace_keeps_checksums_and_maps_addresses(path, tmp_path):
    out = tmp_path / "anon.pcap"
    r = replay(path, [("ANONYMIZE", (SAMPLE_KEY,), {}), ("TO_FILE", (mapi.MFF_PCAP, str(out)), {})],
               buffer=False)
    before, after = tshark_fields(path, *FIELDS), tshark_fields(out, *FIELDS)
    assert len(before) == len(after) == r.results[1].value["packets"]
    a = anon()
    changed = 0
    for b, x in zip(before, after):
        for k in range(4):                            # every address is its Crypto-PAn image
            assert x[k] == (str(pan(a, b[k])) if b[k] else ""), (b, x)
        assert x[4:] == b[4:], (b, x)                 # checksum verdicts, lengths, MACs, payload
        changed += b[0] != x[0] or b[2] != x[2]
    assert changed == len(before)
    assert sum(1 for b in before if b[5] == "1") > 0  # good TCP checksums were there to keep


def test_mac_zero_and_payload_removal(tmp_path):
    path = generated("mixed.pcap")
    out = tmp_path / "cut.pcap"
    replay(path, [("ANONYMIZE", (SAMPLE_KEY,), dict(mac="zero", payload=4)),
                  ("TO_FILE", (mapi.MFF_PCAP, str(out)), {})], buffer=False)
    before = tshark_fields(path, "frame.len", "tcp.hdr_len", "ip.hdr_len", "tcp.len", "udp.length")
    after = tshark_fields(out, "frame.len", "frame.cap_len", "eth.src", "eth.dst", "tcp.payload")
    assert len(before) == len(after) > 4000
    for b, x in zip(before, after):
        assert x[0] == b[0]                                          # wire length kept
        assert x[2] == x[3] == "00:00:00:00:00:00"
        ipl = int(b[2]) if b[2] else 40                              # (IPv6: no extensions here)
        if b[1]:                                                     # TCP: headers + 4 bytes
            want = 14 + ipl + int(b[1]) + min(4, int(b[3]))
            assert int(x[1]) == min(want, int(b[0])), (b, x)
        elif b[4]:                                                   # UDP: 8-byte header + 4
            assert int(x[1]) == 14 + ipl + 8 + min(4, int(b[4]) - 8)


def test_filters_after_anonymize_see_the_new_addresses():
    path = generated("mixed.pcap")
    host = tshark_fields(path, "ip.dst")[0][0]
    r = replay(path, [("ANONYMIZE", (SAMPLE_KEY,), {}), ("BPF_FILTER", ("host %s" % pan(anon(), host),), {}),
                      ("PKT_COUNTER", (), {})], buffer=False)
    plain = replay(path, [("BPF_FILTER", ("host %s" % host,), {}), ("PKT_COUNTER", (), {})],
                   buffer=False)
    assert r.results[2].value == plain.results[1].value > 0


def test_bad_arguments():
    assert_rejected(generated("mixed.pcap"), "ANONYMIZE",
                    [(("short",), {}, "32 bytes"), ((SAMPLE_KEY,), dict(mac="scramble"), "mac"),
                     ((SAMPLE_KEY,), dict(payload=-2), "payload")])
