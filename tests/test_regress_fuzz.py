"""Inputs the fuzzers (fuzz/run.py) found crashing, replayed (tests/regress/TARGET/FILE).

Each is replayed twice: through the real code path a user meets (the engine from Python, the
drop-in under tcpdump, the system libpcap as the reference), and, where clang is installed,
through its fuzz target built with ASan + UBSan, which fails on the exact defect (an overflow
or an out-of-bounds read that the plain build would survive silently)."""
import ctypes
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REGRESS = ROOT / "tests" / "regress"
SYSTEM_LIBPCAP = "/usr/lib/x86_64-linux-gnu/libpcap.so.0.8"


def _inputs(target):
    return sorted((REGRESS / target).glob("*"))


def _all_inputs():
    return [(d.name, f) for d in sorted(REGRESS.iterdir()) if d.is_dir() for f in _inputs(d.name)]


@pytest.mark.parametrize("target,path", _all_inputs(), ids=lambda v: getattr(v, "name", v))
def test_fuzz_target_replays_clean(target, path):
    """The sanitized fuzz target runs the input without an error."""
    if shutil.which("clang") is None:
        pytest.skip("clang is not installed (make fuzz installs it)")
    sys.path.insert(0, str(ROOT / "fuzz"))
    try:
        import run as fuzz_run
    finally:
        sys.path.pop(0)
    t = next(t for t in fuzz_run.TARGETS if t.name == target)
    assert fuzz_run.build(t), "building the %s fuzz target failed" % target
    out = subprocess.run([t.exe, str(path)], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, ASAN_OPTIONS="detect_leaks=1"))
    assert out.returncode == 0, out.stderr[-3000:]


def _netflow_records(blob):
    """Decode a netflow target input (exporter byte, 2-byte length, payload...) in the
    collector backend's own C."""
    from mapi import native
    from scampi.backends.netflow import ffi, lib
    eng, _ = native.engine()          # engine types (records, batches), cast for the collector
    c = lib.mapi_nf_new(3, 8, 4096, 1000, 256)
    try:
        pos, now = 0, 1700000000 * 10**9
        while pos + 3 <= len(blob):
            who, n = blob[pos], int.from_bytes(blob[pos + 1:pos + 3], "big")
            pkt = blob[pos + 3:pos + 3 + n]
            addr = ffi.new("uint8_t[16]", [0x20 if who & 2 else 192, 0, 0, who & 1])
            lib.mapi_nf_decode(c, pkt, len(pkt), addr, 6 if who & 2 else 4, now)
            pos += 3 + n
            now += (who >> 2) * 100000000
        buf = eng.new("mapi_flowrec[64]")
        b = eng.new("mapi_batch *")
        arrays = [eng.new("uint64_t[64]"), eng.new("uint32_t[64]"), eng.new("uint32_t[64]"),
                  eng.new("int64_t[64]"), eng.new("uint16_t[64]")]
        b.off, b.caplen, b.wirelen, b.ts, b.ifindex = arrays
        b.cap = 64
        out = []
        lib.mapi_nf_flush_pending(c)
        while True:
            k = lib.mapi_nf_take(c, native.plugin_pointer(ffi, b),
                                 ffi.cast("mapi_flowrec *", buf), 64)
            if not k:
                return out
            out += [(buf[i].first_ns, buf[i].last_ns) for i in range(k)]
    finally:
        lib.mapi_nf_free(c)


@pytest.mark.parametrize("path", _inputs("netflow"), ids=lambda p: p.name)
def test_netflow_times_that_overflow_are_not_exported(path):
    """Flow times far outside 64-bit nanoseconds are reported as 0 (not exported), not as the
    wrapped value of a signed overflow."""
    records = _netflow_records(path.read_bytes())
    limit = 1 << 62            # about year 2116: no wrapped overflow lands below it by chance
    assert all(t == 0 or abs(t) < limit for pair in records for t in pair), records


@pytest.mark.parametrize("path", _inputs("bpf"), ids=lambda p: p.name)
def test_bpf_validate_agrees_with_libpcap(path):
    """The drop-in's bpf_validate (the engine's validator) answers as the stock libpcap's."""
    from scampi.libpcap_shim import testing
    data = path.read_bytes()
    n = min(data[0] % 256 + 1, (len(data) - 2) // 8)
    prog = ctypes.create_string_buffer(data[2:2 + 8 * n], 8 * n)
    real = ctypes.CDLL(SYSTEM_LIBPCAP)
    mine = ctypes.CDLL(testing.library())     # bpf_validate needs no Python
    for lib in (real, mine):
        lib.bpf_validate.argtypes = [ctypes.c_void_p, ctypes.c_int]
    assert mine.bpf_validate(prog, n) == real.bpf_validate(prog, n)


@pytest.mark.parametrize("path", _inputs("shim_savefile"), ids=lambda p: p.name)
def test_tcpdump_reads_damaged_headers_as_with_libpcap(path):
    """tcpdump through the drop-in fails on the damaged header exactly as on the stock libpcap."""
    from scampi.libpcap_shim import testing
    if testing.tool("tcpdump") is None:
        pytest.skip("tcpdump is not installed")
    stock = testing.run(["tcpdump", "-nr", str(path)], False)
    shim = testing.run(["tcpdump", "-nr", str(path)], True)
    assert stock.returncode != 0 and stock.stderr
    assert (shim.returncode, shim.stdout, shim.stderr) == (stock.returncode, stock.stdout, stock.stderr)



def _pcapng_read(data, window):
    """Packets (offset, caplen, wirelen) and the error offset of the engine's pcapng reader fed
    `data` as backends/savefile.py feeds a stream: regions of `window` bytes (0: the whole file)
    starting at the first unparsed byte, grown on NEED_MORE."""
    from mapi import native
    from mapi.batch import BatchPool
    ffi, lib = native.engine()
    r = ffi.new("mapi_reader *")
    lib.mapi_reader_init(r, lib.MAPI_FMT_PCAPNG)
    consumed = ffi.new("uint64_t *")
    buf = ffi.from_buffer(bytearray(data))        # writable: the reader swaps headers in place
    assert lib.mapi_reader_open(r, buf, len(data), 1, consumed) == lib.MAPI_PARSE_OK
    pool, out, pos, need = BatchPool(1), [], int(consumed[0]), window
    b = pool.get()
    while True:
        n = len(data) - pos if not window else min(len(data) - pos, need)
        rc = lib.mapi_reader_parse(r, buf + pos, n, pos, pos + n == len(data), b.c, consumed)
        out += [(pos + b.c.off[i], b.c.caplen[i], b.c.wirelen[i]) for i in range(b.c.n)]
        used, pos = int(consumed[0]), pos + int(consumed[0])
        if rc in (lib.MAPI_PARSE_ERROR, lib.MAPI_PARSE_END):
            return out, int(r.err_offset) if rc == lib.MAPI_PARSE_ERROR else None
        assert used or b.c.n or (rc == lib.MAPI_PARSE_NEED_MORE and pos + n < len(data))
        if rc == lib.MAPI_PARSE_NEED_MORE:
            need = max(int(r.need), window, n * 2 if used == 0 else 0)


@pytest.mark.parametrize("path", _inputs("pcapng_reader"), ids=lambda p: p.name)
def test_pcapng_read_in_pieces_equals_whole(path):
    """Read in regions of any size, a pcapng file gives the packets and the error of the whole
    file at once.  These switch byte order at a section header that a region cut between its
    length and its byte-order magic: the length was read in the old order."""
    data = path.read_bytes()
    want, want_err = _pcapng_read(data, 0)
    assert want_err is not None            # each ends in damage: its offset is compared too
    for window in range(256, 1024, 4):
        assert _pcapng_read(data, window) == (want, want_err), window
