#!/usr/bin/env python3
"""Deterministic generator of realistic mixed packet traces, streamed to disk.

    python tools/gentrace.py --packets 10000000 --seed 1 -o traces/big.pcap
    python tools/gentrace.py --bytes 1G --format pcapng -o traces/1g.pcapng --stats -

    from tools.gentrace import write_trace, SIGNATURES
    stats = write_trace("t.pcap", packets=20000, seed=7)

Same seed and arguments give a byte-identical file.  Memory stays bounded (one 8 MiB buffer) whatever
the size.  The packets are built in C (tools/csrc/gentrace.c, compiled with cffi at first use).

The trace (defaults)
  * Classic pcap, microsecond timestamps, little endian, linktype Ethernet, snaplen 262144; optionally
    nanosecond pcap, pcapng (SHB + one IDB + EPBs) or ERF (type 2 Ethernet records, 2-byte pad,
    64-bit fixed-point timestamps, wlen counting a 4-byte FCS as DAG cards and libtrace do).
  * Packet share by kind: 60 % IPv4 TCP, 30 % IPv4 UDP, 5 % ICMP echo, 3 % IPv6 TCP, 2 % IPv6 UDP.
    TCP servers: port 80 (43 % of TCP flows), 443 (32 %), 22 (8 %), random (17 %); every TCP flow
    opens with SYN / SYN-ACK / ACK (MSS option) and closes with FIN / FIN-ACK / ACK (5 % with a RST);
    sequence and acknowledgement numbers are consistent.  Port 80 carries HTTP/1.1 requests
    (half of them `GET /index.html`, 90 % with a `User-Agent` header) and text responses; other TCP
    carries random bytes (payloads 0-1460 B, MSS 1440 on IPv6).  UDP: DNS on 53 (A/AAAA queries and
    answers), NTP on 123, random ports with random payloads.  Frames under 60 bytes are zero-padded.
  * Correct IPv4 header, TCP, UDP (IPv4 and IPv6) and ICMP checksums.
  * Poisson arrivals (default 1 Mpps) from 2024-01-01T00:00:00Z.  Mean frame about 595 bytes.
  * Flow table: about packets/100 active two-way flows (64 to 4,000), each living an exponential
    number of packets (mean packets/active), replaced when it ends, picked with a skew so that there
    are top talkers: about 2 x active flows over the whole trace (~8,000 at 1 M packets or more).

Signatures
  SIGNATURES holds 100 literal strings: ten families (SIGNATURE_FAMILIES) times ten codes
  (SIGNATURE_CODES), SIGNATURES[10*i + j] = FAMILY[i] + "-" + CODE[j]; SIGNATURES[0] is
  "attack-sig-XYZ".  Signature k is planted in 200/(k+1) packets per million on average
  (SIGNATURE_PPM[k]; 1,037 ppm in all, "attack-sig" 586 ppm), at a random offset of the payload of
  the next TCP/UDP packet with room for it; a packet carries at most one signature, and no
  signature is a substring of another, so a plain byte search of the frames for signature k finds
  exactly stats.signatures[k] packets.  stats.get_index and stats.user_agent count the packets
  holding "GET /index.html" and "User-Agent" (about 1.3 % and 2.35 % of packets).
"""
import argparse
import json
import os
import re
import sys
import time
from dataclasses import asdict, dataclass, field

if __package__:
    from . import _gentrace_build
else:                                   # run as a script: tools/ is on sys.path
    import _gentrace_build

FORMATS = {"pcap": 0, "pcap-ns": 1, "pcapng": 2, "erf": 3}
KINDS = ("tcp4", "udp4", "icmp4", "tcp6", "udp6")
APPS = ("http", "https", "ssh", "tcp_other", "dns", "ntp", "udp_other", "icmp_echo")
DEFAULT_MIX = {"tcp4": 600, "udp4": 300, "icmp4": 50, "tcp6": 30, "udp6": 20}
START_NS = 1704067200 * 10 ** 9           # 2024-01-01T00:00:00Z

SIGNATURE_FAMILIES = ("attack-sig", "malware-beacon", "exploit-kit", "botnet-cmd", "shellcode-x86",
                      "sqli-probe", "xss-vector", "c2-checkin", "worm-spread", "trojan-drop")
SIGNATURE_CODES = ("XYZ", "K7", "Q19", "M204", "Z3b9", "P55d2", "H0a", "T7f31c", "R2", "W909e")
SIGNATURES = tuple("%s-%s" % (fam, code) for fam in SIGNATURE_FAMILIES for code in SIGNATURE_CODES)
SIGNATURE_PPM = tuple(200.0 / (k + 1) for k in range(len(SIGNATURES)))
GET_INDEX = "GET /index.html"
USER_AGENT = "User-Agent"

CHUNK = 8 << 20
_lib_cache = []


def _engine():
    if not _lib_cache:
        _lib_cache.append(_gentrace_build.load())
    return _lib_cache[0]


@dataclass
class TraceStats:
    """What the generator wrote; the counts are exact."""
    packets: int = 0
    frame_bytes: int = 0
    file_bytes: int = 0
    kinds: dict = field(default_factory=dict)
    apps: dict = field(default_factory=dict)
    flows: int = 0
    tcp_syn: int = 0
    tcp_fin: int = 0
    tcp_rst: int = 0
    get_index: int = 0
    user_agent: int = 0
    sig_packets: int = 0
    signatures: dict = field(default_factory=dict)      # pattern -> packets holding it
    last_ts_ns: int = 0
    seconds: float = 0.0

    def to_dict(self):
        return asdict(self)


def parse_size(text):
    """'10M' -> 10_000_000, '6G' -> 6_000_000_000 (decimal), '512Ki' -> 524288; plain integers too."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)(i?)[bB]?\s*", str(text))
    if not m:
        raise ValueError("not a size: %r (examples: 20000, 10M, 6G, 512Ki)" % (text,))
    base = 1024 if m.group(3) else 1000
    power = " kmgt".index(m.group(2).lower() or " ")
    return int(float(m.group(1)) * base ** power)


def _size_arg(text):
    try:
        return parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e))


class TraceGenerator:
    """Yields the trace as consecutive byte chunks (the file header first); see write_trace."""

    def __init__(self, packets=None, max_bytes=None, seed=1, fmt="pcap", rate=1e6, flows=0,
                 mix=None, start_ns=START_NS, signatures=None):
        if packets is None and max_bytes is None:
            raise ValueError("give packets= or max_bytes=")
        if packets is not None and (not isinstance(packets, int) or packets < 0):
            raise ValueError("packets must be a non-negative integer, got %r" % (packets,))
        if max_bytes is not None and (not isinstance(max_bytes, int) or max_bytes < 0):
            raise ValueError("max_bytes must be a non-negative integer, got %r" % (max_bytes,))
        if fmt not in FORMATS:
            raise ValueError("unknown format %r (choose from %s)" % (fmt, ", ".join(FORMATS)))
        if not rate > 0:
            raise ValueError("rate must be positive, got %r" % (rate,))
        mix = dict(DEFAULT_MIX if mix is None else mix)
        unknown = set(mix) - set(KINDS)
        if unknown or not any(mix.values()) or any(v < 0 for v in mix.values()):
            raise ValueError("mix must map some of %s to non-negative shares, got %r" % (KINDS, mix))
        self.signatures = tuple(zip(SIGNATURES, SIGNATURE_PPM)) if signatures is None else tuple(signatures)
        self.packets = packets
        self.max_bytes = max_bytes
        self.ffi, self.lib = _engine()
        ffi = self.ffi
        cfg = ffi.new("gt_config *")
        cfg.seed = seed & (2 ** 64 - 1)
        planned = packets if packets is not None else max_bytes // 600
        cfg.planned_packets = max(planned, 1)
        cfg.active_flows = flows
        cfg.format = FORMATS[fmt]
        cfg.rate_pps = float(rate)
        cfg.start_ns = start_ns
        total = sum(mix.values())
        for i, k in enumerate(KINDS):
            cfg.kind_permille[i] = round(1000 * mix.get(k, 0) / total)
        self._gen = ffi.gc(self.lib.gt_new(cfg), self.lib.gt_free)
        if self._gen == ffi.NULL:
            raise MemoryError("trace generator: allocation failed")
        for pattern, ppm in self.signatures:
            raw = pattern.encode("latin-1") if isinstance(pattern, str) else bytes(pattern)
            if self.lib.gt_add_signature(self._gen, raw, len(raw), float(ppm)) < 0:
                raise ValueError("bad or too many signatures (at most 256, 1-200 bytes each): %r" % (pattern,))
        self._t0 = None

    def chunks(self, chunk_size=CHUNK):
        ffi, lib = self.ffi, self.lib
        self._t0 = time.perf_counter()
        buf = ffi.new("uint8_t[]", max(chunk_size, 1 << 16))
        n = lib.gt_file_header(self._gen, buf)
        if n:
            yield bytes(ffi.buffer(buf, n))
        max_packets = self.packets if self.packets is not None else 2 ** 64 - 1
        max_bytes = self.max_bytes or 0
        while True:
            n = lib.gt_fill(self._gen, buf, len(buf), max_packets, max_bytes)
            if n == 0:
                break
            yield ffi.buffer(buf, n)      # valid until the next fill: consume before advancing

    def stats(self):
        st = self.ffi.new("gt_stats *")
        self.lib.gt_get_stats(self._gen, st)
        names = [s if isinstance(s, str) else bytes(s).decode("latin-1") for s, _ in self.signatures]
        return TraceStats(
            packets=st.packets, frame_bytes=st.frame_bytes, file_bytes=st.file_bytes,
            kinds={k: st.kind[i] for i, k in enumerate(KINDS)},
            apps={a: st.app[i] for i, a in enumerate(APPS)},
            flows=st.flows, tcp_syn=st.tcp_syn, tcp_fin=st.tcp_fin, tcp_rst=st.tcp_rst,
            get_index=st.get_index, user_agent=st.user_agent, sig_packets=st.sig_packets,
            signatures={name: st.sig[i] for i, name in enumerate(names)},
            last_ts_ns=st.last_ts_ns,
            seconds=(time.perf_counter() - self._t0) if self._t0 else 0.0)


def write_trace(path, packets=None, *, max_bytes=None, seed=1, fmt=None, rate=1e6, flows=0, mix=None,
                start_ns=START_NS, signatures=None):
    """Writes a trace to path ('-' = stdout) and returns its TraceStats.

    fmt defaults from the extension (.pcapng, .erf; else classic pcap).  A file appears under its
    name only when complete (written as NAME.part, then renamed)."""
    path = os.fspath(path)
    if fmt is None:
        fmt = "pcapng" if path.endswith(".pcapng") else "erf" if path.endswith(".erf") else "pcap"
    gen = TraceGenerator(packets=packets, max_bytes=max_bytes, seed=seed, fmt=fmt, rate=rate, flows=flows,
                         mix=mix, start_ns=start_ns, signatures=signatures)
    if path == "-":
        out = sys.stdout.buffer
        for chunk in gen.chunks():
            out.write(chunk)
        out.flush()
        return gen.stats()
    tmp = path + ".part"
    try:
        with open(tmp, "wb", buffering=0) as f:
            for chunk in gen.chunks():
                f.write(chunk)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return gen.stats()


def ngrep_alternation(patterns):
    """One POSIX extended regex matching any of the literal patterns (for `ngrep -q -I T REGEX`)."""
    return "|".join(re.sub(r"([][.^$*+?(){}|\\])", r"\\\1", p) for p in patterns)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="Sizes take decimal suffixes (10M, 6G) or binary ones (512Ki).")
    size = ap.add_mutually_exclusive_group(required=True)
    size.add_argument("--packets", "-n", type=_size_arg, help="number of packets")
    size.add_argument("--bytes", "-b", type=_size_arg, dest="max_bytes",
                      help="stop before the file exceeds this size")
    ap.add_argument("-o", "--output", required=True, help="output file ('-' = stdout)")
    ap.add_argument("--seed", "-s", type=int, default=1)
    ap.add_argument("--format", "-f", choices=sorted(FORMATS),
                    help="default: from the extension (.pcapng, .erf), else pcap")
    ap.add_argument("--rate", type=float, default=1e6, help="mean packets per second (Poisson), default 1e6")
    ap.add_argument("--flows", type=int, default=0, help="active flows (default: scale with size)")
    ap.add_argument("--mix", help="packet shares, e.g. tcp4=60,udp4=30,icmp4=5,tcp6=3,udp6=2")
    ap.add_argument("--stats", metavar="FILE", help="write the exact counts as JSON ('-' = stderr)")
    ap.add_argument("--quiet", "-q", action="store_true")
    args = ap.parse_args(argv)
    mix = None
    if args.mix:
        try:
            mix = {k.strip(): float(v) for k, v in (kv.split("=") for kv in args.mix.split(","))}
        except ValueError:
            ap.error("--mix: expected NAME=SHARE,... with names from %s" % ", ".join(KINDS))
    try:
        st = write_trace(args.output, args.packets, max_bytes=args.max_bytes, seed=args.seed,
                         fmt=args.format, rate=args.rate, flows=args.flows, mix=mix)
    except (ValueError, OSError) as e:
        print("gentrace: %s" % e, file=sys.stderr)
        return 2
    if args.stats:
        text = json.dumps(st.to_dict(), indent=1)
        if args.stats == "-":
            print(text, file=sys.stderr)
        else:
            with open(args.stats, "w") as f:
                f.write(text + "\n")
    if not args.quiet:
        print("gentrace: %d packets, %d bytes (mean frame %.0f B), %d flows, in %.2f s (%.2f Mpps, %.0f MB/s)"
              % (st.packets, st.file_bytes, st.frame_bytes / max(st.packets, 1), st.flows, st.seconds,
                 st.packets / max(st.seconds, 1e-9) / 1e6, st.file_bytes / max(st.seconds, 1e-9) / 1e6),
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
