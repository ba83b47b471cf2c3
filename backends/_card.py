"""Plumbing shared by the emulated cards (COMBO6, DAG): the card as a packet source with
hardware, BPF conditions translated into the header units' matches, and configurations compiled
into the C structures that mapi/csrc/card_emu.c runs over each batch.

A card reads its "link" (a trace file) through the savefile backend; every raw batch goes
through the card's units in one C call (process()), and the batch handed to the engine lists
only the packets that cross the emulated bus (seq = their device-wide index, tags = the hardware
nodes they passed).  The packets themselves never move.
"""
import threading

from mapi import bpf_analysis
from mapi._engine import ffi, lib
from mapi.batch import BATCH_CAP
from mapi.descriptor import PacketSource
from mapi.errors import MapiError, EBADARG, EFORMAT, ENOTSUP
from mapi.hardware import (FILTER, STATISTIC, HardwareDevice, HardwareError, HardwareUnit,
                           MAX_HW_NODES, Offer)

LINKTYPE_ETHERNET = 1
REC_ABS = lib.CARD_HDR_ABS          # header bytes [0, 72) of the frame
REC_IND = lib.CARD_HDR_IND          # bytes after the IPv4 header
XBASES = (14, 18)                   # ldxb 4*([14]&0xf) untagged, 4*([18]&0xf) one VLAN tag
CAM_ENTRY_BYTES = 34                # 272 bits
OPS = {"eq": lib.CARD_OP_EQ, "gt": lib.CARD_OP_GT, "ge": lib.CARD_OP_GE, "set": lib.CARD_OP_SET}
_FULL = {1: 0xFF, 2: 0xFFFF, 4: 0xFFFFFFFF}

# Names of the unified header's fields (for notes and explain); byte windows as BPF loads see
# them on Ethernet frames, untagged (L2 = 14) and with one VLAN tag (L2 = 18).
_FIELDS = [("eth.dst", 0, 6), ("eth.src", 6, 6), ("eth.type", 12, 2)]
for _l2, _pre in ((14, ""), (18, "vlan.")):
    if _l2 == 18:
        _FIELDS += [("vlan.tci", 14, 2), ("vlan.type", 16, 2)]
    _FIELDS += [(_pre + n, _l2 + o, s) for n, o, s in (
        ("ip.vhl", 0, 1), ("ip.tos", 1, 1), ("ip.len", 2, 2), ("ip.id", 4, 2), ("ip.frag", 6, 2),
        ("ip.ttl", 8, 1), ("ip.proto", 9, 1), ("ip.sum", 10, 2), ("ip.src", 12, 4),
        ("ip.dst", 16, 4), ("arp.spa", 14, 4), ("arp.tpa", 24, 4),
        ("ip6.flow", 0, 4), ("ip6.plen", 4, 2), ("ip6.nxt", 6, 1), ("ip6.hlim", 7, 1),
        ("ip6.src", 8, 16), ("ip6.dst", 24, 16), ("ip6.sport", 40, 2), ("ip6.dport", 42, 2),
        ("ip6.tcpflags", 53, 1))]
_L4 = [("sport", 0, 2), ("dport", 2, 2), ("tcp.seq", 4, 4), ("tcp.ack", 8, 4), ("tcp.hlen", 12, 1),
       ("tcp.flags", 13, 1), ("tcp.win", 14, 2)]


def field_name(load):
    """A readable name for a BPF load on an Ethernet frame."""
    if load.kind == "len":
        return "len"
    if load.kind == "abs":
        for name, o, s in _FIELDS:
            if o <= load.offset and load.offset + load.size <= o + s:
                return name
        return "ether[%d:%d]" % (load.offset, load.size)
    pre = "vlan." if load.xbase == 18 else ""
    rel = load.offset - (load.xbase or 0)
    for name, o, s in _L4:
        if o <= rel and rel + load.size <= o + s:
            return pre + name
    return "l4[%d:%d]" % (rel, load.size)


def analyze_filter(expr, linktype, snaplen):
    """bpf_analysis of the program libpcap compiles for `expr`, or None if it does not compile."""
    from mapi.bpf import compile_insns
    try:
        return bpf_analysis.analyze(compile_insns(expr, linktype, snaplen))
    except MapiError:
        return None


def locate(load, abs_limit=REC_ABS, ind=True):
    """(window, first record byte, bytes needed in the window) of a load the header record
    holds, or None."""
    if load.kind == "abs":
        if load.offset + load.size <= abs_limit:
            return lib.CARD_WIN_ABS, load.offset, load.offset + load.size
        return None
    if load.kind == "ind" and ind and load.xbase in XBASES:
        w = XBASES.index(load.xbase)
        rel = load.offset - load.xbase
        if 0 <= rel and rel + load.size <= REC_IND:
            return lib.CARD_WIN_IND14 + w, REC_ABS + w * REC_IND + rel, rel + load.size
    return None


class MatchSpec:
    """Value/mask over record bytes plus how many bytes of each window must be present (a CAM
    entry or a DSM bit-mask filter).  Hashable, so identical entries are stored once."""

    __slots__ = ("need", "bytes")

    def __init__(self, need=(0, 0, 0), nbytes=()):
        self.need = tuple(need)
        self.bytes = tuple(sorted(nbytes))         # (pos, val, mask), mask != 0

    def key(self):
        return (self.need, self.bytes)

    def __eq__(self, other):
        return isinstance(other, MatchSpec) and self.key() == other.key()

    def __hash__(self):
        return hash(self.key())


def _cond_bytes(pos, size, mask, value):
    """Big-endian (pos, val, mask) bytes of `(field & mask) == value` on a size-byte field."""
    out = []
    for j in range(size):
        shift = 8 * (size - 1 - j)
        m = (mask >> shift) & 0xFF
        if m:
            out.append((pos + j, (value >> shift) & m, m))
    return out


class _Builder:
    """Accumulates one path's hit entry: byte value/mask and needs."""

    def __init__(self):
        self.need = [0, 0, 0]
        self.bytes = {}            # pos -> [val, mask]
        self.impossible = False

    def require(self, win, end):
        self.need[win] = max(self.need[win], end)

    def add(self, triples):
        for pos, val, mask in triples:
            old = self.bytes.get(pos)
            if old is None:
                self.bytes[pos] = [val, mask]
                continue
            if (old[0] ^ val) & old[1] & mask:
                self.impossible = True     # two equalities that cannot both hold
            old[0] |= val & mask
            old[1] |= mask

    def spec(self):
        return MatchSpec(self.need, [(p, v, m) for p, (v, m) in self.bytes.items()])


def _single_bit(x):
    return x and not (x & (x - 1))


class PathProgram:
    """One accepting path of a BPF filter in a header unit: a hit entry, entries that must miss,
    comparisons; `dropped`: conditions the unit could not express (the path is broadened)."""

    def __init__(self):
        self.hit = None
        self.misses = []
        self.cmps = []
        self.dropped = []


def translate_path(path, abs_limit, ind, comparator):
    """A PathProgram for one accepting path, or None if the path can never hold."""
    b = _Builder()
    prog = PathProgram()
    for c in path:
        full = _FULL.get(c.load.size, 0xFFFFFFFF)
        mask = c.mask & full
        loc = locate(c.load, abs_limit, ind) if c.load.kind != "len" else None
        if loc is None:
            if comparator and c.load.kind == "len":
                prog.cmps.append((lib.CARD_WIN_LEN, 0, 4, OPS[c.op], int(c.positive), 0, c.mask, c.k))
            else:
                prog.dropped.append(c)
            continue
        win, pos, end = loc
        if c.mask == 0 and c.op == "eq" and c.k == 0 and c.positive:
            b.require(win, end)                    # "the field is present"
            continue
        b.require(win, end)                        # every test on a field needs its bytes
        if c.op == "eq":
            if c.k & ~mask:
                if c.positive:
                    return None                    # never equal
                continue                           # always unequal once present
            if c.positive:
                b.add(_cond_bytes(pos, c.load.size, mask, c.k))
            else:
                prog.misses.append(MatchSpec((0, 0, 0), _cond_bytes(pos, c.load.size, mask, c.k)))
            continue
        if c.op == "set":
            k = c.k & mask
            if c.positive:
                if not k:
                    return None
                if _single_bit(k):
                    b.add(_cond_bytes(pos, c.load.size, k, k))
                else:                              # some bit set == not all of them clear
                    prog.misses.append(MatchSpec((0, 0, 0), _cond_bytes(pos, c.load.size, k, 0)))
            elif k:
                b.add(_cond_bytes(pos, c.load.size, k, 0))
            continue
        if comparator:                             # gt / ge: the arithmetic unit
            prog.cmps.append((win, pos, c.load.size, OPS[c.op], int(c.positive), end, c.mask, c.k))
        else:
            prog.dropped.append(c)
    if b.impossible:
        return None
    prog.hit = b.spec()
    return prog


class FilterProgram:
    """A BPF_FILTER translated for a header unit."""

    def __init__(self, expr, paths, exact, note_parts):
        self.expr = expr
        self.paths = paths                 # [PathProgram]
        self.exact = exact
        self.note_parts = note_parts

    def matches(self):
        out = []
        for p in self.paths:
            for m in [p.hit] + p.misses:
                if m not in out:
                    out.append(m)
        return out

    def cmps(self):
        out = []
        for p in self.paths:
            for c in p.cmps:
                if c not in out:
                    out.append(c)
        return out


def translate_filter(expr, device, abs_limit, ind, comparator):
    """FilterProgram for BPF_FILTER(expr) on `device`, or (None, reason)."""
    if device.linktype != LINKTYPE_ETHERNET:
        return None, "the header units parse Ethernet frames only (link type %d)" % device.linktype
    a = analyze_filter(expr, device.linktype, device.snaplen)
    if a is None:
        return None, "libpcap does not compile %r" % expr
    if not a.paths and not a.complete:
        return None, "filter too complex to analyse (%s)" % a.reason
    paths, dropped = [], []
    for path in a.paths:
        p = translate_path(path, abs_limit, ind, comparator)
        if p is None:
            continue
        if p.dropped and not p.hit.bytes and not p.misses and not p.cmps and not any(p.hit.need):
            return None, "nothing of %s is expressible here" % _names(p.dropped)
        dropped += p.dropped
        paths.append(p)
    exact = a.complete and not dropped
    notes = []
    if dropped:
        notes.append("%s dropped: superset" % _names(dropped))
    elif not a.complete:
        notes.append("analysis incomplete (%s): superset" % a.reason)
    return FilterProgram(expr, paths, exact, notes), ""


def _names(conds):
    seen = []
    for c in conds:
        n = field_name(c.load)
        if n not in seen:
            seen.append(n)
    return ", ".join(seen)


# --- units ---------------------------------------------------------------------------------------
class CardUnit(HardwareUnit):
    """A unit of an emulated card: limits may be overridden per device (options)."""

    cunit = 0                     # CARD_UNIT_* of card_emu.h, 0 for units without functions

    def __init__(self, card, limits=None):
        self.card = card
        self.limits = dict(limits if limits is not None else type(self).limits)

    def describe(self):
        d = super().describe()
        d["used"] = self.card.used(self.name)
        return d


class SamplerUnit(CardUnit):
    """SAMPLE, periodic and probabilistic, with SAMPLE's own definition (index multiple of N;
    splitmix64 draws from the same seed), so it keeps exactly the packets software keeps."""

    name = "SAU"
    doc = "sampler: deterministic (1 in N) and probabilistic"
    kind = FILTER
    functions = ("SAMPLE",)
    limits = {"samplers": 16}
    cunit = lib.CARD_UNIT_SAU

    def offer(self, desc, args, device):
        value, mode, seed = args
        return Offer(exact=True, demand={"samplers": 1}, params=tuple(args),
                     note="%s %s" % (str(mode).lower(), value))

    def new_state(self, a):
        from mapi.constants import PERIODIC
        value, mode, seed = a.args
        s = ffi.new("mapi_sample_state *")
        if mode == PERIODIC:
            lib.mapi_sample_init(s, lib.MAPI_SAMPLE_PERIODIC, int(value), 0.0, seed)
        else:
            lib.mapi_sample_init(s, lib.MAPI_SAMPLE_PROBABILISTIC, 0, float(value), seed)
        st = ffi.new("card_sampler *")
        st.mode = lib.CARD_SAU_PERIODIC if mode == PERIODIC else lib.CARD_SAU_PROBABILISTIC
        st.period, st.threshold, st.rng = s.period, s.threshold, s.rng
        return st

    def result(self, a, st):
        return st.kept, st.last_ts


class CounterUnit(CardUnit):
    """PKT_COUNTER and BYTE_COUNTER on counter sets (packets; sum of wire lengths), and STATS
    of a BYTE_COUNTER per packet with reset (count, sum, sum of squares, min, max of the wire
    lengths: exactly a counter set's registers)."""

    name = "STU"
    doc = "statistics: counter sets (packets, sum, sum of squares, min, max of length or " \
        "inter-arrival time)"
    kind = STATISTIC
    functions = ("PKT_COUNTER", "BYTE_COUNTER", "STATS")
    limits = {"sets": 256}
    cunit = lib.CARD_UNIT_STU

    def offer(self, desc, args, device):
        if desc.name == "STATS":
            ref, interval, reset = args
            if interval != 0 or not reset or _function_name(ref) != "BYTE_COUNTER":
                return None          # only per-packet wire lengths are a counter set's values
            return Offer(exact=True, demand={"sets": 1},
                         note="counter set (count, sum, sum of squares, min, max of wire length)")
        return Offer(exact=True, demand={"sets": 1}, note="counter set (%s)" % (
            "packets" if desc.name == "PKT_COUNTER" else "sum of wire lengths"))

    def new_state(self, a):
        st = ffi.new("card_counters *")
        st.value = lib.CARD_VALUE_LENGTH
        return st

    def result(self, a, st):
        if a.function == "PKT_COUNTER":
            return st.packets, st.last_ts
        if a.function == "BYTE_COUNTER":
            return st.sum, st.last_ts
        from scampi.plugins.stdfuncs.stats import Stats
        if not st.values:
            return Stats(0, 0, 0, None, None), st.last_ts
        return Stats(st.values, st.sum, st.sumsq_hi << 64 | st.sumsq_lo, st.min, st.max), st.last_ts


def _function_name(ref):
    """Name of the function (fd, fid) refers to, or None."""
    from mapi import api
    try:
        return api.get_function_info(*ref)["name"]
    except Exception:
        return None


class InfoUnit(CardUnit):
    """A unit that runs no MAPI function by itself (shown in get_device_info)."""

    functions = ()

    def __init__(self, card, name, doc, limits=None):
        self.name = name
        self.doc = doc
        super().__init__(card, limits or {})

    def offer(self, desc, args, device):
        return None


# --- the card --------------------------------------------------------------------------------
class Compiled:
    """A configuration in C structures (kept alive here while the card runs it)."""

    def __init__(self):
        self.c = ffi.new("card_config *")
        self.keep = []
        self.nodes = []          # (Assignment, unit, state) in C node order
        self.extra = {}          # hw_id -> objects a node's C state points into


class Card(PacketSource, HardwareDevice):
    """An emulated card in front of a link (a PacketSource).  Subclasses list their units."""

    model = "card"
    ts_quantum = 1

    def __init__(self, link, options=None):
        self.link = link
        self.options = dict(options or {})
        self.name = link.name
        self.offline = link.offline
        self.nsec = True
        self.stats_c = ffi.new("card_stats *")
        self.stats_c.ts_quantum = self.ts_quantum
        self.out = ffi.gc(lib.mapi_batch_new(BATCH_CAP), lib.mapi_batch_free)
        if self.out == ffi.NULL:
            raise MemoryError("cannot allocate the card's output batch")
        self._seq = ffi.new("uint64_t[]", BATCH_CAP)
        self._tags = ffi.new("uint64_t[]", BATCH_CAP)
        self.out.seq = self._seq
        self.compiled = None
        self.config = None
        self.states = {}         # assignment key -> (unit name, function, args, C state)
        self._lock = threading.Lock()
        self._units = self.make_units()
        self._by_name = {u.name: u for u in self._units}

    # --- PacketSource, delegated to the link ---------------------------------------------------
    @property
    def linktype(self):
        return self.link.linktype

    @property
    def snaplen(self):
        return self.link.snaplen

    def next_batch_into(self, batch):
        return self.link.next_batch_into(batch)

    def release(self, batch):
        self.link.release(batch)

    def stats(self):
        d = dict(self.link.stats())
        d.update(bus_packets=self.stats_c.bus_packets, bus_bytes=self.stats_c.bus_bytes)
        return d

    def info(self):
        d = dict(self.link.info())
        d["card"] = self.model
        return d

    def close(self):
        self.link.close()

    # --- HardwareDevice ----------------------------------------------------------------------
    def make_units(self):
        return []

    def units(self):
        return list(self._units)

    def unit(self, name):
        return self._by_name.get(name)

    def used(self, unit_name):
        used = {}
        for a in (self.config.assignments if self.config else ()):
            if a.unit == unit_name:
                for r, v in (a.offer.demand or {}).items():
                    used[r] = used.get(r, 0) + v
        return used

    def configure(self, config):
        compiled = self.compile(config)          # raises HardwareError; nothing applied then
        with self._lock:
            self.compiled = compiled
            self.config = config
            self.states = {a.key: (a.unit, a.function, tuple(a.args), st, compiled.extra.get(a.hw_id))
                           for a, _, st in compiled.nodes if st is not None}

    def process(self, batch):
        c = getattr(batch, "c", batch)
        with self._lock:
            comp = self.compiled
            # no configuration yet: nothing placed, every packet crosses
            cfg = comp.c if comp is not None else ffi.NULL
            self.out.tags = self._tags if comp is not None and comp.c.nnodes else ffi.NULL
            rc = lib.card_run(cfg, self.stats_c, c, self.out)
        if rc == lib.CARD_ERR_LINKTYPE:
            raise MapiError(ENOTSUP, "%s: the %s's header units parse Ethernet frames, but the "
                            "packets from #%d on have link type %d" % (self.name, self.model,
                                                                       c.first_seq, c.linktype),
                            file=self.name)
        if rc != lib.CARD_OK:
            raise MapiError(EFORMAT, "%s: card emulation failed (code %d)" % (self.name, rc))
        return self.out

    def hw_result(self, hw_id):
        with self._lock:
            comp = self.compiled
            for a, unit, st in (comp.nodes if comp else ()):
                if a.hw_id == hw_id:
                    # a superset keeps its result in the software refinement
                    if st is None or not hasattr(unit, "result") or not a.offer.exact:
                        raise KeyError(hw_id)
                    r = unit.result(a, st)
                    if r is None:
                        raise KeyError(hw_id)
                    return r
        raise KeyError(hw_id)

    def hw_info(self):
        s = self.stats_c
        comp = self.compiled
        nodes = []
        for i, (a, unit, st) in enumerate(comp.nodes if comp else ()):
            cn = comp.c.nodes[i]
            nodes.append(dict(hw_id=a.hw_id, unit=a.unit, function=a.function, args=list(a.args),
                              parent_hw_id=a.parent_hw_id, deliver=a.deliver,
                              exact=a.offer.exact, note=a.offer.note,
                              pkts_in=cn.pkts_in, pkts_out=cn.pkts_out))
        return dict(model=self.model,
                    link=dict(packets=s.link_packets, bytes=s.link_bytes),
                    bus=dict(packets=s.bus_packets, bytes=s.bus_bytes,
                             clock_packets=s.clock_packets, clock_bytes=s.clock_bytes,
                             share_of_packets=(s.bus_packets / s.link_packets) if s.link_packets else 0.0),
                    clock=self.clock_info(),
                    deliver_all=bool(self.config.deliver_all) if self.config else True,
                    generation=self.config.generation if self.config else 0,
                    units=[u.describe() for u in self._units], nodes=nodes)

    def clock_info(self):
        return {}

    # --- compiling a configuration -------------------------------------------------------------
    def compile(self, config):
        assigns = list(config.assignments)
        by_id = {}
        for a in assigns:
            if not 0 <= a.hw_id < MAX_HW_NODES:
                raise HardwareError("%s: hardware node id %r is outside 0..%d"
                                    % (self.model, a.hw_id, MAX_HW_NODES - 1), [a.hw_id])
            if a.hw_id in by_id:
                raise HardwareError("%s: two hardware nodes share tag bit %d"
                                    % (self.model, a.hw_id), [a.hw_id])
            by_id[a.hw_id] = a
        for a in assigns:
            u = self._by_name.get(a.unit)
            if u is None or a.function not in u.functions:
                raise HardwareError("%s has no unit %s that runs %s" % (self.model, a.unit, a.function),
                                    [a.hw_id])
            if a.parent_hw_id is not None and a.parent_hw_id not in by_id:
                raise HardwareError("%s: node %d hangs under hardware node %r, which is not in the "
                                    "configuration" % (self.model, a.hw_id, a.parent_hw_id), [a.hw_id])
        order = _topological(assigns, by_id, self.model)
        self.check_readers(order)
        self.check_limits(order)
        comp = Compiled()
        self.build(comp, order, config)
        return comp

    def check_readers(self, order):
        """Refuse a node whose result a software function reads while packets flow (BUCKET,
        DIST, THRESHOLD, STATS...): the card runs a whole batch before software sees it, so its
        registers are ahead of the packet the reader is at.  Such a node stays in software."""
        refused = []
        for a in order:
            readers = _software_readers(a.node) if a.node is not None else []
            if readers:
                refused.append((a, readers[0]))
        if refused:
            a, r = refused[0]
            raise HardwareError("%s %s: %s (hardware node %d) is read by %s while packets flow; "
                                "the card updates its registers a batch ahead of software, so it "
                                "stays in software" % (self.model, a.unit, a.function, a.hw_id,
                                                       r.desc.name), [x.hw_id for x, _ in refused])

    def check_limits(self, order):
        """Refuse a configuration over any unit's limits, naming the unit, the resource and
        the nodes that do not fit (the newest)."""
        for u in self._units:
            used = {}
            over = []
            for a in order:
                if a.unit != u.name:
                    continue
                for r, v in (a.offer.demand or {}).items():
                    cap = u.limits.get(r)
                    if cap is None:
                        raise HardwareError("%s %s: node %d asks for %s, which this unit does not have"
                                            % (self.model, u.name, a.hw_id, r), [a.hw_id])
                    used[r] = used.get(r, 0) + v
                    if used[r] > cap:
                        over.append((a, r))
            if over:
                total = {}
                for a in order:
                    if a.unit == u.name:
                        for r, v in (a.offer.demand or {}).items():
                            total[r] = total.get(r, 0) + v
                r = over[0][1]
                raise HardwareError("%s %s: the configuration needs %d %s, the unit has %d; "
                                    "nodes %s do not fit" % (self.model, u.name, total[r], r,
                                                             u.limits[r],
                                                             ", ".join(str(a.hw_id) for a, _ in over)),
                                    sorted({a.hw_id for a, _ in over}))

    def state_for(self, a, unit):
        """(C state, what keeps its memory alive) of a stateful node: kept across
        configurations while the node lives (Assignment.key)."""
        old = self.states.get(a.key)
        if old is not None and old[:3] == (a.unit, a.function, tuple(a.args)):
            return old[3], old[4]
        st = unit.new_state(a)
        return st if isinstance(st, tuple) else (st, None)

    def build(self, comp, order, config):
        """Fill comp.c from the assignments (in topological order)."""
        n = len(order)
        c = comp.c
        nodes = ffi.new("card_node[]", max(1, n))
        comp.keep.append(nodes)
        c.nodes = nodes
        c.nnodes = n
        c.deliver_all = 1 if config.deliver_all else 0
        index = {a.hw_id: i for i, a in enumerate(order)}
        mask = 0
        matches, cmps, terms, paths, dsm = [], [], [], [], []
        need_hfe = False
        for i, a in enumerate(order):
            unit = self._by_name[a.unit]
            nd = nodes[i]
            nd.unit = unit.cunit
            nd.parent = -1 if a.parent_hw_id is None else index[a.parent_hw_id]
            nd.hw_id = a.hw_id
            st = None
            if hasattr(unit, "new_state"):
                st, extra = self.state_for(a, unit)
                comp.extra[a.hw_id] = extra
                nd.unit_state = st
            elif hasattr(unit, "place"):
                keep = unit.place(a, nd, matches, cmps, terms, paths, dsm)
                if keep is not None:
                    comp.keep.append(keep)
                need_hfe = True
            comp.nodes.append((a, unit, st))
            if a.deliver:
                mask |= 1 << a.hw_id
        c.deliver_mask = mask
        c.need_hfe = 1 if need_hfe else 0
        if len(dsm) > lib.CARD_DSM_FILTERS:
            raise HardwareError("%s DSM: the configuration needs %d bit-mask filters, the card has %d"
                                % (self.model, len(dsm), lib.CARD_DSM_FILTERS),
                                [a.hw_id for a in order if a.unit == "DSM"][-1:])
        c.matches = _c_matches(comp, matches)
        c.dsm = _c_matches(comp, dsm)
        c.ndsm = len(dsm)
        c.cmps = cm = ffi.new("card_cmp[]", max(1, len(cmps)))
        for j, (win, pos, size, op, positive, need, cmask, k) in enumerate(cmps):
            x = cm[j]
            x.win, x.pos, x.size, x.op, x.positive, x.need, x.mask, x.k = \
                win, pos, size, op, positive, need, cmask & 0xFFFFFFFF, k & 0xFFFFFFFF
        c.terms = tm = ffi.new("card_term[]", max(1, len(terms)))
        for j, (kind, idx) in enumerate(terms):
            tm[j].kind, tm[j].index = kind, idx
        c.paths = pa = ffi.new("card_path[]", max(1, len(paths)))
        for j, (first, count) in enumerate(paths):
            pa[j].first, pa[j].nterms = first, count
        comp.keep += [cm, tm, pa]


def _software_readers(node):
    """Software nodes of the device's graph with an "F" argument naming this node."""
    owners = {tuple(o) for o in getattr(node, "owners", ())}
    if not owners:
        return []
    root = node
    while getattr(root, "parent", None) is not None:
        root = root.parent
    out, stack = [], list(root.children)
    while stack:
        n = stack.pop()
        stack.extend(n.children)
        if n is node or n.hw_id is not None or n.desc is None:
            continue
        for arg, value in zip(n.desc.args, n.args):
            if arg.type == "F" and isinstance(value, (tuple, list)) and tuple(value) in owners:
                out.append(n)
                break
    return out


def _c_matches(comp, specs):
    arr = ffi.new("card_match[]", max(1, len(specs)))
    for j, m in enumerate(specs):
        x = arr[j]
        if len(m.bytes) > lib.CARD_MATCH_BYTES:
            raise HardwareError("a match of %d bytes is wider than two CAM entries" % len(m.bytes))
        words = {}                   # record word -> [val, mask], little-endian byte lanes
        for pos, val, mask in m.bytes:
            w = words.setdefault(pos // 8, [0, 0])
            w[0] |= val << 8 * (pos % 8)
            w[1] |= mask << 8 * (pos % 8)
        x.nwords = len(words)
        for w in range(3):
            x.need[w] = m.need[w]
        for i, (word, (val, mask)) in enumerate(sorted(words.items())):
            x.word[i], x.val[i], x.mask[i] = word, val, mask
    comp.keep.append(arr)
    return arr


def _index(lst, item):
    try:
        return lst.index(item)
    except ValueError:
        lst.append(item)
        return len(lst) - 1


def _topological(assigns, by_id, model):
    out, done, busy = [], set(), set()

    def visit(a):
        if a.hw_id in done:
            return
        if a.hw_id in busy:
            raise HardwareError("%s: hardware nodes form a cycle at node %d" % (model, a.hw_id),
                                [a.hw_id])
        busy.add(a.hw_id)
        if a.parent_hw_id is not None:
            visit(by_id[a.parent_hw_id])
        busy.discard(a.hw_id)
        done.add(a.hw_id)
        out.append(a)
    for a in sorted(assigns, key=lambda a: a.hw_id):
        visit(a)
    return out


def open_link(path, fmt=None):
    from scampi.backends.savefile import SavefileSource
    return SavefileSource(path, fmt)


def card_backend(card_class, name, doc, units):
    """The BackendDescriptor of a card: it replays files through the card (backend=NAME) or
    sits on a live interface (NAME:IFNAME)."""
    from mapi.descriptor import BackendDescriptor

    def open_offline(path, fmt=None, options=None):
        options = dict(options or {})
        unknown = set(options) - {"limits"}
        if unknown:
            raise MapiError(EBADARG, "%s: unknown option(s) %s (known: limits)"
                            % (name, ", ".join(sorted(unknown))), argument=sorted(unknown)[0])
        return card_class(open_link(path, fmt), options)

    def open_live(ifname, options=None):
        link, card_options = open_live_link(ifname, options, name)
        return card_class(link, card_options)

    return BackendDescriptor(name=name, doc=doc, open_offline=open_offline, open_live=open_live,
                             capabilities=dict(units=list(units)))


def open_live_link(name, options, card_name):
    """Put a card on a live interface: its link is a capture through another backend ("ring" by
    default, option link="nic" for plain AF_PACKET).  Returns (link, card options)."""
    from mapi.registry import get_registry
    options = dict(options or {})
    card_options = {k: options.pop(k) for k in ("limits",) if k in options}
    link_backend = options.pop("link", "ring")
    desc = get_registry().backend(link_backend)
    if desc.open_live is None or link_backend == card_name:
        raise MapiError(EBADARG, "%s: link backend %r cannot capture live" % (card_name, link_backend),
                        argument="link")
    return desc.open_live(name, options), card_options


class HeaderFilterUnit(CardUnit):
    """BPF_FILTER on the header record: the accepting paths of libpcap's program, each path one
    hit entry plus entries that must miss (and comparisons where the unit has a comparator).
    Conditions the unit cannot express are dropped, which broadens the filter: superset."""

    kind = FILTER
    functions = ("BPF_FILTER",)
    abs_limit = REC_ABS
    ind = True
    comparator = True

    def program(self, args, device):
        return translate_filter(args[0], device, self.abs_limit, self.ind, self.comparator)

    def params_of(self, a):
        p = a.offer.params
        if isinstance(p, FilterProgram):
            return p
        prog, why = self.program(a.args, self.card)
        if prog is None:
            raise HardwareError("%s %s cannot run BPF_FILTER(%r): %s"
                                % (self.card.model, self.name, a.args[0], why), [a.hw_id])
        return prog
