"""An emulated card in front of a link (another backend's packet source): every raw batch goes
through the card's units in one C call (emu.c), and the batch handed to the engine lists only
the packets that cross the emulated bus (seq = their device-wide index, tags = the hardware
nodes they passed).  The packets themselves never move.  A configuration is checked (ids,
units, readers, limits) and compiled into emu.h's structures before it replaces the old one."""
import threading

from mapi import native
from mapi.batch import BATCH_CAP
from mapi.descriptor import PacketSource
from mapi.errors import MapiError, EBADARG, EFORMAT, ENOTSUP
from mapi.hardware import HardwareDevice, HardwareError, MAX_HW_NODES

from . import ffi, lib

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
        eng_ffi, eng_lib = native.engine()      # the output batch goes to the engine
        self.out = eng_ffi.gc(eng_lib.mapi_batch_new(BATCH_CAP), eng_lib.mapi_batch_free)
        if self.out == eng_ffi.NULL:
            raise MemoryError("cannot allocate the card's output batch")
        self._out = native.plugin_pointer(ffi, self.out)
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

    def unit_limits(self, defaults, maxima=None):
        """The limits of the units named in `defaults` ({unit: {resource: n}}) with the device's
        limits={unit: {resource: n}} option applied, each given value replacing a default.  A
        unit not in `defaults`, a resource the unit does not have, or a value that is not a
        whole number >= 0 (and <= maxima[unit] where given) is a MapiError naming it."""
        model = self.model.lower()
        given = self.options.get("limits") or {}
        bad = set(given) - set(defaults)
        if bad:
            raise MapiError(EBADARG, "%s: unknown unit(s) %s in limits; units: %s"
                            % (model, ", ".join(sorted(bad)), ", ".join(sorted(defaults))),
                            argument="limits")
        out = {}
        for unit, default in defaults.items():
            d = dict(default)
            top = (maxima or {}).get(unit)
            for r, v in (given.get(unit) or {}).items():
                if r not in d or not isinstance(v, int) or v < 0:
                    raise MapiError(EBADARG, "%s: limits[%r][%r] = %r: %s has %s"
                                    % (model, unit, r, v, unit, ", ".join(sorted(d)) or "no limits"),
                                    argument="limits")
                if top is not None and v > top:
                    raise MapiError(EBADARG, "%s: limits[%r][%r] = %r: the %s has 0..%d %s"
                                    % (model, unit, r, v, unit, top, r), argument="limits")
                d[r] = v
            out[unit] = d
        return out

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
            rc = lib.card_run(cfg, self.stats_c, native.plugin_pointer(ffi, c), self._out)
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
                              pkts_in=cn.pkts_in, pkts_out=cn.pkts_out,
                              bytes_in=cn.bytes_in, bytes_out=cn.bytes_out))
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
        DIST, THRESHOLD, STATS...; the mapper lists them in Assignment.read_by): the card runs a
        whole batch before software sees it, so its registers are ahead of the packet the reader
        is at.  Such a node stays in software."""
        refused = [a for a in order if a.read_by]
        if refused:
            a = refused[0]
            raise HardwareError("%s %s: %s (hardware node %d) is read by %s while packets flow; "
                                "the card updates its registers a batch ahead of software, so it "
                                "stays in software" % (self.model, a.unit, a.function, a.hw_id,
                                                       a.read_by[0]), [x.hw_id for x in refused])

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
                if hasattr(unit, "node_kernel"):
                    nd.kernel = unit.node_kernel(a)
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
