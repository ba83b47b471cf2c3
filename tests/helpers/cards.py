"""The emulated cards (COMBO6, DAG) as their tests drive them: units configured by hand and
their tag bits checked against libpcap's BPF interpreter, and whole jobs replayed through a
card and through software for comparison."""
import pytest

import mapi
from mapi._engine import ffi, lib
from mapi.batch import BatchPool
from mapi.bpf import compile_filter
from mapi.hardware import Assignment, HardwareConfig
from mapi.registry import get_registry

from helpers import DATA, sample

# Ethernet captures of the corpus (pcap/) the card tests run on, and those of them tests/data carries
ETHERNET_FILES = ["PcapPlusPlus__4KHttpRequests.pcap", "PcapPlusPlus__example.pcap",
                  "PcapPlusPlus__VlanPackets.pcap", "PcapPlusPlus__DnsPackets.pcap",
                  "PcapPlusPlus__ip6_fragments.pcap", "libtrace__100_packets.pcap",
                  "PcapPlusPlus__ip4_fragments.pcap", "libtrace__qinq.pcap", "zeek__http-vlan-0.pcap",
                  "zeek__mixed-vlan-mpls.pcap", "libpcap__rarp_req_reply.pcapng", "zeek__wikipedia.pcap",
                  "PcapPlusPlus__frag_with_padding.pcap", "PcapPlusPlus__tls2.pcap",
                  "suricata-verify__defrag__bug-6887-defrag-eth-vlan-ipv6-tcp__frag-eth-vlan-ipv6-tcp.pcap"]
CARRIED_ETHERNET_FILES = [sample("pcap/" + n) for n in ETHERNET_FILES if (DATA / "pcap" / n).exists()]


def module_trace(tmp_path_factory, name, packets, seed):
    """A trace the generator writes once for a test module: (path, its TraceStats)."""
    from mapi.tracegen import write_trace
    path = tmp_path_factory.mktemp("trace") / name
    return path, write_trace(str(path), packets=packets, seed=seed)


# --- the units alone ------------------------------------------------------------------------
def frames(card):
    """Replay a card's link: yields the batches that cross its bus (a view of each batch)."""
    pool = BatchPool(1)
    b = pool.get()
    while card.next_batch_into(b):
        try:
            yield card.process(b)
        finally:
            if b.keep is not None:
                b.keep.release()
            b.keep = None


def filter_config(card, unit_name, exprs, deliver_all=True):
    desc = get_registry().function("BPF_FILTER")
    unit = card.unit(unit_name)
    assigns = []
    for e in exprs:
        offer = unit.offer(desc, (e,), card)
        assert offer is not None, e
        assigns.append(Assignment(hw_id=len(assigns), unit=unit_name, function="BPF_FILTER",
                                  args=(e,), offer=offer, parent_hw_id=None, deliver=True,
                                  key=len(assigns)))
    card.configure(HardwareConfig(assignments=assigns, deliver_all=deliver_all))
    return assigns


def check_tags_against_bpf(card, assigns, exact_required):
    """Every packet's tag bit equals libpcap's verdict (exact) or covers it (superset)."""
    progs = [compile_filter(a.args[0], 1, 262144) for a in assigns]
    checked = 0
    for out in frames(card):
        for j in range(out.n):
            pkt = ffi.buffer(out.base + out.off[j], out.caplen[j])[:]
            for a, (prog, _) in zip(assigns, progs):
                want = lib.mapi_bpf_run(prog, pkt, out.wirelen[j], out.caplen[j]) != 0
                got = bool(out.tags[j] >> a.hw_id & 1)
                if a.offer.exact:
                    assert got == want, (a.args[0], out.seq[j])
                else:
                    assert got or not want, (a.args[0], out.seq[j])
            checked += 1
    if exact_required:
        assert all(a.offer.exact for a in assigns), [a.args[0] for a in assigns if not a.offer.exact]
    return checked


def configure(card, specs, deliver_all=True):
    """specs: [(unit, function, args, parent_hw_id)] -> assignments (hw_id = position)."""
    reg = get_registry()
    assigns = []
    for unit_name, function, args, parent in specs:
        offer = card.unit(unit_name).offer(reg.function(function), args, card)
        assigns.append(Assignment(hw_id=len(assigns), unit=unit_name, function=function,
                                  args=args, offer=offer, parent_hw_id=parent, deliver=True,
                                  key=100 + len(assigns)))
    card.configure(HardwareConfig(assignments=assigns, deliver_all=deliver_all))
    return assigns


# --- whole jobs ----------------------------------------------------------------------------------
class Ref:
    """An "F" argument: function `fid_index` of flow `flow_index` of the same job."""

    def __init__(self, flow_index, fid_index):
        self.flow, self.fid = flow_index, fid_index


def run(path, jobs, backend=None, packets_of=(), **options):
    """Replay `path` through flows [[(name, *args)]]: (results, infos, device info, packets)
    where packets[k] lists (seq, ts, data) read from TO_BUFFER of flow packets_of[k]."""
    dev = mapi.create_offline_device(str(path), backend=backend, **options)
    try:
        flows = []
        for job in jobs:
            fd = mapi.create_flow(dev)
            fids = []
            for name, *args in job:
                args = [(flows[a.flow][0], flows[a.flow][1][a.fid]) if isinstance(a, Ref) else a
                        for a in args]
                fids.append(mapi.apply_function(fd, name, *args))
            mapi.connect(fd)
            flows.append((fd, fids))
        mapi.start_offline_device(dev)
        packets = []
        for k in packets_of:
            fd, fids = flows[k]
            pk = []
            while True:
                p = mapi.get_next_pkt(fd, fids[-1])
                if p is None:
                    break
                pk.append((p.seq, p.ts, bytes(p.data)))
            packets.append(pk)
        mapi.wait_offline_device(dev)
        results = [[_plain(mapi.read_results(fd, f).value) for f in fids] for fd, fids in flows]
        infos = [[mapi.get_function_info(fd, f) for f in fids] for fd, fids in flows]
        return results, infos, mapi.get_device_info(dev), packets
    finally:
        mapi.delete_offline_device(dev)


def _plain(v):
    if isinstance(v, dict):
        return {k: x for k, x in v.items() if k not in ("delivered",)}
    return v


def assert_same_results(hard, soft, infos):
    """hard == soft.  Until mapi/device.py reads hw_result() for hardware filters that have a
    result (SAMPLE on the SAU), those entries are checked at the end and reported as xfail."""
    pending = []
    assert len(hard) == len(soft)
    for f, (h, s, inf) in enumerate(zip(hard, soft, infos)):
        for k, (x, y, i) in enumerate(zip(h, s, inf)):
            if x != y and i.get("placement") in ("SAU", "PCK", "HASH") and not _nonzero(x):
                pending.append((f, k))
                continue
            assert x == y, (f, k, i["name"], i.get("placement"))
    return pending


def _nonzero(v):
    return v.get("selected") if isinstance(v, dict) else v


def finish(pending):
    if pending:
        pytest.xfail("mapi/device.py Device.result() reads the idle software instance of %d "
                     "hardware filter(s) with a result (SAMPLE, STR_SEARCH, HASHSAMP); the card's hw_result has the count" % len(pending))


def placements(infos):
    return [[i.get("placement") for i in flow] for flow in infos]
