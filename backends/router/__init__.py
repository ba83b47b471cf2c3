"""``router`` backend: a router's mirror (SPAN) port, with what the router can do before
mirroring advertised to the module mapper as hardware.

    fd = mapi.create_flow("router:eth1", acl_rules=64, counters=16)     # mirror = a live link
    dev = mapi.create_offline_device("trace.pcap", backend="router")     # mirror = a trace

Units (mapi.hardware contract):
  ACL        FILTER: BPF_FILTER as ACL entries on header fields -- ethertype, IPv4 protocol and
             addresses (any prefix), IPv6 next header and addresses, TCP/UDP ports (equal, greater,
             at least: port ranges), "not a later fragment" -- one entry per accepting path of
             the filter (mapi/bpf_analysis.py), at most `acl_rules` entries in all.  A filter
             whose paths test anything else (TCP flags, payload, ARP fields, VLAN tags...) is
             placed as the superset the entries express and refined in software.
  IFCOUNTERS STATISTIC: PKT_COUNTER, BYTE_COUNTER as interface counters (on the whole link) or
             ACL entry hit counters (after an ACL filter), at most `counters` of them.
Only packets some software node needs cross the mirror port; get_device_info()["hardware"]
reports link and mirror packets/bytes and each unit's occupancy.  The emulation runs in C over
batches (mirror.c, a cffi module of this package).  The mirrored link is another backend's
source, opened through the registry: a ring capture (live) or a savefile (offline).
"""
import logging

from mapi import bpf_analysis, hookimpl, native
from mapi.batch import BATCH_CAP
from mapi.bpf import compile_insns
from mapi.descriptor import BackendDescriptor, PacketSource, parse_options
from mapi.errors import MapiError
from mapi.hardware import FILTER, STATISTIC, HardwareDevice, HardwareError, HardwareUnit, Offer
from mapi.registry import get_registry

from ._mirror import ffi, lib

native.bind_engine(ffi, lib, __name__)

log = logging.getLogger("mapi.router")

LINKTYPE_ETHERNET = 1
OPS = {"eq": lib.MAPI_ACL_EQ, "gt": lib.MAPI_ACL_GT, "ge": lib.MAPI_ACL_GE, "set": lib.MAPI_ACL_SET}
FRAGMENT = (20, 2, "set", 0x1FFF)            # IPv4 fragment offset: "not a later fragment"


def expressible(c):
    """Can an ACL entry test this condition of a BPF path (Ethernet frames)?"""
    ld = c.load
    if ld.kind == "abs":
        field = (ld.offset, ld.size)
        if (ld.offset, ld.size, c.op, c.k) == FRAGMENT:
            return True                               # either way: "fragments" qualifiers
        if not c.positive:
            return False
        if c.mask == 0:                               # "the packet holds this field"
            return field in HEADER_FIELDS or (ld.size == 4 and 22 <= ld.offset <= 50)
        if field == (12, 2) or field == (23, 1) or field == (20, 1) or field == (54, 1):
            return c.op == "eq"                       # ethertype, IPv4 proto, IPv6 next header
        if field in ((26, 4), (30, 4)) or (ld.size == 4 and 22 <= ld.offset <= 50 and (ld.offset - 22) % 4 == 0):
            return c.op == "eq"                       # addresses under any mask
        if field in ((54, 2), (56, 2)):
            return c.op in ("eq", "gt", "ge") and c.mask == 0xFFFF     # IPv6 ports
        return False
    if ld.kind == "ind" and ld.xbase == 14 and c.positive and (ld.offset, ld.size) in ((14, 2), (16, 2)):
        return c.mask == 0 or (c.op in ("eq", "gt", "ge") and c.mask == 0xFFFF)   # IPv4 ports
    return False


HEADER_FIELDS = {(12, 2), (23, 1), (26, 4), (30, 4), (20, 1), (20, 2), (54, 1), (54, 2), (56, 2)}


class AclUnit(HardwareUnit):
    name = "ACL"
    kind = FILTER
    functions = ("BPF_FILTER",)
    doc = "router ACL entries on addresses, ports and protocol"

    def __init__(self, rules):
        self.limits = {"rules": rules}

    def offer(self, desc, args, device):
        if device.linktype != LINKTYPE_ETHERNET:
            return None
        try:
            insns = compile_insns(args[0], device.linktype, device.snaplen)
        except MapiError:
            return None
        a = bpf_analysis.analyze(insns)
        if not a.complete or not a.paths:
            return None
        kept = tuple(tuple(c for c in p if expressible(c)) for p in a.paths)
        if any(not k or all(c.mask == 0 for c in k) for k in kept):
            return None                               # an entry would permit (nearly) anything
        exact = all(len(k) == len(p) for k, p in zip(kept, a.paths))
        return Offer(exact=exact, demand={"rules": len(kept)}, params=kept,
                     note="%d ACL entr%s%s" % (len(kept), "y" if len(kept) == 1 else "ies",
                                              "" if exact else ", superset"))


class CounterUnit(HardwareUnit):
    name = "IFCOUNTERS"
    kind = STATISTIC
    functions = ("PKT_COUNTER", "BYTE_COUNTER")
    doc = "interface counters, or ACL entry hit counters after an ACL filter"

    def __init__(self, counters):
        self.limits = {"counters": counters}

    def offer(self, desc, args, device):
        return Offer(exact=True, demand={"counters": 1}, note="hardware counter")


class _Mirror:
    """The batch that crosses the mirror port: arrays owned by the router, packets where the
    source put them."""
    __slots__ = ("c", "arrays", "plugin_c")

    def __init__(self):
        eng_ffi, _ = native.engine()
        self.c = eng_ffi.new("mapi_batch *")
        self.plugin_c = native.plugin_pointer(ffi, self.c)
        self.arrays = (ffi.new("uint64_t[]", BATCH_CAP), ffi.new("uint32_t[]", BATCH_CAP),
                       ffi.new("uint32_t[]", BATCH_CAP), ffi.new("int64_t[]", BATCH_CAP),
                       ffi.new("uint16_t[]", BATCH_CAP), ffi.new("uint64_t[]", BATCH_CAP),
                       ffi.new("uint64_t[]", BATCH_CAP))
        c = self.c
        c.off, c.caplen, c.wirelen, c.ts, c.ifindex, c.seq, c.tags = self.arrays
        c.cap = BATCH_CAP


class RouterSource(PacketSource, HardwareDevice):
    """A mirror port (the inner source) behind the router's ACL and counters."""

    def __init__(self, inner, name, acl_rules=64, counters=16):
        self.inner = inner
        self.name = name
        self.offline = inner.offline
        self.nsec = inner.nsec
        self.linktype = inner.linktype
        self.snaplen = inner.snaplen
        self.acl_rules, self.counters = acl_rules, counters
        self.r = ffi.new("mapi_router *")
        self.r.deliver_all = 1
        self.config = None
        self._keep = ()
        self.by_hw = {}
        self.mirror = _Mirror()

    # packet source ops: the mirrored link
    def next_batch_into(self, batch):
        more = self.inner.next_batch_into(batch)
        self.linktype = self.inner.linktype
        return more

    def release(self, batch):
        self.inner.release(batch)

    def stats(self):
        return self.inner.stats()

    def info(self):
        d = self.inner.info()
        d.update(backend="router", router=dict(acl_rules=self.acl_rules, counters=self.counters))
        return d

    def close(self):
        self.inner.close()

    # hardware
    def units(self):
        return [AclUnit(self.acl_rules), CounterUnit(self.counters)]

    def configure(self, config):
        rules, conds, used = [], [], {"rules": 0, "counters": 0}
        nodes = []
        for a in sorted(config.assignments, key=lambda a: a.hw_id):
            if a.unit == AclUnit.name:
                first = len(rules)
                for path in a.offer.params:
                    rules.append((len(conds), len(path)))
                    conds.extend(path)
                used["rules"] += len(a.offer.params)
                nodes.append((a, lib.MAPI_ROUTER_FILTER, first, len(a.offer.params)))
            elif a.unit == CounterUnit.name:
                used["counters"] += 1
                nodes.append((a, lib.MAPI_ROUTER_COUNTER, 0, 0))
            else:
                raise HardwareError("%s has no unit %s" % (self.name, a.unit), [a.hw_id])
        if used["rules"] > self.acl_rules or used["counters"] > self.counters:
            raise HardwareError("%s: %d ACL entries / %d counters over the router's %d / %d"
                                % (self.name, used["rules"], used["counters"], self.acl_rules,
                                   self.counters))
        if any(a.hw_id != i for i, (a, _, _, _) in enumerate(nodes)):
            raise HardwareError("%s: hardware node ids must be 0..n-1" % self.name)
        c_rules = ffi.new("mapi_acl_rule[]", max(1, len(rules)))
        for i, (first, n) in enumerate(rules):
            c_rules[i].first, c_rules[i].n = first, n
        c_conds = ffi.new("mapi_acl_cond[]", max(1, len(conds)))
        for i, c in enumerate(conds):
            cc = c_conds[i]
            cc.kind = lib.MAPI_ACL_IND if c.load.kind == "ind" else lib.MAPI_ACL_ABS
            cc.size, cc.off, cc.xbase = c.load.size, c.load.offset, c.load.xbase or 0
            cc.op, cc.mask, cc.k = OPS[c.op], c.mask, c.k
            cc.negate = 0 if c.positive else 1
        old = {a.key: self.r.nodes[a.hw_id] for a in (self.config.assignments if self.config else [])}
        carried = {k: (n.packets, n.bytes, n.last_ts) for k, n in old.items()}
        r = self.r
        r.rules, r.conds = c_rules, c_conds
        r.nnodes = len(nodes)
        r.deliver_all = 1 if config.deliver_all else 0
        for i, (a, kind, first, n) in enumerate(nodes):
            nd = r.nodes[i]
            nd.kind, nd.first_rule, nd.nrules = kind, first, n
            nd.parent = -1 if a.parent_hw_id is None else a.parent_hw_id
            nd.deliver = 1 if a.deliver else 0
            nd.packets, nd.bytes, nd.last_ts = carried.get(a.key, (0, 0, 0))
        self._keep = (c_rules, c_conds)
        self.config = config
        self.by_hw = {a.hw_id: a for a, _, _, _ in nodes}
        self.used = used

    def process(self, batch):
        if self.config is None:
            return batch
        lib.mapi_router_process(self.r, native.plugin_pointer(ffi, batch.c), self.mirror.plugin_c)
        return self.mirror

    def hw_result(self, hw_id):
        a = self.by_hw[hw_id]
        nd = self.r.nodes[hw_id]
        return (nd.bytes if a.function == "BYTE_COUNTER" else nd.packets), nd.last_ts

    def hw_info(self):
        r = self.r
        return dict(link_packets=r.link_packets, link_bytes=r.link_bytes,
                    mirror_packets=r.mirror_packets, mirror_bytes=r.mirror_bytes,
                    acl_rules_used=getattr(self, "used", {}).get("rules", 0), acl_rules=self.acl_rules,
                    counters_used=getattr(self, "used", {}).get("counters", 0), counters=self.counters,
                    nodes=[dict(hw_id=i, unit=a.unit, function=a.function, args=list(a.args),
                                packets=r.nodes[i].packets, bytes=r.nodes[i].bytes)
                           for i, a in sorted(self.by_hw.items())])


ROUTER_OPTIONS = {"acl_rules": (int, 64), "counters": (int, 16)}


LINK_OPTIONS = ("snaplen", "promisc", "direction", "block_size", "block_count", "block_timeout_ms")


def open_live(ifname, options=None):
    """The mirror port of a live interface: a TPACKET_V3 ring capture (the ring backend's, its
    options checked there) without a kernel filter (the router filters)."""
    options = dict(options or {})
    link = {k: options.pop(k) for k in LINK_OPTIONS if k in options}
    opts = parse_options("router:%s" % ifname, options, ROUTER_OPTIONS)
    inner = get_registry().backend("ring").open_live(ifname, dict(link, kernel_filter=False))
    return RouterSource(inner, "router:%s" % ifname, opts["acl_rules"], opts["counters"])


def open_offline(path, fmt=None, options=None):
    opts = parse_options("router offline device", options, ROUTER_OPTIONS)
    inner = get_registry().backend("savefile").open_offline(path, fmt, {})
    return RouterSource(inner, path, opts["acl_rules"], opts["counters"])


@hookimpl
def scampi_backends():
    return [BackendDescriptor(
        name="router",
        doc="a router's mirror port: ACL filters and interface counters as hardware units",
        open_live=open_live,
        open_offline=open_offline,
        capabilities={"units": ["ACL", "IFCOUNTERS"]},
    )]
