"""The sandboxed runner in process, on packets built to hit the edges: the example module's
WASM_TCP80 keeps exactly the packets tcpdump's `tcp port 80` keeps (the same packets, byte for
byte, in order) on frames cut at every captured length, IPv4 headers of every length, fragments,
IPv6 and other protocols; and a module without a snaplen gets every captured byte of every
packet, short or jumbo (a batch handed over in parts, a packet bigger than a part), as a sum of
all bytes computed here from the file shows."""
import os
import struct
import subprocess

import dpkt
import pytest
import wasmtime

import mapi
from helpers.pktbuild import ether, ip4, ip6

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WASM = os.path.join(ROOT, "examples", "wasm", "tcp80.wasm")

# sums every byte the server copied of each packet, and the copied lengths; keeps every packet
BYTESUM = """(module
  (memory (export "memory") 1)
  (global $sum (mut i64) (i64.const 0))
  (func (export "scampi_abi_version") (result i32) (i32.const 1))
  (func (export "scampi_buffer") (param $b i32) (result i32)
    (local $pages i32)
    (local.set $pages (i32.add (i32.shr_u (local.get $b) (i32.const 16)) (i32.const 2)))
    (if (i32.gt_u (local.get $pages) (memory.size))
      (then (drop (memory.grow (i32.sub (local.get $pages) (memory.size))))))
    (i32.const 65536))
  (func (export "scampi_count_BYTESUM") (param $at i32) (param $n i32) (result i32)
    (local $rec i32) (local $i i32) (local $p i32) (local $end i32)
    (local.set $rec (i32.add (local.get $at) (i32.const 16)))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
      (local.set $p (i32.add (local.get $at) (i32.load (local.get $rec))))
      (local.set $end (i32.add (local.get $p) (i32.load offset=4 (local.get $rec))))
      (global.set $sum (i64.add (global.get $sum) (i64.extend_i32_u
                                                   (i32.load offset=4 (local.get $rec)))))
      (block $bytes_done (loop $byte
        (br_if $bytes_done (i32.ge_u (local.get $p) (local.get $end)))
        (global.set $sum (i64.add (global.get $sum) (i64.load8_u (local.get $p))))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (br $byte)))
      (local.set $rec (i32.add (local.get $rec) (i32.const 24)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    (local.get $n))
  (func (export "scampi_result_BYTESUM") (result i64) (global.get $sum)))
"""


# ABI version 2, snaplen 32, every column: sums caplen, wirelen, ts and the bytes of each slot;
# traps if the index column is not ascending within a part or a header offset is not where the
# layout puts it
COLUMNS = """(module
  (memory (export "memory") 1)
  (global $sum (mut i64) (i64.const 0))
  (func (export "scampi_abi_version") (result i32) (i32.const 2))
  (func (export "scampi_snaplen") (result i32) (i32.const 32))
  (func (export "scampi_fields") (result i32) (i32.const 7))
  (func (export "scampi_buffer") (param $b i32) (result i32)
    (local $pages i32)
    (local.set $pages (i32.add (i32.shr_u (local.get $b) (i32.const 16)) (i32.const 2)))
    (if (i32.gt_u (local.get $pages) (memory.size))
      (then (drop (memory.grow (i32.sub (local.get $pages) (memory.size))))))
    (i32.const 65536))
  (func $col (param $at i32) (param $field i32) (result i32)
    (i32.add (local.get $at) (i32.load (i32.add (local.get $at) (local.get $field)))))
  (func (export "scampi_count_COLUMNS") (param $at i32) (param $n i32) (result i32)
    (local $j i32) (local $p i32) (local $e i32) (local $len i32) (local $last i32)
    (if (i32.ne (i32.load offset=12 (local.get $at)) (i32.const 32)) (then (unreachable)))
    (if (i32.ne (i32.load offset=16 (local.get $at)) (i32.const 40)) (then (unreachable)))
    (if (i32.ne (i32.load offset=20 (local.get $at))
                (i32.add (i32.const 40) (i32.shl (local.get $n) (i32.const 2))))
      (then (unreachable)))
    (local.set $last (i32.const -1))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $j) (local.get $n)))
      (local.set $len (i32.load (i32.add (call $col (local.get $at) (i32.const 16))
                                         (i32.shl (local.get $j) (i32.const 2)))))
      (global.set $sum (i64.add (global.get $sum) (i64.extend_i32_u (local.get $len))))
      (global.set $sum (i64.add (global.get $sum) (i64.extend_i32_u
        (i32.load (i32.add (call $col (local.get $at) (i32.const 20))
                           (i32.shl (local.get $j) (i32.const 2)))))))
      (global.set $sum (i64.add (global.get $sum)
        (i64.load (i32.add (call $col (local.get $at) (i32.const 28))
                           (i32.shl (local.get $j) (i32.const 3))))))
      (local.set $e (i32.load (i32.add (call $col (local.get $at) (i32.const 24))
                                       (i32.shl (local.get $j) (i32.const 2)))))
      (if (i32.le_s (local.get $e) (local.get $last)) (then (unreachable)))
      (local.set $last (local.get $e))
      (local.set $p (i32.add (call $col (local.get $at) (i32.const 36))
                             (i32.mul (local.get $j) (i32.const 32))))
      (local.set $e (i32.add (local.get $p) (local.get $len)))
      (block $bytes_done (loop $byte
        (br_if $bytes_done (i32.ge_u (local.get $p) (local.get $e)))
        (global.set $sum (i64.add (global.get $sum) (i64.load8_u (local.get $p))))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (br $byte)))
      (local.set $j (i32.add (local.get $j) (i32.const 1)))
      (br $next)))
    (local.get $n))
  (func (export "scampi_result_COLUMNS") (result i64) (global.get $sum)))
"""
# ABI version 1 with a snaplen (48): keeps the packets whose copied length is odd
ODD_V1 = """(module
  (memory (export "memory") 1)
  (func (export "scampi_abi_version") (result i32) (i32.const 1))
  (func (export "scampi_snaplen") (result i32) (i32.const 48))
  (func (export "scampi_buffer") (param $b i32) (result i32)
    (local $pages i32)
    (local.set $pages (i32.add (i32.shr_u (local.get $b) (i32.const 16)) (i32.const 2)))
    (if (i32.gt_u (local.get $pages) (memory.size))
      (then (drop (memory.grow (i32.sub (local.get $pages) (memory.size))))))
    (i32.const 65536))
  (func (export "scampi_filter_ODD_V1") (param $at i32) (param $n i32) (result i32)
    (local $j i32) (local $k i32) (local $keep i32)
    (local.set $keep (i32.add (i32.add (local.get $at) (i32.const 16))
                              (i32.mul (local.get $n) (i32.const 24))))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $j) (local.get $n)))
      (if (i32.and (i32.load offset=20 (i32.add (local.get $at)
                                                (i32.mul (local.get $j) (i32.const 24))))
                   (i32.const 1))
        (then (i32.store (i32.add (local.get $keep) (i32.shl (local.get $k) (i32.const 2)))
                         (local.get $j))
              (local.set $k (i32.add (local.get $k) (i32.const 1)))))
      (local.set $j (i32.add (local.get $j) (i32.const 1)))
      (br $next)))
    (local.get $k)))
"""
BASE = """(memory (export "memory") 1)
  (func (export "scampi_buffer") (param i32) (result i32) (i32.const 0))"""
MISFITS = {
    "edges_onearg": ('(func (export "scampi_abi_version") (result i32) (i32.const 1))'
                     '(func (export "scampi_filter_ONEARG") (param i32) (result i32) (i32.const 0))',
                     "ONEARG must take (i32 at, i32 n) and return i32"),
    "edges_f32res": ('(func (export "scampi_abi_version") (result i32) (i32.const 1))'
                     '(func (export "scampi_count_F32RES") (param i32 i32) (result i32) (i32.const 0))'
                     '(func (export "scampi_result_F32RES") (result f32) (f32.const 0))',
                     "scampi_result_F32RES must take nothing and return i64"),
}


def _tcp4(sport, dport, ihl=5, frag=0, proto=6):
    """An IPv4 packet written field by field: header length `ihl` words (NOP options), the
    flags and fragment offset word `frag`, a 20-byte transport header and 8 bytes of data."""
    body = struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 0x50, 0x18, 512, 0, 0) + b"x" * 8
    header = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, 4 * ihl + len(body), 1, frag, 64, proto,
                         0, ip4("10.0.0.1"), ip4("10.0.0.2")) + b"\x01" * (4 * ihl - 20)
    return ether(header + body)


def _tcp6(sport, dport, nxt=6):
    body = struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 0x50, 0x18, 512, 0, 0) + b"y" * 8
    ip = dpkt.ip6.IP6(src=ip6("2001:db8::1"), dst=ip6("2001:db8::2"), nxt=nxt, hlim=64,
                      plen=len(body))
    return ether(bytes(ip)[:40] + body, v6=True)


def edge_frames():
    frames = []
    for ihl in range(5, 16):
        for ports in ((80, 1234), (1234, 80), (1234, 4321), (80, 80)):
            for frag in (0, 0x2000, 0x0001, 0x1fff):           # MF alone, offsets 1 and max
                frames.append(_tcp4(*ports, ihl=ihl, frag=frag))
    frames += [_tcp4(80, 1234, proto=17), _tcp4(1234, 80, proto=1)]
    for ports in ((80, 1234), (1234, 80), (1234, 4321)):
        frames += [_tcp6(*ports), _tcp6(*ports, nxt=17), _tcp6(*ports, nxt=0)]
    arp = _tcp4(80, 80)
    frames.append(arp[:12] + b"\x08\x06" + arp[14:])
    vlan = _tcp4(80, 80)
    frames.append(vlan[:12] + b"\x81\x00\x00\x05" + vlan[12:])
    return frames


def write_cut_pcap(path, frames):
    """Every frame whole and cut to each captured length from 1 byte (caplen < wirelen)."""
    t = 1700000000
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 262144, 1))
        for frame in frames:
            for cap in range(1, len(frame) + 1):
                t += 1
                f.write(struct.pack("<IIII", t, 0, cap, len(frame)) + frame[:cap])
    return path


def write_sizes_pcap(path):
    """Packets of many sizes, some bigger than a part of a batch (64 KiB)."""
    sizes = [1, 2, 15, 16, 17, 31, 32, 33, 60, 79, 80, 81, 1514, 9000, 70000] * 40
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 262144, 1))
        for i, size in enumerate(sizes):
            data = bytes((i * 7 + j * 13) & 0xff for j in range(size))
            f.write(struct.pack("<IIII", 1700000000 + i, 0, size, size) + data)
    return path, sizes


@pytest.fixture(scope="module")
def libraries():
    from mapi.jobcontrol.usercode import embedded
    subprocess.run(["make", "-s", "-C", ROOT, "wasm-example"], check=True, capture_output=True)
    if "tcp80" not in embedded().loaded:
        mapi.load_library(WASM)
    for name, wat in (("edges_bytesum", BYTESUM), ("edges_columns", COLUMNS),
                      ("edges_odd_v1", ODD_V1)):
        if name not in embedded().loaded:
            embedded().load(name, "sandboxed", "host", wasmtime.wat2wasm(wat))


def packets(path):
    with open(path, "rb") as f:
        return [(ts, bytes(data)) for ts, data in dpkt.pcap.Reader(f)]


def test_wasm_tcp80_keeps_exactly_tcpdumps_packets(libraries, tmp_path):
    trace = write_cut_pcap(tmp_path / "cut.pcap", edge_frames())
    ours, ref = tmp_path / "wasm.pcap", tmp_path / "tcpdump.pcap"
    with mapi.OfflineDevice(str(trace)) as dev:
        f = dev.flow()
        kept = f.apply("WASM_TCP80")
        f.apply("TO_FILE", mapi.MFF_PCAP, str(ours))
        dev.run()
        value = kept.value
    subprocess.run(["tcpdump", "-r", str(trace), "-w", str(ref), "tcp port 80"], check=True,
                   capture_output=True)
    want = packets(ref)
    assert len(packets(trace)) > 10000 and len(want) > 1000
    assert packets(ours) == want
    assert value == len(want)


def test_every_captured_byte_reaches_a_module_without_snaplen(libraries, tmp_path):
    trace, sizes = write_sizes_pcap(tmp_path / "sizes.pcap")
    with mapi.OfflineDevice(str(trace)) as dev:
        f = dev.flow()
        total = f.apply("BYTESUM")
        count = f.apply("PKT_COUNTER")
        dev.run()
        got, n = total.value, count.value
    assert n == len(sizes)
    assert got == sum(len(d) + sum(d) for _, d in packets(trace))


def test_a_version_1_filter_with_snaplen_keeps_its_selection(libraries, tmp_path):
    trace, sizes = write_sizes_pcap(tmp_path / "sizes.pcap")
    with mapi.OfflineDevice(str(trace)) as dev:
        f = dev.flow()
        f.apply("ODD_V1")
        count, size = f.apply("PKT_COUNTER"), f.apply("BYTE_COUNTER")
        dev.run()
        got = (count.value, size.value)
    kept = [n for n in sizes if min(n, 48) % 2]
    assert got == (len(kept), sum(kept)) and kept


def test_a_version_2_module_gets_its_slots_and_the_columns_it_asked_for(libraries, tmp_path):
    trace, sizes = write_sizes_pcap(tmp_path / "sizes.pcap")
    with mapi.OfflineDevice(str(trace)) as dev:
        f = dev.flow()
        total = f.apply("COLUMNS")
        dev.run()
        got = total.value
    want = 0
    with open(trace, "rb") as fh:
        for ts, data in dpkt.pcap.Reader(fh):
            head = data[:32]
            want += len(head) + len(data) + round(ts * 1e9) + sum(head)
    want = (want + (1 << 63)) % (1 << 64) - (1 << 63)          # the module's i64 wraps
    assert got == want


@pytest.mark.parametrize("name", sorted(MISFITS))
def test_a_module_whose_exports_do_not_fit_the_abi_is_refused_at_load(name):
    from mapi.jobcontrol.usercode import embedded
    body, reason = MISFITS[name]
    with pytest.raises(mapi.MapiError) as exc:
        embedded().load(name, "sandboxed", "host", wasmtime.wat2wasm("(module %s %s)" % (BASE, body)))
    assert reason in str(exc.value) and name in str(exc.value)


def test_a_version_2_module_without_snaplen_is_refused(libraries, tmp_path):
    from mapi.jobcontrol.usercode import embedded
    if "edges_nosnap" not in embedded().loaded:
        embedded().load("edges_nosnap", "sandboxed", "host", wasmtime.wat2wasm(
            '(module %s (func (export "scampi_abi_version") (result i32) (i32.const 2))'
            '(func (export "scampi_count_NOSNAP") (param i32 i32) (result i32) (local.get 1)))'
            % BASE))
    trace = write_cut_pcap(tmp_path / "one.pcap", [_tcp4(80, 1)])
    with mapi.OfflineDevice(str(trace)) as dev:
        with pytest.raises(mapi.MapiError) as exc:
            dev.flow().apply("NOSNAP")
            dev.run()
    assert "must export scampi_snaplen() > 0" in str(exc.value)
