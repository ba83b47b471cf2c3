"""BPF conditions translated into a card's header-unit matches: the accepting paths of libpcap's
program (mapi.bpf_analysis), each path one hit entry (value/mask over the unified header record
the HFE extracts), entries that must miss, and comparisons where the unit has a comparator.
Conditions a unit cannot express are dropped, which broadens the filter (a superset)."""
from mapi import bpf_analysis
from mapi.bpf import compile_insns
from mapi.errors import MapiError

from . import lib

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
