"""The libpcap API through the drop-in, call by call: a probe program (libpcap_shim/probe/
api_probe.c) prints what every call returns and hands out; its output with the shim preloaded
must equal its output on the stock libpcap (return codes, error texts, headers, packets, the
bytes pcap_dump writes).  Bad input is part of it: garbage and truncated files, unknown devices,
invalid filters, calls on the wrong kind of handle."""
import os
import struct
import subprocess

import pytest

from helpers import CORPUS, DATA, file_sets, generated, inputs, needs_corpus, sample
from helpers.shim_modes import built_probe, shim_server_fixture
from scampi.libpcap_shim import testing

shim_server = shim_server_fixture()

GOOD_FILES = [
    "pcap/PcapPlusPlus__DnsPackets.pcap",              # Ethernet, microseconds
    "pcap/PcapPlusPlus__file_heuristics__nanosecs.pcap",
    "pcap/PcapPlusPlus__raw_ip.pcap",                  # LINKTYPE_RAW 101 -> DLT_RAW 12
    "pcap/PcapPlusPlus__null_loopback.pcap",           # DLT_NULL: savefile-specific filters
    "pcap/libpcap__rarp_req_reply.pcapng",
    "pcap/libtrace__100_packets.pcapng",
    "tcpdump/pcap/timestamp_invalid_nano.pcap",        # unnormalised fractions
    "tcpdump/pcap/heap-overflow-2.pcap",               # LINKTYPE 106, FCS bits, snaplen 1
    "pcap/libpcap__pcap-invalid-version-1.pcap",
    "pcap/libpcap__pcap-invalid-version-2.pcap",
    "pcap/libpcap__pcapng-invalid-vers-1.pcapng",
    "pcap/libpcap__shb-option-too-long.pcapng",
]
CARRIED_GOOD_FILES = [DATA / f for f in GOOD_FILES if (DATA / f).exists()]
DNS = sample("pcap/PcapPlusPlus__DnsPackets.pcap")


def _bad_files(d):
    """Damaged copies of a good capture, named after what is wrong."""
    src = DNS.read_bytes()
    cap = struct.unpack("<I", src[32:36])[0]
    first = 24 + 16 + cap
    files = {
        "empty": b"",
        "magic-cut": src[:3],
        "header-cut": src[:20],
        "header-only": src[:24],
        "record-header-cut": src[:24 + 8],
        "record-data-cut": src[:first - 5],
        "second-record-cut": src[:first + 10],
        "caplen-insane": src[:32] + struct.pack("<I", 300000) + src[36:],
        "caplen-over-snaplen": src[:32] + struct.pack("<I", 100000) + src[36:],
        "version-1": src[:4] + struct.pack("<HH", 1, 0) + src[8:],
        "version-2.5": src[:4] + struct.pack("<HH", 2, 5) + src[8:],
        "byteswapped": _byteswap(src),
        "garbage": bytes((i * 7919 + 13) % 251 for i in range(4096)),
        "text": b"this is not a capture file\n" * 20,
        "pcapng-no-idb": _pcapng_shb_only(),
    }
    paths = []
    for name, data in files.items():
        p = os.path.join(d, name + ".pcap")
        with open(p, "wb") as f:
            f.write(data)
        paths.append(p)
    return paths


def _byteswap(src):
    """The same capture written big-endian (pcap_is_swapped() = 1 on this host)."""
    out = bytearray(struct.pack(">IHHiIII", *struct.unpack("<IHHiIII", src[:24])))
    pos = 24
    while pos + 16 <= len(src):
        sec, frac, cap, wire = struct.unpack("<IIII", src[pos:pos + 16])
        out += struct.pack(">IIII", sec, frac, cap, wire) + src[pos + 16:pos + 16 + cap]
        pos += 16 + cap
    return bytes(out)


def _pcapng_shb_only():
    body = struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)
    length = 12 + len(body)
    return struct.pack("<II", 0x0A0D0D0A, length) + body + struct.pack("<I", length)


@pytest.fixture(scope="module")
def probe():
    with built_probe("api_probe", libs=("-lpcap", "-lpthread")) as (exe, d):
        yield exe, d


def _compare(exe, args, server=None, **kw):
    stock = testing.run([exe] + args, False, **kw)
    shim = testing.run([exe] + args, True, server=server, **kw)
    assert stock.returncode == 0, stock
    assert shim.returncode == 0, shim
    for a, b in zip(stock.stdout.decode(errors="replace").splitlines(),
                    shim.stdout.decode(errors="replace").splitlines()):
        assert b == a, "first difference (stock, then shim)"
    assert shim.stdout == stock.stdout
    return stock, shim


@pytest.mark.parametrize("scenario", ["names", "bpf", "dead", "errors"])
def test_api_scenario(probe, scenario, shim_server):
    _compare(probe[0], [scenario], shim_server)


def test_api_linktypes(probe, shim_server):
    """Every LINKTYPE_ value 0..299 in a savefile header: the DLT_ reported, the snapshot
    length libpcap derives, and whether pcap_dump_open accepts it."""
    exe, d = probe
    for sub in ("stock", "shim"):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
    stock = testing.run([exe, "linktypes", os.path.join(d, "stock")], False)
    shim = testing.run([exe, "linktypes", os.path.join(d, "shim")], True, server=shim_server)
    assert stock.stdout.count(b"\n") == 300
    assert shim.stdout == stock.stdout


@pytest.mark.parametrize("files", file_sets(CARRIED_GOOD_FILES, GOOD_FILES))
def test_api_good_files(probe, files, shim_server):
    """Properties, every read style, breakloop, filters and pcap_offline_filter on captures of
    several link types, precisions and formats; every packet of the shim's run came through a
    MAPI flow."""
    stock, shim = _compare(probe[0], ["files"] + [str(CORPUS / f) for f in files], shim_server)
    assert shim.reports, "no MAPI report"
    testing.in_mode(shim, shim_server)
    assert all(r["device_backend"] == "savefile" for r in shim.reports)
    assert sum(r["shim_delivered"] for r in shim.reports) > 0


def test_api_bad_files(probe, shim_server):
    exe, d = probe
    bad = os.path.join(d, "bad")
    os.makedirs(bad, exist_ok=True)
    stock, shim = _compare(exe, ["files"] + _bad_files(bad), shim_server)
    text = stock.stdout.decode()
    # the probe really met libpcap's errors (the comparison above is not vacuous)
    for msg in ("truncated dump file; tried to read 4 file header bytes, only got 3",
                "invalid packet capture length 300000, bigger than snaplen of 262144",
                "truncated dump file; tried to read 100000 captured bytes",
                "archaic pcap savefile format", "unsupported pcap savefile version 2.5",
                "unknown file format", "the capture file has no Interface Description Blocks"):
        assert msg in text


def test_api_stdin(probe, shim_server):
    data = DNS.read_bytes()
    exe = probe[0]
    with open(str(DNS), "rb") as f:
        stock = subprocess.run([exe, "stdin"], stdin=f, capture_output=True)
    with open(str(DNS), "rb") as f:
        env = dict(os.environ)
        env.update(testing.preload_env(testing.library()))
        env.pop("MAPI_SERVER", None)
        if shim_server:
            env["MAPI_SERVER"] = shim_server
        shim = subprocess.run([exe, "stdin"], stdin=f, capture_output=True, env=env)
    assert b"next_ex end -2" in stock.stdout and len(data) > 24
    assert shim.stdout == stock.stdout


def test_api_dump_fopen(probe, shim_server):
    """pcap_dump_fopen shares the application's FILE *: its own writes before and after the
    dump, pcap_dump_ftell(64) after each record, pcap_dump_open_append's checks."""
    exe, d = probe
    src = str(DNS)
    outs = {}
    out = os.path.join(d, "dump.pcap")       # one name: the messages quote it
    for preload in (False, True):
        run = testing.run([exe, "dumpfile", src, out], preload, server=shim_server)
        assert run.returncode == 0, run
        outs[preload] = (run.stdout, open(out, "rb").read())
        os.unlink(out)
    assert outs[True] == outs[False]
    assert b"append to prefixed: failed" in outs[False][0]


@pytest.mark.parametrize("path", inputs([generated("slow.pcap"), "PcapPlusPlus__4KHttpRequests.pcap"],
                                         base="pcap"))
@pytest.mark.parametrize("how", ["signal", "thread"])
def test_api_breakloop_async(probe, how, path, shim_server):
    """pcap_breakloop from a signal handler and from another thread interrupts a pcap_loop that
    is busy in its callback; the rest of the packets come with the next pcap_loop."""
    stock, shim = _compare(probe[0], [how, str(CORPUS / "pcap" / path)], shim_server)
    assert b"loop -2 early 1" in stock.stdout and b"all there 1" in stock.stdout


@needs_corpus
def test_api_fork(probe, shim_server):
    """A child process reads the handle its parent opened (and set a filter on)."""
    stock, shim = _compare(probe[0], ["fork", str(CORPUS / "pcap/PcapPlusPlus__4KHttpRequests.pcap")], shim_server)
    assert b"child: loop 0 packets 385" in stock.stdout


@pytest.mark.parametrize("name,cut", inputs([(generated("slow.pcap"), None), (generated("mixed.pcapng"), None),
                                             (generated("slow.pcap"), 30),
                                             (generated("slow.pcap"), 100000),
                                             ("pcap/PcapPlusPlus__4KHttpRequests.pcap", None),
                                             ("pcap/libtrace__100_packets.pcapng", None),
                                             ("pcap/PcapPlusPlus__4KHttpRequests.pcap", 30),
                                             ("pcap/PcapPlusPlus__4KHttpRequests.pcap", 100000)]))
def test_tcpdump_reads_a_pipe(name, cut, shim_server):
    """tcpdump -r - on a pipe: the shim replays the header bytes it checked, then streams the
    rest through a pipe into the MAPI device."""
    if testing.tool("tcpdump") is None:
        pytest.skip("tcpdump is not installed")
    data = (CORPUS / name).read_bytes()[:cut]
    stock = testing.run(["tcpdump", "-nr", "-", "tcp"], False, input=data)
    shim = testing.run(["tcpdump", "-nr", "-", "tcp"], True, input=data, server=shim_server)
    assert (shim.returncode, shim.stdout, shim.stderr) == (stock.returncode, stock.stdout, stock.stderr)
    if cut is None or cut > 1000:
        assert stock.stdout.count(b"\n") > 5
    else:
        assert stock.returncode == 1 and b"truncated dump file" in stock.stderr
    assert shim.reports and shim.reports[0]["shim_delivered"] == stock.stdout.count(b"\n")


def test_tcpdump_lists_devices(shim_server):
    """tcpdump -D: the OS interfaces in libpcap's order with libpcap's flags, then "any"; the
    pseudo-devices MAPI cannot capture on (Bluetooth, netfilter, D-Bus, USB) are left out."""
    if testing.tool("tcpdump") is None:
        pytest.skip("tcpdump is not installed")
    libpcap_only = ("bluetooth", "nflog", "nfqueue", "dbus-", "usbmon")

    def names(out):
        rows = [l.split(".", 1)[1] for l in out.decode().splitlines()]
        return [r for r in rows if not r.startswith(libpcap_only)]
    stock = testing.run(["tcpdump", "-D"], False)
    shim = testing.run(["tcpdump", "-D"], True, server=shim_server)
    assert stock.returncode == shim.returncode == 0
    mine = names(shim.stdout)
    assert mine[:len(names(stock.stdout))] == names(stock.stdout)
    assert any(r.startswith("any ") for r in mine)


def test_bpf_filter_equals_libpcap_on_random_programs():
    """bpf_filter() (run by pmacctd, argus, libtrace on pcap_compile's output) against the stock
    libpcap's, on random valid programs and packets.  The scratch memory is initialised first:
    libpcap leaves it undefined."""
    import ctypes
    import random
    real = ctypes.CDLL(testing.SYSTEM_LIBPCAP)
    mine = ctypes.CDLL(testing.library())     # bpf_filter needs no Python

    class Insn(ctypes.Structure):
        _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte),
                    ("k", ctypes.c_uint)]
    for lib in (real, mine):
        lib.bpf_filter.restype = ctypes.c_uint
        lib.bpf_filter.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint, ctypes.c_uint]
        lib.bpf_validate.argtypes = [ctypes.c_void_p, ctypes.c_int]
    ops = [0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x0c, 0x14, 0x15, 0x16, 0x1c, 0x1d,
           0x20, 0x24, 0x25, 0x28, 0x2c, 0x2d, 0x30, 0x34, 0x35, 0x3c, 0x3d, 0x40, 0x44, 0x45,
           0x48, 0x4c, 0x4d, 0x50, 0x54, 0x5c, 0x60, 0x61, 0x64, 0x6c, 0x74, 0x7c, 0x80, 0x81,
           0x84, 0x87, 0x94, 0x9c, 0xa4, 0xac, 0xb1]
    rnd = random.Random(20250101)
    init = [Insn(0x00, 0, 0, 0)] + [Insn(0x02, 0, 0, i) for i in range(16)]
    checked = 0
    for _ in range(20000):
        n = rnd.randint(2, 12)
        body = []
        for i in range(n - 1):
            code = rnd.choice(ops)
            k = rnd.choice([0, 1, 2, 4, 12, 14, 20, 31, 32, 33, 60, 0x7fffffff, 0xffffffff,
                            rnd.randint(0, 80), rnd.getrandbits(32)])
            if code in (0x02, 0x03, 0x60, 0x61):
                k = rnd.randint(0, 15)
            if code in (0x34, 0x94) and k == 0:
                k = 7
            if code == 0x05:
                k = rnd.randint(0, n - 2 - i)
            body.append(Insn(code, rnd.randint(0, n - 2 - i), rnd.randint(0, n - 2 - i), k))
        prog = init + body + [Insn(0x16, 0, 0, 0)]
        arr = (Insn * len(prog))(*prog)
        valid = real.bpf_validate(arr, len(prog))
        assert mine.bpf_validate(arr, len(prog)) == valid
        if not valid:
            continue
        pkt = bytes(rnd.getrandbits(8) for _ in range(rnd.randint(0, 70)))
        wirelen = len(pkt) + rnd.randint(0, 100)
        a = real.bpf_filter(arr, pkt, wirelen, len(pkt))
        b = mine.bpf_filter(arr, pkt, wirelen, len(pkt))
        assert b == a, ([(i.code, i.jt, i.jf, i.k) for i in body], pkt.hex(), wirelen)
        checked += 1
    assert checked > 10000


def _variants(d):
    """The same packets in the savefile variants libpcap reads: Kuznetzov's record headers,
    versions 2.2/2.3 with swapped length fields, a snapshot length shorter than records (cut),
    FCS bits in the link type, unnormalised time stamps, big-endian nanoseconds."""
    src = DNS.read_bytes()
    recs, pos = [], 24
    while pos + 16 <= len(src):
        sec, frac, cap, wire = struct.unpack("<IIII", src[pos:pos + 16])
        recs.append((sec, frac, cap, wire, src[pos + 16:pos + 16 + cap]))
        pos += 16 + cap

    def pcap(order, magic, ver, snap, lt, rec):
        return struct.pack(order + "IHHiIII", magic, ver[0], ver[1], 0, 0, snap, lt) + \
            b"".join(rec(*r) for r in recs)
    plain = lambda s, f, c, w, d: struct.pack("<IIII", s, f, c, w) + d
    files = {
        "kuznetzov": pcap("<", 0xa1b2cd34, (2, 4), 65535, 1, lambda s, f, c, w, d:
                          struct.pack("<IIIIIHBB", s, f, c, w, 2, 0x0800, 0, 0) + d),
        "v2.2": pcap("<", 0xa1b2c3d4, (2, 2), 65535, 1,
                     lambda s, f, c, w, d: struct.pack("<IIII", s, f, w, c) + d),
        "v2.3": pcap("<", 0xa1b2c3d4, (2, 3), 65535, 1,
                     lambda s, f, c, w, d: struct.pack("<IIII", s, f, w, c) + d),
        "snaplen60": pcap("<", 0xa1b2c3d4, (2, 4), 60, 1, plain),
        "fcs-bits": pcap("<", 0xa1b2c3d4, (2, 4), 65535, 1 | 0x14000000, plain),
        "odd-times": pcap("<", 0xa1b2c3d4, (2, 4), 65535, 1, lambda s, f, c, w, d:
                          struct.pack("<IIII", 0xfffffff0, 1500000, c, w) + d),
        "big-endian-ns": pcap(">", 0xa1b23c4d, (2, 4), 65535, 1, lambda s, f, c, w, d:
                              struct.pack(">IIII", s, f * 1000 + 7, c, w) + d),
    }
    paths = []
    for name, data in files.items():
        paths.append(os.path.join(d, name + ".pcap"))
        with open(paths[-1], "wb") as f:
            f.write(data)
    return paths


def test_api_savefile_variants(probe, shim_server):
    exe, d = probe
    var = os.path.join(d, "variants")
    os.makedirs(var, exist_ok=True)
    stock, shim = _compare(exe, ["files"] + _variants(var), shim_server)
    assert b"swapped 1" in stock.stdout and b"ext 0x14000000" in stock.stdout
