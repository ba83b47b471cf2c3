"""Coverage-guided fuzzing of every parser that reads untrusted bytes.

    python fuzz/run.py [--seconds N] [--only NAME,...] [--list]    (make fuzz SECONDS=N)

Builds each libFuzzer target with clang (ASan + UBSan, LeakSanitizer on) under build/fuzz/,
lays out its seeds (copied from the shared corpus, or derived from it, at run time: nothing of
the corpus is committed), runs it for N seconds with its dictionary and prints executions,
coverage (edges) and crashes per target.  A target that crashes is restarted for the rest of
its time, so one bug does not hide the next; crashing inputs are kept in
build/fuzz/NAME/crashes/ and printed with the command that replays them (for the C targets:
build/fuzz/NAME/NAME FILE).  Exit status 1 if any target crashed, failed to build or executed
no input at all (a broken target must not pass as a clean one).

Corpora grow in build/fuzz/NAME/corpus across runs.  The atheris targets (Python) run in the
project's virtualenv; they are skipped with a message if atheris is not installed.
"""
import argparse
import concurrent.futures
import glob
import os
import re
import shutil
import struct
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FUZZ = os.path.join(ROOT, "fuzz")
BUILD = os.path.join(ROOT, "build", "fuzz")
CORPUS = os.environ.get("SCAMPI_CORPUS", os.path.join(os.path.dirname(ROOT), "shared", "corpus"))
CFLAGS = ["-g", "-O1", "-fsanitize=fuzzer,address,undefined", "-fno-sanitize-recover=undefined",
          "-fno-omit-frame-pointer", "-std=gnu11", "-Wall", "-Wno-unused-function"]

ENGINE = "mapi/csrc"
READERS = [ENGINE + "/pcap.c", ENGINE + "/pcapng.c", ENGINE + "/erf.c"]
# The NetFlow/IPFIX collector's C (moving to backends/netflow/): its only mention here.
# the collector's decoder and template cache (transport.c, the socket side, is left out)
NETFLOW = "backends/netflow"
NETFLOW_SOURCES = [NETFLOW + "/state.c", NETFLOW + "/records.c", NETFLOW + "/messages.c"]
SHIM = sorted(f for f in glob.glob(os.path.join(ROOT, "libpcap_shim/csrc/*.c"))
              if not f.endswith("/python.c"))
# the drop-in's client of mapid: the ring reader and protoc-c's code (make shim generates it)
SHIM_PROTO = "build/libpcap_shim/proto"
SHIM += [ENGINE + "/ring.c", SHIM_PROTO + "/mapi.pb-c.c"]
SHIM_INCLUDES = ["libpcap_shim/csrc", ENGINE, SHIM_PROTO]
SHIM_LIBS = ["-ldl", "-lpthread", "-lprotobuf-c"]


class Target:
    def __init__(self, name, sources, seeds, max_len, includes=(ENGINE,), defines=(), libs=(),
                 python=None):
        self.name, self.sources, self.seeds, self.max_len = name, list(sources), seeds, max_len
        self.includes, self.defines, self.libs, self.python = includes, defines, libs, python
        self.dir = os.path.join(BUILD, name)
        self.exe = os.path.join(self.dir, name)
        self.dict = os.path.join(FUZZ, "dict", name.split("_")[0] + ".dict")


def _files(*patterns, exclude=(".gz", ".xz", ".bz2")):
    out = []
    for p in patterns:
        out += [f for f in sorted(glob.glob(os.path.join(CORPUS, p))) if not f.endswith(exclude)]
    return out


def _copy_seeds(files, limit):
    return [(os.path.basename(f), open(f, "rb").read()[:limit]) for f in files]


def seeds_pcap(t):
    return _copy_seeds(_files("pcap/*.pcap", "tcpdump/pcap/*.pcap", "netflow/*.pcap"), t.max_len)


def seeds_pcapng(t):
    return _copy_seeds(_files("pcap/*.pcapng", "**/*.pcapng"), t.max_len)


def seeds_erf(t):
    return _copy_seeds(_files("erf/*.erf", "derived/*.erf"), t.max_len)


def seeds_header(t):
    return _copy_seeds(_files("pcap/*.pcap*", "tcpdump/pcap/*.pcap", "erf/*.erf"), t.max_len)


def _pcap_packets(path, limit=200):
    """(linktype, [frame bytes]) of a classic pcap file (either byte order)."""
    data = open(path, "rb").read()
    if len(data) < 24:
        return None, []
    order = {b"\xd4\xc3\xb2\xa1": "<", b"\x4d\x3c\xb2\xa1": "<", b"\xa1\xb2\xc3\xd4": ">",
             b"\xa1\xb2\x3c\x4d": ">"}.get(data[:4])
    if order is None:
        return None, []
    linktype = struct.unpack(order + "I", data[20:24])[0]
    out, pos = [], 24
    while pos + 16 <= len(data) and len(out) < limit:
        cap = struct.unpack(order + "I", data[pos + 8:pos + 12])[0]
        out.append(data[pos + 16:pos + 16 + cap])
        pos += 16 + cap
    return linktype, out


def _udp_payloads(frame):
    """The UDP payload of an Ethernet/IPv4 or IPv6 frame (optionally VLAN-tagged), or None."""
    off, etype = 12, frame[12:14]
    while etype == b"\x81\x00":
        off += 4
        etype = frame[off:off + 2]
    off += 2
    if etype == b"\x08\x00" and len(frame) > off + 20 and frame[off + 9] == 17:
        off += (frame[off] & 15) * 4
    elif etype == b"\x86\xdd" and len(frame) > off + 40 and frame[off + 6] == 17:
        off += 40
    else:
        return None
    return frame[off + 8:]


def seeds_netflow(t):
    out = []
    for f in _files("netflow/*.pcap", "derived/*nfv*.pcap", "derived/*ipfix*.pcap"):
        _, frames = _pcap_packets(f, limit=64)
        blob = b""
        for i, fr in enumerate(frames):
            pl = _udp_payloads(fr)
            if pl:
                blob += bytes([(i * 37) & 0x83]) + struct.pack(">H", len(pl)) + pl
        if blob:
            out.append((os.path.basename(f), blob[:t.max_len]))
    return out


BPF_FILTERS = ["", "ip", "tcp port 80", "udp and port 53", "vlan and tcp", "ip6 protochain 6",
               "tcp[13] & 2 != 0", "ether[0] & 1 = 1", "len > 100", "ip[2:2] > 576",
               "icmp[icmptype] == icmp-echo", "net 10.0.0.0/8 and not port 22",
               "tcp[((tcp[12:1] & 0xf0) >> 2):4] = 0x47455420", "ip6 and udp", "arp or rarp",
               "ip[6:2] & 0x1fff != 0", "ether host 00:11:22:33:44:55", "portrange 1-1023"]


def seeds_bpf(t):
    """Programs libpcap compiles for common filters, each with a packet of the corpus."""
    code = ("import sys, struct\nfrom mapi.bpf import compile_insns\n"
            "for e in sys.argv[1:]:\n"
            "    p = compile_insns(e, 1, 262144)\n"
            "    sys.stdout.buffer.write(struct.pack('<H', len(p)) + b''.join("
            "struct.pack('=HBBI', *i) for i in p))\n")
    env = dict(os.environ, PYTHONPATH=ROOT)
    raw = subprocess.run([sys.executable, "-c", code] + BPF_FILTERS, capture_output=True,
                         check=True, env=env, cwd=ROOT).stdout
    progs, pos = [], 0
    while pos < len(raw):
        n = struct.unpack_from("<H", raw, pos)[0]
        progs.append((n, raw[pos + 2:pos + 2 + 8 * n]))
        pos += 2 + 8 * n
    frames = []
    for f in _files("pcap/PcapPlusPlus__*.pcap")[:12]:
        frames += _pcap_packets(f, limit=3)[1]
    out = []
    for i, (n, prog) in enumerate(progs):
        for j, fr in enumerate(frames[i % 5::7][:4]):
            out.append(("prog%02d-pkt%d" % (i, j), bytes([(n - 1) % 256, j * 40]) + prog + fr[:1500]))
    return out


def seeds_flow(t):
    lines = ['BPF_FILTER("tcp port 80") web=PKT_COUNTER BYTE_COUNTER',
             'BPF_FILTER("udp port 53") SAMPLE(10, PERIODIC) PKT_COUNTER',
             'THRESHOLD(GREATER, web, 1000)', 'BPF_FILTER("ip") TOP(3, "ip.src")',
             'STR_SEARCH("|0d 0a|Host:") TO_FILE(MFF_PCAP, "/dev/null")',
             'HASHSAMP(0.5) BUCKET(1e6) STATS(x)', "REGEXP('GET /[a-z]+', 2) PKT_COUNTER",
             "TOP(n=5, field=\"ip.dst\", by=[1, 0x1f, 2.5e3], flag=true)"]
    return [("flow%d" % i, l.encode()) for i, l in enumerate(lines)]


TARGETS = [
    Target("pcap_reader", READERS + ["fuzz/targets/savefile_reader.c"], seeds_pcap, 65536,
           defines=["FUZZ_FORMAT=MAPI_FMT_PCAP"]),
    Target("pcapng_reader", READERS + ["fuzz/targets/savefile_reader.c"], seeds_pcapng, 65536,
           defines=["FUZZ_FORMAT=MAPI_FMT_PCAPNG"]),
    Target("erf_reader", READERS + ["fuzz/targets/savefile_reader.c"], seeds_erf, 65536,
           defines=["FUZZ_FORMAT=MAPI_FMT_ERF"]),
    Target("bpf", [ENGINE + "/bpf.c", "fuzz/targets/bpf.c", "fuzz/targets/shim_stubs.c"] + SHIM
           + READERS, seeds_bpf, 4096, includes=SHIM_INCLUDES, libs=SHIM_LIBS),
    Target("shim_savefile", ["fuzz/targets/shim_savefile.c", "fuzz/targets/shim_stubs.c",
                             ENGINE + "/bpf.c"] + SHIM + READERS, seeds_header, 4096,
           includes=SHIM_INCLUDES, libs=SHIM_LIBS),
    Target("flow_language", [], seeds_flow, 512, python="fuzz/py/flow_language.py"),
    Target("netflow", NETFLOW_SOURCES + ["fuzz/targets/netflow.c"], seeds_netflow, 65536,
           includes=sorted({os.path.dirname(s) for s in NETFLOW_SOURCES} | {ENGINE, ENGINE + "/fn"})),
]


def build(t):
    os.makedirs(t.dir, exist_ok=True)
    if t.python:
        return True
    srcs = [os.path.join(ROOT, s) for s in t.sources]
    if os.path.exists(t.exe) and all(os.path.getmtime(s) <= os.path.getmtime(t.exe)
                                     for s in srcs + glob.glob(os.path.join(ROOT, ENGINE, "*.h"))):
        return True
    cmd = (["clang"] + CFLAGS + ["-I" + os.path.join(ROOT, i) for i in t.includes]
           + ["-D" + d for d in t.defines] + srcs + list(t.libs) + ["-o", t.exe])
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        print("fuzz: building %s failed:\n%s" % (t.name, r.stderr[-3000:]), file=sys.stderr)
        return False
    return True


def replay_command(t, path):
    """How to run one input through the target again (relative to the repository root)."""
    exe = (os.path.relpath(sys.executable, ROOT) + " " + t.python) if t.python else \
        os.path.relpath(t.exe, ROOT)
    return "%s %s" % (exe, os.path.relpath(path, ROOT))


def _report(out):
    """The sanitizer's or libFuzzer's report in a target's output: from its first ERROR line."""
    lines = out.split("Shadow bytes around")[0].splitlines()
    first = next((i for i, l in enumerate(lines) if "ERROR:" in l or "runtime error:" in l
                  or "Traceback" in l), max(0, len(lines) - 30))
    return "\n".join(lines[first:first + 40])


def lay_seeds(t):
    d = os.path.join(t.dir, "seeds")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    if not os.path.isdir(CORPUS) and t.seeds is not seeds_flow:
        print("fuzz: %s: no corpus at %s, starting without seeds" % (t.name, CORPUS))
        return d
    for name, data in t.seeds(t):
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
    return d


def command(t, seconds, seeds):
    corpus = os.path.join(t.dir, "corpus")
    crashes = os.path.join(t.dir, "crashes")
    os.makedirs(corpus, exist_ok=True)
    os.makedirs(crashes, exist_ok=True)
    args = ["-max_total_time=%d" % max(1, seconds), "-max_len=%d" % t.max_len, "-timeout=10",
            "-rss_limit_mb=2048", "-print_final_stats=1", "-artifact_prefix=" + crashes + "/",
            "-dict=" + t.dict, corpus, seeds]
    if t.python:
        return [sys.executable, os.path.join(ROOT, t.python)] + args
    return [t.exe] + args


def run(t, seconds):
    """Fuzz t for `seconds`; restarts after a crash.  (executions, edges, crash files)."""
    seeds = lay_seeds(t)
    crashes_dir = os.path.join(t.dir, "crashes")
    before = set(glob.glob(os.path.join(crashes_dir, "*")))
    execs, edges, deadline = 0, 0, time.time() + seconds
    env = dict(os.environ, PYTHONPATH=ROOT,
               ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=1",
               UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
    log = open(os.path.join(t.dir, "last.log"), "w")
    reports = []
    while True:
        left = int(deadline - time.time())
        if left < 1:
            break
        out = subprocess.run(command(t, left, seeds), capture_output=True, text=True, env=env,
                             cwd=t.dir, errors="replace").stderr
        log.write(out)
        m = re.findall(r"stat::number_of_executed_units:\s*(\d+)", out)
        execs += int(m[-1]) if m else max([int(x) for x in re.findall(r"^#(\d+)", out, re.M)] or [0])
        edges = max([edges] + [int(x) for x in re.findall(r"\bcov: (\d+)", out)])
        if "Test unit written to" not in out and "ERROR:" not in out:
            break
        reports.append(_report(out))
        if "INITED" not in out:          # it crashed on the seeds: go on without them
            seeds = os.path.join(t.dir, "corpus")
    log.close()
    found = sorted(set(glob.glob(os.path.join(crashes_dir, "*"))) - before)
    if found:
        print("fuzz: %s crashed (the first report of %d):\n%s" % (t.name, len(reports), (reports or [""])[0]),
              file=sys.stderr)
        for f in found:
            print("fuzz: %s: reproducer %s\n      replay: %s"
                  % (t.name, os.path.relpath(f, ROOT), replay_command(t, f)), file=sys.stderr)
    return execs, edges, found


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=int, default=int(os.environ.get("SECONDS_PER_TARGET", 30)),
                    help="per target (default 30)")
    ap.add_argument("--only", default="", help="comma-separated target names")
    ap.add_argument("--list", action="store_true")
    a = ap.parse_args(argv)
    targets = [t for t in TARGETS if not a.only or t.name in a.only.split(",")]
    if a.list:
        print("\n".join(t.name for t in targets))
        return 0
    if shutil.which("clang") is None:
        print("fuzz: clang is not installed (make fuzz installs it)", file=sys.stderr)
        return 2
    try:
        os.nice(10)                      # other work on the machine goes first
    except OSError:
        pass
    rows, failed = [], False
    # the targets build side by side (one clang each, as many as there are cores)
    with concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        built = dict(zip([t.name for t in targets], pool.map(build, targets)))
    for t in targets:
        if t.python and subprocess.run([sys.executable, "-c", "import atheris"],
                                       capture_output=True).returncode != 0:
            rows.append((t.name, "-", "-", "skipped: atheris is not installed"))
            continue
        if not built[t.name]:
            rows.append((t.name, "-", "-", "BUILD FAILED"))
            failed = True
            continue
        execs, edges, found = run(t, a.seconds)
        if not execs:            # a target that never ran its input tests nothing
            print("fuzz: %s executed no input; its output: %s"
                  % (t.name, os.path.relpath(os.path.join(t.dir, "last.log"), ROOT)), file=sys.stderr)
            failed = True
        failed |= bool(found)
        rows.append((t.name, execs, edges, "%d%s" % (len(found), "".join(
            "\n    " + os.path.relpath(f, ROOT) for f in found))))
    print("%-16s %12s %7s  %s" % ("TARGET", "EXECUTIONS", "EDGES", "CRASHES"))
    total = 0
    for name, execs, edges, crashes in rows:
        total += execs if isinstance(execs, int) else 0
        print("%-16s %12s %7s  %s" % (name, execs, edges, crashes))
    print("%-16s %12d" % ("total", total))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
