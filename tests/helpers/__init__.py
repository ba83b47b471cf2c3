"""What the tests share, in one place: where the repository and the sample corpus are, the
generated traces that stand in for corpus captures, the stock tools used as references, and
the one replay helper.  Test modules import from this package (its submodules: savefile,
intervals, cards), never from each other and never from conftest.py.

The sample corpus (public captures with tcpdump/tshark/nfdump reference outputs) is not part of
the repository.  It is looked for at $SCAMPI_CORPUS, else at ../shared/corpus beside the clone.
Tests that need it carry the `corpus` mark (`@needs_corpus`, or `parametrize_from_corpus` for
parameters read from it); without it they are skipped with CORPUS_REASON, and nothing here reads
the corpus when a module is imported."""
import functools
import os
import shutil
import socket
import subprocess
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:                 # tools/ (the trace generator) is not installed
    sys.path.insert(0, str(ROOT))

CORPUS = Path(os.path.abspath(os.environ.get("SCAMPI_CORPUS") or ROOT.parent / "shared" / "corpus"))
CORPUS_REASON = ("needs the SCAMPI sample corpus at %s (set SCAMPI_CORPUS to use another place)"
                 % CORPUS)
DATA = ROOT / "tests" / "data"                # small captures the repository carries (see README)
# corpus captures several function tests compare on by name (they need the corpus)
CORPUS_HTTP = CORPUS / "pcap" / "PcapPlusPlus__4KHttpRequests.pcap"
CORPUS_EXAMPLE = CORPUS / "pcap" / "PcapPlusPlus__example.pcap"
CORPUS_TLS = CORPUS / "pcap" / "PcapPlusPlus__tls2.pcap"

needs_corpus = pytest.mark.corpus


def have_corpus():
    return (CORPUS / "manifest.tsv").is_file()


def corpus_path(*parts):
    """A path in the corpus (not checked: tests using it carry the `corpus` mark)."""
    return CORPUS.joinpath(*parts)


def manifest():
    """{absolute path: row} of the corpus's manifest.tsv (one row per data file)."""
    rows = {}
    with open(CORPUS / "manifest.tsv", encoding="utf-8") as f:
        head = f.readline().rstrip("\n").split("\t")
        for line in f:
            row = dict(zip(head, line.rstrip("\n").split("\t")))
            rows[str(CORPUS / row["file"])] = row
    return rows


def parametrize_from_corpus(argnames, values, ids=None):
    """pytest.mark.parametrize whose `values` is a function reading the corpus: it is called at
    collection, and only when the corpus is there; without it the test is collected once and
    skipped (conftest.py's pytest_generate_tests does the work)."""
    return pytest.mark.corpus_values(argnames, values, ids=ids)


def sample(name):
    """A real capture by its corpus-relative name: the copy the repository carries under
    tests/data when it has one (tests/data/README.md), else the corpus's own (a test using such
    a file carries the corpus mark)."""
    carried = DATA / name
    return carried if carried.exists() else CORPUS / name


def inputs(values, base=""):
    """Parameter sets whose first value is a capture, for pytest.mark.parametrize: a generated
    trace (a path from generated()) runs everywhere; a corpus file, named relative to the
    corpus's folder `base` (or an absolute path into the corpus), runs on the copy under
    tests/data when the repository carries one and otherwise carries the corpus mark.  Ids are
    the file names and the other values."""
    out = []
    for v in values:
        first, *rest = v if isinstance(v, tuple) else (v,)
        first, marks = _resolved(first, base)
        ids = [name_of(first)] + [x if isinstance(x, str) else repr(x) for x in rest
                                  if isinstance(x, (str, int, float))]
        out.append(pytest.param(first, *rest, marks=marks, id="-".join(ids)))
    return out


def corpus_marks(name, base=""):
    """The marks of a test using capture `name` (as for inputs()): none for a generated trace
    or a file tests/data carries, else the corpus mark."""
    return _resolved(name, base)[1]


def _resolved(name, base):
    path = Path(name)
    if path in _GENERATED_NAMES or DATA in path.parents:
        return name, ()
    rel = os.path.relpath(path, CORPUS) if path.is_absolute() else os.path.join(base, name)
    if (DATA / rel).exists():
        return DATA / rel, ()
    return (path if path.is_absolute() else CORPUS / rel), needs_corpus


def name_of(path):
    """A capture's name for test ids: the TRACES key of a generated trace, else the file name."""
    return _GENERATED_NAMES.get(Path(path)) or os.path.basename(path)


def file_sets(own_files, corpus_files):
    """Parameters for a test that loops over several captures: files the repository generates
    or carries (run everywhere), and the corpus's (with the corpus mark)."""
    return [pytest.param(list(own_files), id="own-files"),
            pytest.param(list(corpus_files), marks=needs_corpus, id="corpus")]


# --- generated traces -------------------------------------------------------------------------
# Stand-ins for the corpus captures the core tests used, made by tools/gentrace.py (seeded, so
# byte-identical on every machine) into build/test-traces on first use.  References stay
# independent: tests count with tcpdump, tshark or dpkt on these files, never with our code.
TRACES = {
    # ~15 s of mixed traffic (TCP/UDP/ICMP, IPv4/IPv6, HTTP, DNS), as many packets as the corpus's
    # PcapPlusPlus example.pcap: sub-second to one-second intervals hold ~30-300 packets
    "mixed.pcap": dict(packets=4631, seed=1, rate=300),
    "mixed-ns.pcap": dict(packets=4631, seed=1, rate=300, fmt="pcap-ns"),
    "mixed.pcapng": dict(packets=4631, seed=1, rate=300, fmt="pcapng"),
    "mixed.erf": dict(packets=4631, seed=1, rate=300, fmt="erf"),
    # the same mix, 3.4 MB: three copies fill more than one engine batch (8 MB of file)
    "mixed-6k.pcap": dict(packets=6000, seed=7, rate=400),
    # ~15 minutes of sparse traffic: minute-long intervals, some nearly empty (event tests)
    "slow.pcap": dict(packets=600, seed=4, rate=0.66),
    # IPv4 TCP only (web, ssh and other servers), ~7 s
    "tcp4.pcap": dict(packets=2000, seed=6, rate=300, mix={"tcp4": 1}),
    # 100 packets in ~100 s
    "hundred.pcap": dict(packets=100, seed=4, rate=1.0),
    # 1,800 packets over ~3 years: ~26,000 hours, ~97 million seconds, nearly all empty
    "years.pcap": dict(packets=1800, seed=5, rate=1800 / (3 * 365.25 * 86400)),
    # TCP (IPv4 and IPv6) as reassembly meets it: retransmitted, reordered and overlapping
    # segments (mapi.tracegen.impair), ~10 s
    "tcp-impaired.pcap": dict(packets=3000, seed=11, rate=300, mix={"tcp4": 85, "tcp6": 15},
                              impair={"retransmit": 0.04, "reorder": 0.04, "overlap": 0.03}),
    # 40,000 packets of the mix (24 MB): read compressed, many batches in reused buffers
    "mixed-40k.pcap": dict(packets=40000, seed=3, rate=3000),
    # the mixed traffic with a fifth of its IPv4 and IPv6 packets sent as fragments
    "fragments.pcap": dict(packets=3000, seed=12, rate=300, impair={"fragment": 0.2}),
}


_GENERATED_NAMES = {}                         # path -> name, for test ids


@functools.lru_cache(maxsize=None)
def generated(name):
    """Path of the generated trace `name` (a key of TRACES), made if missing.  The file name
    carries a digest of the generator's version and the arguments, so a changed generator or
    entry never serves a stale file."""
    import hashlib
    from tools import gentrace
    spec = dict(TRACES[name])
    version = gentrace.generator_version()
    if spec.get("impair"):
        from mapi.tracegen import impair
        version += impair.version()
    key = repr((version, sorted(spec.items())))
    stem, ext = os.path.splitext(name)
    digest = hashlib.sha256(key.encode()).hexdigest()[:10]
    path = ROOT / "build" / "test-traces" / ("%s-%s%s" % (stem, digest, ext))
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = "%s.%d.tmp" % (path, os.getpid())        # parallel runs: the last rename wins
        gentrace.write_trace(tmp, spec.pop("packets"), fmt=spec.pop("fmt", "pcap"), **spec)
        os.replace(tmp, path)
    _GENERATED_NAMES[path] = name
    return path


def free_port(kind=socket.SOCK_STREAM):
    """A port of 127.0.0.1 nothing is bound to now: TCP, or UDP with kind=socket.SOCK_DGRAM."""
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def register_backends(*modules):
    """Register backend plugin modules (modules or dotted names) with the registry, each once:
    a work tree's backends that the installed entry points do not declare."""
    import importlib
    from mapi.registry import get_registry
    reg = get_registry()
    for module in modules:
        if isinstance(module, str):
            module = importlib.import_module(module)
        if not any(d.name in reg.backends for d in module.scampi_backends()):
            reg.register(module, name="test-backend-" + module.__name__.rsplit(".", 1)[-1])


def backends_fixture(*modules):
    """A module-scoped autouse fixture that registers `modules` (register_backends)."""
    @pytest.fixture(scope="module", autouse=True)
    def backends_registered():
        register_backends(*modules)
    return backends_registered


# --- stock tools as references ----------------------------------------------------------------
def need_tool(name):
    """Skip loudly if a stock reference tool is missing (make test installs them all)."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin")
    if path is None:
        pytest.skip("%s is not installed (make test installs it)" % name)
    return path


def apply_error(trace, function, *args, **kwargs):
    """The MapiError that apply_function(fd, function, *args, **kwargs) raises on a flow of an
    offline device of `trace` (the test fails when it raises none)."""
    import mapi
    dev = mapi.create_offline_device(str(trace))
    try:
        fd = mapi.create_flow(dev)
        with pytest.raises(mapi.MapiError) as e:
            mapi.apply_function(fd, function, *args, **kwargs)
        return e.value
    finally:
        mapi.delete_offline_device(dev)


def need_netns(what=None):
    """Skip, naming `what` and the reason, unless this process can create network namespaces
    and veth pairs (root and iproute2) for a live test."""
    from tools import netns
    ok, why = netns.can_create()
    if not ok:
        pytest.skip("%s: %s" % (what, why) if what else why)


def tcpdump_records(path, expr="", extra=()):
    """(ts_us, caplen, wirelen, data) of the records `tcpdump -r path expr -w -` selects."""
    import dpkt
    import io
    cmd = [need_tool("tcpdump"), "-r", str(path), "-w", "-", *extra] + ([expr] if expr else [])
    out = subprocess.run(cmd, capture_output=True, timeout=120)
    if not out.stdout:
        return None, out.stderr.decode(errors="replace")
    reader = dpkt.pcap.Reader(io.BytesIO(out.stdout))
    return [(ts, len(buf), buf) for ts, buf in reader], out.stderr.decode(errors="replace")


def tcpdump_pcap(path, expr):
    """[(ts_ns, wire length, bytes)] of the records `tcpdump -r path -w - expr` writes."""
    import gzip
    import struct
    path = str(path)
    feed = None
    if path.endswith(".gz"):           # tcpdump reads plain files only
        with gzip.open(path, "rb") as f:
            feed, path = f.read(), "-"
    out = subprocess.run([need_tool("tcpdump"), "-r", path, "-w", "-", expr], input=feed,
                         capture_output=True, timeout=60).stdout
    order = "<" if out[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    scale = 1 if out[:4] in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d") else 1000
    pos, recs = 24, []
    while pos + 16 <= len(out):
        sec, frac, incl, orig = struct.unpack(order + "IIII", out[pos:pos + 16])
        recs.append((sec * 10 ** 9 + frac * scale, orig, out[pos + 16:pos + 16 + incl]))
        pos += 16 + incl
    return recs


def linktype_of(path):
    """LINKTYPE_ value from a classic pcap file's header."""
    import struct
    head = open(path, "rb").read(24)
    order = "<" if head[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    return struct.unpack(order + "I", head[20:24])[0] & 0xFFFF


# --- replaying a file through MAPI --------------------------------------------------------------
def replay(path, flow, buffer=True, timeout=None):
    """Replay `path` on a new offline device.

    `flow` is either the calls of one flow, [(name, args, kwargs)]: then a TO_BUFFER is added
    (when `buffer`) and read to the end, the device is deleted, and a namespace comes back with
    before (results right after connect), results, infos, packets (mapi Packets) and batches
    (of the device).  Or it is a function setup(dev) that creates and connects the flows
    itself: then (dev, what setup returned) comes back once the replay ended, and the caller
    reads the results and deletes the device."""
    import mapi
    dev = mapi.create_offline_device(str(path))
    if callable(flow):
        got = flow(dev)
        mapi.start_offline_device(dev)
        mapi.wait_offline_device(dev, timeout=timeout or 120)
        return dev, got
    try:
        fd = mapi.create_flow(dev)
        fids = [mapi.apply_function(fd, name, *args, **kw) for name, args, kw in flow]
        buf = mapi.apply_function(fd, "TO_BUFFER") if buffer else None
        mapi.connect(fd)
        before = [mapi.read_results(fd, f) for f in fids]
        mapi.start_offline_device(dev)
        packets = []
        while buf is not None:
            p = mapi.get_next_pkt(fd, buf, timeout)
            if p is None:
                break
            packets.append(p)
        mapi.wait_offline_device(dev, timeout)
        return types.SimpleNamespace(
            before=before, results=[mapi.read_results(fd, f) for f in fids],
            infos=[mapi.get_function_info(fd, f) for f in fids], packets=packets,
            batches=mapi.get_device_info(dev)["batches"])
    finally:
        mapi.delete_offline_device(dev)
