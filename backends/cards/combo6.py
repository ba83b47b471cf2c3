"""COMBO6 (the SCAMPI adapter of CESNET / Masaryk University), emulated in front of a trace file.

    dev = mapi.create_offline_device("trace.pcap", backend="combo6")

The card's units, with the limits of the SCAMPI reports (the seed report; anchors.md section 6):
HFE extracts a unified header record from each Ethernet frame; LUP filters on it with a CAM of
272-bit entries plus an arithmetic comparator (BPF_FILTER, exact when every condition of the
filter maps onto the record, a superset otherwise); SAU samples (SAMPLE); STU keeps 256 counter
sets (PKT_COUNTER, BYTE_COUNTER); PCK looks for up to 500 strings of up to 16 bytes
(STR_SEARCH); TSU stamps packets at 10 ns; the DRAM ring holds the packets the host asked for,
and only those cross the emulated PCI bus (counted in get_device_info()["hardware"]["bus"]).

Options (create_offline_device keywords): limits={"LUP": {"rules": 16}, ...} to model a smaller
card.
"""
from mapi import hookimpl
from mapi.errors import MapiError
from mapi.hardware import FILTER, Offer
from mapi.patterns import parse_patterns

from . import ffi, lib, translate
from .backend import card_backend
from .card import Card, _index
from .units import CardUnit, CounterUnit, HeaderFilterUnit, InfoUnit, SamplerUnit

CAM_ENTRIES = 128
COMPARATORS = 16


class LookupUnit(HeaderFilterUnit):
    """LUP: CAM entries of 272 bits over the header record (a path's equalities are one entry,
    two if wider than 34 bytes; each inequality that must not hold is an entry that must miss)
    and comparators for <, <=, >, >= and the frame length."""

    name = "LUP"
    limits = {"rules": CAM_ENTRIES, "ranges": COMPARATORS}
    doc = "header filter: 272-bit CAM entries plus arithmetic comparison"
    cunit = lib.CARD_UNIT_LUP

    def offer(self, desc, args, device):
        prog, why = self.program(args, device)
        if prog is None:
            return None
        hits, misses = [], []
        for p in prog.paths:
            if len(p.hit.bytes) > lib.CARD_MATCH_BYTES:
                return None
            if p.hit not in hits:
                hits.append(p.hit)
            for m in p.misses:
                if m not in misses:
                    misses.append(m)
        rules = sum(entry_width(m) for m in hits) + len(misses)
        ranges = len(prog.cmps())
        note = "%d CAM entr%s" % (rules, "y" if rules == 1 else "ies")
        if ranges:
            note += ", %d comparator%s" % (ranges, "" if ranges == 1 else "s")
        note = "; ".join([note] + prog.note_parts)
        demand = {"rules": rules}
        if ranges:
            demand["ranges"] = ranges
        return Offer(exact=prog.exact, demand=demand, params=prog, note=note)

    def place(self, a, nd, matches, cmps, terms, paths, dsm):
        prog = self.params_of(a)
        nd.first = len(paths)
        for p in prog.paths:
            first = len(terms)
            terms.append((lib.CARD_TERM_HIT, _index(matches, p.hit)))
            for m in p.misses:
                terms.append((lib.CARD_TERM_MISS, _index(matches, m)))
            for c in p.cmps:
                terms.append((lib.CARD_TERM_CMP, _index(cmps, c)))
            paths.append((first, len(terms) - first))
        nd.count = len(prog.paths)
        return None


class PayloadUnit(CardUnit):
    """PCK: up to 500 strings of up to 16 bytes, looked for in [offset, offset + depth) of the
    captured bytes (STR_SEARCH's window).  Longer patterns are cut to their first 16 bytes, a
    superset refined in software."""

    name = "PCK"
    kind = FILTER
    functions = ("STR_SEARCH",)
    limits = {"patterns": 500}
    doc = "payload checker: up to 500 strings of up to 16 bytes"
    cunit = lib.CARD_UNIT_PCK
    max_len = 16

    def patterns(self, args):
        pats = parse_patterns(args[0])
        cut = []
        for p in pats:
            q = p[:self.max_len]
            if q not in cut:
                cut.append(q)
        return cut, all(len(p) <= self.max_len for p in pats)

    def offer(self, desc, args, device):
        try:
            pats, exact = self.patterns(args)
        except MapiError:
            return None
        note = "%d string%s" % (len(pats), "" if len(pats) == 1 else "s")
        if not exact:
            note += "; patterns cut to %d bytes: superset" % self.max_len
        return Offer(exact=exact, demand={"patterns": len(pats)}, params=pats, note=note)

    def new_state(self, a):
        pats, _ = self.patterns(a.args)
        st = ffi.new("card_patterns *")
        st.offset, st.depth, st.npat = a.args[1], a.args[2], len(pats)
        raw = ffi.new("uint8_t[]", 16 * max(1, len(pats)))
        lens = ffi.new("uint8_t[]", max(1, len(pats)))
        single = ffi.new("uint8_t[]", 256)
        buckets = {}
        for k, p in enumerate(pats):
            raw[16 * k:16 * k + len(p)] = p
            lens[k] = len(p)
            if len(p) == 1:
                single[p[0]] = 1
            else:
                buckets.setdefault(p[0] << 8 | p[1], []).append(k)
        start = ffi.new("uint32_t[]", 65537)
        order = []
        for key in range(65536):
            start[key] = len(order)
            order += buckets.get(key, ())
        start[65536] = len(order)
        pat = ffi.new("uint16_t[]", max(1, len(order)))
        for j, k in enumerate(order):
            pat[j] = k
        st.bytes, st.lens, st.single, st.bucket_start, st.bucket_pat = raw, lens, single, start, pat
        return st, (raw, lens, single, start, pat)

    def result(self, a, st):
        return st.matched, st.last_ts


def entry_width(spec):
    """CAM entries a hit match takes: 272 bits each."""
    return max(1, -(-len(spec.bytes) // translate.CAM_ENTRY_BYTES))


class Combo6(Card):
    model = "COMBO6"
    ts_quantum = 10              # TSU: 10 ns

    def make_units(self):
        lim = self.unit_limits({"HFE": {}, "LUP": LookupUnit.limits, "SAU": SamplerUnit.limits,
                                "STU": CounterUnit.limits, "PCK": PayloadUnit.limits, "TSU": {},
                                "DRAM": {}})
        units = [
            InfoUnit(self, "HFE", "header field extraction: Ethernet type, VLAN, IPv4/IPv6 "
                     "addresses, protocol, ports, TCP flags, lengths, fragment offset into a "
                     "unified header record (frame bytes 0-71, 16 bytes after the IPv4 header)",
                     {"header_bytes": translate.REC_ABS, "transport_bytes": translate.REC_IND}),
            LookupUnit(self, lim["LUP"]),
            SamplerUnit(self, lim["SAU"]),
            CounterUnit(self, lim["STU"]),
            PayloadUnit(self, lim["PCK"]),
            InfoUnit(self, "TSU", "timestamps at 10 ns resolution", {"resolution_ns": 10}),
            InfoUnit(self, "DRAM", "ring of selected packets mapped into host memory; only "
                     "packets some software node needs cross the PCI bus", {}),
        ]
        return units

    def clock_info(self):
        return dict(unit="TSU", resolution_ns=10)


BACKEND = card_backend(Combo6, "combo6", "COMBO6 / SCAMPI adapter emulator: HFE, LUP (CAM), SAU, STU, PCK, TSU, DRAM; "
                            "replays a trace through the card, or sits on a live interface "
                            "(combo6:IFNAME)", ("HFE", "LUP", "SAU", "STU", "PCK", "TSU", "DRAM"))
open_offline, open_live = BACKEND.open_offline, BACKEND.open_live


@hookimpl
def scampi_backends():
    return [BACKEND]
