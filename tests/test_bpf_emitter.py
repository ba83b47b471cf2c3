"""The native BPF emitter (mapi/csrc/bpf_x86_64.c: classic BPF to x86-64 machine code, no
compiler) against two references, packet by packet: the engine's interpreter and the stock
libpcap's bpf_filter().  On every program the tests and the corpus filter with (optimised and
not, on every corpus capture of each program's link type) and on 20,000 random valid programs
over random and real packets: every instruction class, the packet-bounds rules, division by
zero, loads at huge and "negative" (Linux extension) offsets, backward jumps (protochain)."""
import ast
import csv
import ctypes
import logging
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mapi import bpf_jit
from mapi._engine import ffi, lib
from mapi.batch import BATCH_CAP
from mapi.bpf import compile_filter
from mapi.errors import MapiError
from helpers import CORPUS, ROOT, generated, have_corpus, tcpdump_records
from helpers.bpfrun import bpf_select
from helpers.savefile import read_source

pytestmark = pytest.mark.skipif(not bpf_jit.enabled(), reason="no native BPF emitter for this "
                                "architecture (the interpreter runs every program)")
LIBPCAP = "/usr/lib/x86_64-linux-gnu/libpcap.so.0.8"
EXTRA_EXPRESSIONS = ["ip6 protochain 6", "ip6 protochain 17", "protochain 6", "ip protochain 1",
                     "ip6 and tcp[tcpflags] & tcp-push != 0", "ether host 00:11:22:33:44:55",
                     "ip[ip[0] & 0xf] > 3", "len - 14 > 100", "tcp[tcpflags] == tcp-ack",
                     "udp[4:2] % 7 == 3", "ip[2:2] / 4 > 100", "tcp[13] * 2 + 1 < 40"]


class Insn(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte),
                ("k", ctypes.c_uint)]


@pytest.fixture(scope="module")
def libpcap():
    if not os.path.exists(LIBPCAP):
        pytest.skip("the stock libpcap is not at %s" % LIBPCAP)
    real = ctypes.CDLL(LIBPCAP)
    real.bpf_filter.restype = ctypes.c_uint
    real.bpf_filter.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint, ctypes.c_uint]
    real.bpf_validate.argtypes = [ctypes.c_void_p, ctypes.c_int]
    return real


class Packets:
    """Packets [(bytes, wirelen)] as one engine batch."""

    def __init__(self, packets, linktype=1):
        assert len(packets) <= BATCH_CAP
        self.packets = packets
        self.data = ffi.new("uint8_t[]", max(1, sum(len(p) for p, _ in packets)))
        self.c = ffi.gc(lib.mapi_batch_new(max(1, len(packets))), lib.mapi_batch_free)
        pos = 0
        for i, (p, wire) in enumerate(packets):
            ffi.memmove(self.data + pos, p, len(p))
            self.c.off[i], self.c.caplen[i], self.c.wirelen[i] = pos, len(p), wire
            pos += len(p)
        self.c.base = self.data
        self.c.n = len(packets)
        self.c.linktype = linktype

    def kernel(self, prog, native):
        return bpf_select(self.c, prog, native)

    def stock(self, real, insns):
        arr = (Insn * len(insns))(*[Insn(*i) for i in insns])
        return [i for i, (p, wire) in enumerate(self.packets)
                if real.bpf_filter(arr, p, wire, len(p))]


def engine_program(insns):
    arr = ffi.new("mapi_bpf_insn[]", len(insns))
    for j, (code, jt, jf, k) in enumerate(insns):
        arr[j].code, arr[j].jt, arr[j].jf, arr[j].k = code, jt, jf, k
    return arr


def three_ways(pk, insns, real=None):
    """(interpreter, native, stock libpcap or None) selections of a program over pk."""
    code = bpf_jit.emit(insns)
    assert code is not None, insns
    arr = engine_program(insns)
    interp = pk.kernel(arr, None)
    native = pk.kernel(arr, code.address)
    return interp, native, (pk.stock(real, insns) if real is not None else None)


# --- every program the tests and the corpus filter with ---------------------------------------
FILTER_LISTS = {"EXPRESSIONS", "FITS", "BROADER", "FILTERS"}
INLINE = re.compile(r"""BPF_FILTER\(\\?(["'])(.*?)\\?\1\)""")


def expressions_of_the_tests():
    """BPF_FILTER arguments written in the tests, tools and demo (calls, flow tuples, flow
    strings of the CLI, lists of expressions), the corpus's tcpdump test filters, and a few
    that make libpcap emit backward jumps and arithmetic.  Some do not compile (tshark syntax,
    deliberate errors): the caller skips those."""
    found = set(EXTRA_EXPRESSIONS)
    files = sorted((ROOT / "tests").glob("*.py")) + sorted((ROOT / "tools").glob("*.py"))
    for f in files + [ROOT / "mapi" / "demo.py"]:
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, (ast.Tuple, ast.List, ast.Call)):
                elts = node.args if isinstance(node, ast.Call) else node.elts
                for a, b in zip(elts, elts[1:]):
                    if getattr(a, "value", None) == "BPF_FILTER" and isinstance(getattr(b, "value", None), str):
                        found.add(b.value)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                found.update(m.group(2) for m in INLINE.finditer(node.value))
            elif isinstance(node, ast.Assign) and any(getattr(t, "id", None) in FILTER_LISTS
                                                      for t in node.targets):
                found.update(e.value for e in ast.walk(node.value)
                             if isinstance(e, ast.Constant) and isinstance(e.value, str))
    tsv = CORPUS / "tcpdump_tests.tsv"
    if tsv.exists():
        with open(tsv, newline="") as f:
            for row in csv.DictReader(f, delimiter="\t"):
                if " -- " in row["effective_args"]:
                    found.add(row["effective_args"].split(" -- ", 1)[1])
    return sorted(found)


def captures():
    files = [generated("mixed.pcap"), generated("mixed.pcapng")]
    if have_corpus():
        for d in ("pcap", "tcpdump/pcap", "erf", "netflow", "derived"):
            files += sorted(p for p in (CORPUS / d).iterdir() if p.is_file())
    return files


def packets_by_linktype(files):
    groups = {}
    for path in files:
        recs, _, _ = read_source(path)
        for ts, caplen, wirelen, data, ifindex, linktype in recs or ():
            groups.setdefault(linktype, []).append((data, wirelen))
    return groups


def test_every_program_of_the_tests_and_the_corpus(libpcap):
    exprs = expressions_of_the_tests()
    assert len(exprs) > 60
    groups = packets_by_linktype(captures())
    programs = packets = 0
    for linktype, pkts in sorted(groups.items()):
        batches = [Packets(pkts[i:i + BATCH_CAP], linktype) for i in range(0, len(pkts), BATCH_CAP)]
        for expr in exprs:
            for optimize in (1, 0):
                try:
                    prog, n = compile_filter(expr, linktype, 262144, optimize=optimize)
                except MapiError:
                    continue
                insns = [(prog[j].code, prog[j].jt, prog[j].jf, prog[j].k) for j in range(n)]
                programs += 1
                for pk in batches:
                    interp, native, stock = three_ways(pk, insns, libpcap if optimize else None)
                    assert native == interp, (expr, linktype, optimize)
                    assert stock is None or stock == interp, (expr, linktype)
                    packets += len(pk.packets)
    assert programs > 150 and packets > 100000
    if have_corpus():
        assert len(groups) > 10                    # link types of the corpus


# --- random valid programs --------------------------------------------------------------------
ABS_LOADS = [0x20, 0x28, 0x30, 0xb1]
IND_LOADS = [0x40, 0x48, 0x50]
MISC = [0x80, 0x81, 0x00, 0x01, 0x60, 0x61, 0x02, 0x03, 0x07, 0x87]
ALU = [0x04, 0x14, 0x24, 0x34, 0x94, 0x54, 0x44, 0xa4, 0x64, 0x74, 0x84,
       0x0c, 0x1c, 0x2c, 0x3c, 0x9c, 0x5c, 0x4c, 0xac, 0x6c, 0x7c]
JUMPS = [0x25, 0x35, 0x15, 0x45, 0x2d, 0x3d, 0x1d, 0x4d, 0x05]
SKF_AD_OFF, SKF_NET_OFF, SKF_LL_OFF = 0xFFFFF000, 0xFFF00000, 0xFFE00000
LOAD_K = [0, 1, 2, 3, 12, 13, 14, 20, 23, 26, 30, 34, 40, 54, 60, 62, 63, 64, 65, 70, 89,
          0x7FFFFFF0, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFC, 0xFFFFFFFF,
          SKF_AD_OFF + 44, SKF_AD_OFF + 48, SKF_AD_OFF + 4, SKF_NET_OFF + 9, SKF_LL_OFF + 12]
ALU_K = [0, 1, 2, 3, 4, 7, 8, 10, 16, 31, 32, 33, 63, 0x80, 0xFF, 0x1000, 0x7FFFFFFF,
         0x80000000, 0xFFFFFF80, 0xFFFFFFFF]
JUMP_K = [0, 1, 6, 17, 0x800, 0x86dd, 0x7F, 0x80, 0xFF, 0x100, 0xFFFFFFFF, 0x80000000]


def random_program(rng):
    """A program libpcap's bpf_validate accepts: forward jumps in range, no division by a
    constant 0, scratch words stored before any load of them (libpcap leaves them undefined),
    ending in a return."""
    n = rng.randint(1, 40)
    body = []
    for i in range(n):
        left = n - i                      # instructions after this one, the final ret included
        r = rng.random()
        if r < 0.22:
            code = rng.choice(ABS_LOADS)
            k = rng.choice(LOAD_K + [rng.randrange(96), rng.getrandbits(32)])
        elif r < 0.34:
            code = rng.choice(IND_LOADS)
            k = rng.choice(LOAD_K + [rng.randrange(64)])
        elif r < 0.48:
            code = rng.choice(MISC)
            k = rng.randrange(16) if code in (0x60, 0x61, 0x02, 0x03) else \
                rng.choice([rng.randrange(64), rng.randrange(64), rng.getrandbits(32)] + ALU_K)
        elif r < 0.72:
            code = rng.choice(ALU)
            k = rng.choice(ALU_K + [rng.getrandbits(32), 1 << rng.randrange(32)])
            if code in (0x34, 0x94) and k == 0:
                k = rng.choice([1, 3, 256])
        else:
            code = rng.choice(JUMPS)
            k = rng.choice(JUMP_K + [rng.getrandbits(32), rng.randrange(64)])
            if code == 0x05:
                k = rng.randrange(left)
        jt = rng.randrange(min(left, 256)) if code in JUMPS else 0
        jf = rng.randrange(min(left, 256)) if code in JUMPS else 0
        body.append((code, jt, jf, k))
    body.append(rng.choice([(0x16, 0, 0, 0), (0x06, 0, 0, 0), (0x06, 0, 0, 1),
                            (0x06, 0, 0, 262144)]))
    used = sorted({k for code, _, _, k in body if code in (0x60, 0x61)})
    init = [i for w in used for i in ((0x00, 0, 0, rng.getrandbits(32)), (0x02, 0, 0, w))]
    return init + body


def random_packets(rng, real, count=48):
    out = []
    for _ in range(count):
        if real and rng.random() < 0.5:
            data, wire = rng.choice(real)
            data = data[:rng.choice([len(data), rng.randrange(len(data) + 1)])]
        else:
            data = bytes(rng.getrandbits(8) for _ in range(rng.choice([0, 1, 4, 14, 40, 64, 90,
                                                                       rng.randrange(100)])))
            wire = len(data)
        out.append((data, max(len(data), wire) + rng.choice([0, 0, 1, 1500])))
    return out


def test_random_programs_equal_the_interpreter_and_libpcap(libpcap):
    rng = random.Random(20261204)
    real = [(d, w) for _, _, w, d, _, _ in read_source(generated("mixed.pcap"))[0][:2000]]
    checked = accepted = 0
    pk = None
    for i in range(20000):
        if i % 100 == 0:
            pk = Packets(random_packets(rng, real))
        insns = random_program(rng)
        arr = (Insn * len(insns))(*[Insn(*x) for x in insns])
        assert libpcap.bpf_validate(arr, len(insns)) == 1, insns
        interp, native, stock = three_ways(pk, insns, libpcap)
        assert native == interp == stock, (insns, [(d.hex(), w) for d, w in pk.packets])
        checked += 1
        accepted += len(native)
    assert checked == 20000
    assert 0.05 < accepted / (checked * 48) < 0.95     # both outcomes are well exercised


def test_division_by_a_constant_zero_rejects_like_the_interpreter():
    """libpcap's validator refuses these (its bpf_filter would divide by zero); the engine's
    interpreter and the native code reject the packet."""
    pk = Packets([(bytes(range(60)), 60), (b"", 0)])
    for prog in ([(0x00, 0, 0, 5), (0x34, 0, 0, 0), (0x06, 0, 0, 1)],
                 [(0x00, 0, 0, 5), (0x94, 0, 0, 0), (0x06, 0, 0, 1)],
                 [(0x01, 0, 0, 0), (0x00, 0, 0, 9), (0x3c, 0, 0, 0), (0x06, 0, 0, 1)],
                 [(0x01, 0, 0, 0), (0x00, 0, 0, 9), (0x9c, 0, 0, 0), (0x06, 0, 0, 1)]):
        interp, native, _ = three_ways(pk, prog)
        assert native == interp == []
    interp, native, _ = three_ways(pk, [(0x01, 0, 0, 3), (0x00, 0, 0, 9), (0x9c, 0, 0, 0),
                                        (0x16, 0, 0, 0)])
    assert native == interp == []                                     # 9 % 3 == 0: ret a rejects
    interp, native, _ = three_ways(pk, [(0x01, 0, 0, 4), (0x00, 0, 0, 9), (0x9c, 0, 0, 0),
                                        (0x16, 0, 0, 0)])
    assert native == interp == [0, 1]


def test_an_opcode_outside_classic_bpf_stays_with_the_interpreter(caplog):
    caplog.set_level(logging.INFO, logger="mapi.bpf_jit")
    prog = [(0x00, 0, 0, 1), (0xff, 0, 0, 0), (0x06, 0, 0, 1)]
    assert bpf_jit.emit(prog) is None
    assert bpf_jit.compile_native(prog) is None
    assert "opcode 0xff is not classic BPF" in caplog.text


def test_code_is_never_writable_and_executable():
    code = bpf_jit.emit([(0x28, 0, 0, 12), (0x15, 0, 1, 0x800), (0x06, 0, 0, 1), (0x06, 0, 0, 0)])
    maps = Path("/proc/self/maps").read_text().splitlines()
    mine = [m for m in maps
            if int(m.split()[0].split("-")[0], 16) <= code.address < int(m.split()[0].split("-")[1], 16)]
    assert len(mine) == 1 and mine[0].split()[1] == "r-xp", mine
    assert bpf_jit.emit([(0x28, 0, 0, 12), (0x15, 0, 1, 0x800), (0x06, 0, 0, 1),
                         (0x06, 0, 0, 0)]) is code               # one mapping per program


def test_no_compiler_and_no_cache_directory(tmp_path):
    """BPF_FILTER runs native code in a process that has no C compiler on its PATH and whose
    home directory gets no compiled code (the plugin registry's discovery cache is all)."""
    path = generated("mixed.pcap")
    script = ("import mapi\n"
              "dev = mapi.create_offline_device(%r)\n"
              "fd = mapi.create_flow(dev)\n"
              "f = mapi.apply_function(fd, 'BPF_FILTER', 'tcp port 80')\n"
              "c = mapi.apply_function(fd, 'PKT_COUNTER')\n"
              "mapi.connect(fd)\n"
              "mapi.start_offline_device(dev)\n"
              "mapi.wait_offline_device(dev)\n"
              "print(mapi.read_results(fd, c).value, mapi.get_function_info(fd, f)['native'])\n"
              % str(path))
    home = tmp_path / "home"
    home.mkdir()
    env = dict(os.environ, PATH=str(tmp_path / "nothing"), CC="/nonexistent/cc", HOME=str(home),
               PYTHONPATH=str(ROOT), XDG_CACHE_HOME=str(tmp_path / "registry-cache"))
    env.pop("MAPI_CACHE_DIR", None)
    env.pop("MAPI_BPF_JIT", None)
    r = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    recs, err = tcpdump_records(path, "tcp port 80")
    assert recs is not None, err
    assert r.stdout.split() == [str(len(recs)), "[1]"]
    assert list(home.iterdir()) == []
