"""The module mapper with a small hardware device defined here: placements, superset filters
refined in software, limits (newest requests fall back), refusals and failing units.  Whatever
the placement, every result must equal the plain software path."""
import pytest

import mapi
from mapi import bpf_analysis
from mapi._engine import ffi
from mapi.descriptor import BackendDescriptor
from mapi.hardware import (FILTER, STATISTIC, HardwareDevice, HardwareError, HardwareUnit, Offer)
from mapi.registry import get_registry
from scampi.backends.savefile import SavefileSource
from mapi.bpf import compile_filter
from helpers import CORPUS, generated, needs_corpus

TRACE = str(generated("mixed.pcap"))
EXAMPLE = str(CORPUS / "pcap/PcapPlusPlus__example.pcap")      # has traffic of host 10.0.0.6


class ToyCam(HardwareUnit):
    """Filters on fixed-offset header bytes only; port tests (IP-header-relative) are dropped,
    so such filters run as supersets."""
    name, kind, functions, limits = "TOYCAM", FILTER, ("BPF_FILTER",), {"rules": 16}

    def offer(self, desc, args, device):
        prog, n = compile_filter(args[0], device.linktype, device.snaplen)
        a = bpf_analysis.analyze([(prog[j].code, prog[j].jt, prog[j].jf, prog[j].k) for j in range(n)])
        if not a.complete or not a.paths:
            return None
        kept = tuple(tuple(c for c in p if c.load.kind == "abs" and c.positive) for p in a.paths)
        exact = all(len(k) == len(p) for k, p in zip(kept, a.paths))
        return Offer(exact=exact, demand={"rules": len(kept)}, params=kept,
                     note="%d rules%s" % (len(kept), "" if exact else ", superset"))


class ToyCounters(HardwareUnit):
    name, kind, functions, limits = "TOYSTU", STATISTIC, ("PKT_COUNTER", "BYTE_COUNTER"), {"sets": 2}

    def offer(self, desc, args, device):
        return Offer(exact=True, demand={"sets": 1}, note="counter set")


class ToyCard(SavefileSource, HardwareDevice):
    """Runs its units in Python per packet: fine for a test on a small file, never in the engine."""

    refuse = False
    raise_in_offer = False

    def __init__(self, path):
        super().__init__(path)
        self.config = None
        self.counts = {}
        self.bus_packets = 0
        self._tags = ffi.new("uint64_t[]", 65536)
        self._seq = ffi.new("uint64_t[]", 65536)
        self._arrays = None

    def units(self):
        cam = ToyCam()
        if self.raise_in_offer:
            cam.offer = lambda *a: 1 / 0
        return [cam, ToyCounters()]

    def configure(self, config):
        if self.refuse:
            raise HardwareError("toy card refuses everything", [a.hw_id for a in config.assignments])
        self.config = config
        self.counts = {a.key: self.counts.get(a.key, [0, 0, 0]) for a in config.assignments}

    def process(self, batch):
        c = batch.c
        by_id = {a.hw_id: a for a in (self.config.assignments if self.config else [])}
        keep = []
        for i in range(c.n):
            pkt = bytes(ffi.buffer(c.base + c.off[i], c.caplen[i]))
            tags = 0
            for hw_id in sorted(by_id):
                a = by_id[hw_id]
                if a.parent_hw_id is not None and not (tags >> a.parent_hw_id) & 1:
                    continue
                if a.unit == "TOYCAM":
                    ok = any(all(_holds(c_, pkt) for c_ in path) for path in a.offer.params)
                else:
                    ok = True
                    cnt = self.counts[a.key]
                    cnt[0] += 1
                    cnt[1] += c.wirelen[i]
                    cnt[2] = c.ts[i]
                if ok:
                    tags |= 1 << hw_id
            self._tags[i] = tags
            deliver = self.config is None or self.config.deliver_all or any(
                (tags >> a.hw_id) & 1 for a in by_id.values() if a.deliver)
            if deliver:
                keep.append(i)
        # compact what crosses the bus into our own arrays (packets stay where they are)
        out = ffi.new("mapi_batch *")
        arrays = [ffi.new("uint64_t[]", max(1, len(keep))), ffi.new("uint32_t[]", max(1, len(keep))),
                  ffi.new("uint32_t[]", max(1, len(keep))), ffi.new("int64_t[]", max(1, len(keep))),
                  ffi.new("uint16_t[]", max(1, len(keep))), ffi.new("uint64_t[]", max(1, len(keep))),
                  ffi.new("uint64_t[]", max(1, len(keep)))]
        off, cap, wl, ts, ifx, seq, tg = arrays
        for j, i in enumerate(keep):
            off[j], cap[j], wl[j], ts[j], ifx[j] = c.off[i], c.caplen[i], c.wirelen[i], c.ts[i], c.ifindex[i]
            seq[j] = c.first_seq + i
            tg[j] = self._tags[i]
        out.base, out.off, out.caplen, out.wirelen, out.ts, out.ifindex = c.base, off, cap, wl, ts, ifx
        out.n = out.cap = len(keep)
        out.linktype = c.linktype
        out.first_seq = c.first_seq
        out.seq, out.tags = seq, tg
        self._arrays = (out, arrays)
        self.bus_packets += len(keep)
        return out

    def hw_result(self, hw_id):
        a = next(a for a in self.config.assignments if a.hw_id == hw_id)
        cnt = self.counts[a.key]
        return (cnt[0] if a.function == "PKT_COUNTER" else cnt[1]), cnt[2]

    def hw_info(self):
        return {"bus_packets": self.bus_packets}


def _holds(cond, pkt):
    off, size = cond.load.offset, cond.load.size
    if off + size > len(pkt):
        return False
    return cond.holds(int.from_bytes(pkt[off:off + size], "big"))


class ToyPlugin:
    card = None

    @mapi.hookimpl
    def scampi_backends(self):
        def open_offline(path, fmt=None, options=None):
            ToyPlugin.card = ToyCard(path)
            ToyCard.refuse = (options or {}).get("refuse", False)
            ToyCard.raise_in_offer = (options or {}).get("raise_in_offer", False)
            return ToyPlugin.card
        return [BackendDescriptor(name="toycard", open_offline=open_offline)]


@pytest.fixture(scope="module", autouse=True)
def toy_backend():
    reg = get_registry()
    if "toycard" not in reg.backends:
        reg.register(ToyPlugin(), name="toycard-test")


JOBS = [
    ["BPF_FILTER('host 10.0.0.6')", "PKT_COUNTER", "BYTE_COUNTER"],
    ["BPF_FILTER('tcp port 80')", "PKT_COUNTER", "BYTE_COUNTER"],
    ["BPF_FILTER('udp')", "BPF_FILTER('port 53')", "PKT_COUNTER"],
    ["BPF_FILTER('ip6')", "PKT_COUNTER"],
    ["BPF_FILTER('arp')", "PKT_COUNTER"],
    ["PKT_COUNTER", "BYTE_COUNTER"],
]


def run(jobs, path=TRACE, **device_options):
    dev = mapi.create_offline_device(path, **device_options)
    flows = []
    for job in jobs:
        fd = mapi.create_flow(dev)
        fids = []
        for call in job:
            name, _, rest = call.partition("(")
            args = (rest.rstrip(")").strip("'"),) if rest else ()
            fids.append(mapi.apply_function(fd, name, *args))
        mapi.connect(fd)
        flows.append((fd, fids))
    mapi.start_offline_device(dev)
    mapi.wait_offline_device(dev)
    results = [[mapi.read_results(fd, f).value for f in fids[1:] if f] for fd, fids in flows]
    info = [[mapi.get_function_info(fd, f) for f in fids] for fd, fids in flows]
    return dev, results, info


def test_results_equal_software_wherever_nodes_run():
    _, soft, _ = run(JOBS)
    dev, hard, info = run(JOBS, backend="toycard")
    assert hard == soft
    placements = {i[0]["args"][0] if i[0]["args"] else i[0]["name"]: i[0]["placement"] for i in info}
    assert placements["host 10.0.0.6"] == "TOYCAM"
    assert placements["tcp port 80"] == "TOYCAM"          # as a superset
    f80 = info[1][0]
    assert f80["hw_exact"] is False and "superset" in f80["hw_note"]
    assert info[0][0]["hw_exact"] is True


def test_units_full_newest_fall_back_and_results_stay_exact():
    jobs = [["BPF_FILTER('host 10.0.0.%d')" % i, "PKT_COUNTER"] for i in (6, 138, 1, 2, 3)]
    _, soft, _ = run(jobs)
    _, hard, info = run(jobs, backend="toycard")
    assert hard == soft
    where = [i[0]["placement"] for i in info]
    # each host filter needs 6 rules (IPv4 src/dst, ARP, RARP) of 16: the oldest two fit
    assert where[0] == "TOYCAM" and where[-1] == "software"
    assert "full" in info[-1][0]["hw_note"]
    # counters: 2 sets, given to the oldest flows whose filters are in hardware
    counters = [i[1]["placement"] for i in info]
    assert counters.count("TOYSTU") <= 2


def test_device_refusing_configuration_falls_back_to_software():
    _, soft, _ = run(JOBS)
    _, hard, info = run(JOBS, backend="toycard", refuse=True)
    assert hard == soft
    assert all(f["placement"] == "software" for flow in info for f in flow)
    assert "refused" in info[0][0]["hw_note"]


def test_unit_that_raises_is_a_unit_that_says_no():
    _, soft, _ = run(JOBS)
    _, hard, info = run(JOBS, backend="toycard", raise_in_offer=True)
    assert hard == soft
    assert info[0][0]["placement"] == "software"
    assert "failed" in info[0][0]["hw_note"]


@needs_corpus
def test_only_needed_packets_cross_the_bus():
    # one flow: an exact hardware filter feeding hardware counters; nothing needs packets
    dev, res, info = run([["BPF_FILTER('host 10.0.0.6')", "PKT_COUNTER"]], EXAMPLE, backend="toycard")
    assert info[0][1]["placement"] == "TOYSTU"
    assert mapi.get_device_info(dev)["hardware"]["bus_packets"] == 0
    assert res[0][0] > 0


def test_commuting_filters_are_ordered_by_cost_and_shared():
    """Two flows asking for the same two stateless filters in opposite orders share one prefix,
    and the counters (barriers) stay where each flow put them."""
    dev = mapi.create_offline_device(TRACE)
    a = mapi.create_flow(dev)
    mapi.apply_function(a, "BPF_FILTER", "tcp")
    mapi.apply_function(a, "BPF_FILTER", "port 80")
    ca = mapi.apply_function(a, "PKT_COUNTER")
    b = mapi.create_flow(dev)
    mapi.apply_function(b, "BPF_FILTER", "port 80")
    mapi.apply_function(b, "BPF_FILTER", "tcp")
    cb = mapi.apply_function(b, "PKT_COUNTER")
    c = mapi.create_flow(dev)
    cc0 = mapi.apply_function(c, "PKT_COUNTER")         # a barrier: filters may not cross it
    mapi.apply_function(c, "BPF_FILTER", "tcp")
    cc1 = mapi.apply_function(c, "PKT_COUNTER")
    for fd in (a, b, c):
        mapi.connect(fd)
    mapi.start_offline_device(dev)
    mapi.wait_offline_device(dev)
    from helpers import tcpdump_records
    n80 = len(tcpdump_records(TRACE, "tcp and port 80")[0])
    ntcp = len(tcpdump_records(TRACE, "tcp")[0])
    nall = len(tcpdump_records(TRACE)[0])
    assert mapi.read_results(a, ca).value == n80 == mapi.read_results(b, cb).value
    assert mapi.read_results(c, cc0).value == nall and mapi.read_results(c, cc1).value == ntcp
    nodes = mapi.explain_data(dev)["nodes"]
    firsts = [n for n in nodes if n["depth"] == 0]
    assert sum(1 for n in firsts if n["shared"]) == 1      # flows a and b share their prefix
    assert len(firsts) == 2                                # and flow c has its own counter


class Nonsense(HardwareUnit):
    name, kind, functions, limits = "BAD", "teleporter", ("BPF_FILTER",), {"rules": "lots"}


class LiarUnit(HardwareUnit):
    name, kind, functions, limits = "LIAR", FILTER, ("BPF_FILTER",), {"rules": 4}

    def offer(self, desc, args, device):
        return "sure, whatever"


def test_backend_advertising_nonsense_falls_back_to_software(monkeypatch, caplog):
    _, soft, _ = run(JOBS)
    monkeypatch.setattr(ToyCard, "units", lambda self: [Nonsense(), LiarUnit(), 42])
    _, hard, info = run(JOBS, backend="toycard")
    assert hard == soft
    assert all(f["placement"] == "software" for flow in info for f in flow)
    assert "nonsense" in caplog.text and "not an Offer" in info[0][0]["hw_note"]


def test_plugin_whose_hook_raises_is_reported_not_fatal():
    from mapi.registry import Registry

    class Broken:
        @mapi.hookimpl
        def scampi_functions(self):
            raise RuntimeError("boom")

    reg = Registry()
    reg.register(Broken(), name="broken-plugin")
    assert "BPF_FILTER" in reg.functions                     # the others still load
    assert any(p == "broken-plugin" and "boom" in m for p, m in reg.problems)


def test_closing_the_owner_keeps_the_shared_node_for_the_others():
    dev = mapi.create_offline_device(TRACE)
    a = mapi.create_flow(dev)
    mapi.apply_function(a, "BPF_FILTER", "tcp")
    mapi.apply_function(a, "PKT_COUNTER")
    b = mapi.create_flow(dev)
    mapi.apply_function(b, "BPF_FILTER", "tcp")
    cb = mapi.apply_function(b, "PKT_COUNTER")
    mapi.connect(a)
    mapi.connect(b)
    assert mapi.get_function_info(b, 1)["shared_with"] == [a]
    mapi.close_flow(a)                                       # the creator leaves
    mapi.start_offline_device(dev)
    mapi.wait_offline_device(dev)
    from helpers import tcpdump_records
    assert mapi.read_results(b, cb).value == len(tcpdump_records(TRACE, "tcp")[0])
    assert [n["owners"] for n in mapi.explain_data(dev)["nodes"]] == [[(b, 1)], [(b, 2)]]
