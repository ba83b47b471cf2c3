"""A DAG-like capture card (Endace DAG with the DSM classifier), emulated in front of a trace.

    dev = mapi.create_offline_device("trace.erf", backend="dag")

The card reads its "link" from an ERF (or pcap/pcapng) trace, stamps every packet with its clock
in ERF's 64-bit fixed-point format, and keeps the loss counter (the ERF records' lctr fields plus
packets the card itself dropped).  Its DSM classifier has 7 bit-mask filters over the first 64
bytes of the frame (a value and a mask per byte) combined per filter through a lookup table, as
MAPI 2.0 configured DAG DSM; BPF_FILTER runs there exactly when every condition of the filter is
a byte test at a fixed offset within 64 bytes, otherwise as a superset refined in software.
Only packets some software node needs cross the emulated bus.

Options: limits={"DSM": {"filters": 3}} to model a smaller classifier.
"""
from mapi import hookimpl
from mapi.hardware import FILTER, STATISTIC, HardwareError, Offer

from . import ffi, lib
from .backend import card_backend
from .card import Card, _index
from .units import CardUnit, HeaderFilterUnit, InfoUnit

DSM_BYTES = 64


class DsmUnit(HeaderFilterUnit):
    """DSM: bit-mask filters over the first 64 bytes; a node passes a packet when one of its
    paths holds: its filter hit and the filters of its inequalities missed (lookup table)."""

    name = "DSM"
    limits = {"filters": lib.CARD_DSM_FILTERS}
    doc = "classifier: 7 bit-mask filters (value/mask per byte) over the first 64 bytes, " \
          "combined through a lookup table"
    cunit = lib.CARD_UNIT_DSM
    abs_limit = DSM_BYTES
    ind = False                 # no IP-header-relative offsets
    comparator = False

    def offer(self, desc, args, device):
        prog, why = self.program(args, device)
        if prog is None:
            return None
        filters = [m for m in prog.matches() if not _matches_all(m)]
        note = "%d bit-mask filter%s" % (len(filters), "" if len(filters) == 1 else "s")
        return Offer(exact=prog.exact, demand={"filters": len(filters)}, params=prog,
                     note="; ".join([note] + prog.note_parts))

    def place(self, a, nd, matches, cmps, terms, paths, dsm):
        prog = self.params_of(a)
        compiled = []
        for p in prog.paths:
            hit = None if _matches_all(p.hit) else _index(dsm, p.hit)
            misses = [_index(dsm, m) for m in p.misses]
            compiled.append((hit, misses))
        if len(dsm) > lib.CARD_DSM_FILTERS:
            raise HardwareError("%s DSM: the configuration needs %d bit-mask filters, the card "
                                "has %d" % (self.card.model, len(dsm), lib.CARD_DSM_FILTERS),
                                [a.hw_id])
        lut = ffi.new("uint8_t[]", 1 << lib.CARD_DSM_FILTERS)
        for v in range(1 << lib.CARD_DSM_FILTERS):
            lut[v] = int(any((hit is None or v >> hit & 1) and not any(v >> m & 1 for m in misses)
                             for hit, misses in compiled))
        nd.unit_state = lut
        return lut


class SteeringHashUnit(CardUnit):
    """The DSM's two steering hashes, programmed with RFC 5475's BOB over the 5-tuple (HASHSAMP's
    hash domain and selection value), so a hash range selects exactly HASHSAMP's packets.
    HASHSAMP with keep=True (per-packet records) stays in software."""

    name = "HASH"
    kind = FILTER
    functions = ("HASHSAMP",)
    limits = {"hashes": 2}
    doc = "2 steering hashes over the 5-tuple (BOB, selection value 0..1023)"
    cunit = lib.CARD_UNIT_HASH

    def offer(self, desc, args, device):
        rng, keep, symmetric = args
        if keep:
            return None
        return Offer(exact=True, demand={"hashes": 1},
                     note="steering hash < %d%s" % (rng, ", symmetric" if symmetric else ""))

    def new_state(self, a):
        rng, _, symmetric = a.args
        st = ffi.new("card_hash *")
        st.range, st.symmetric = rng, int(bool(symmetric))
        return st

    def result(self, a, st):
        return dict(selected=st.selected, seen=st.seen, not_ip=st.not_ip, samples=[], lost=0), \
            st.last_ts


class ErfWriterUnit(CardUnit):
    """TO_FILE in ERF, the card's own record format, written from the card's stream: the
    packets need not cross the bus.  The records come from the flow's TO_FILE writer, so the
    file is byte for byte what software would write."""

    name = "ERF"
    kind = STATISTIC
    functions = ("TO_FILE",)
    limits = {"streams": 4}
    doc = "ERF records to disk from the card's stream buffers"
    cunit = lib.CARD_UNIT_FILE

    def offer(self, desc, args, device):
        from mapi.constants import MFF_DAG_ERF
        if args[0] != MFF_DAG_ERF:
            return None
        return Offer(exact=True, demand={"streams": 1}, note="ERF written by the card")

    def new_state(self, a):
        inst = a.instance
        if inst is None or inst.kernel is None or inst.state is None:
            raise HardwareError("DAG ERF: node %d has no TO_FILE writer to write through"
                                % a.hw_id, [a.hw_id])
        return ffi.cast("void *", inst.state), inst

    def node_kernel(self, a):
        """The flow's TO_FILE kernel: the card writes each packet through it."""
        return ffi.cast("mapi_kernel_fn", a.instance.kernel)

    def result(self, a, st):
        return a.instance.result()           # the writer is the flow's TO_FILE's own


def _matches_all(m):
    return not m.bytes and not any(m.need)


class Dag(Card):
    model = "DAG"
    ts_quantum = 1

    def make_units(self):
        # (the steering hashes and stream count are fixed)
        lim = self.unit_limits({"DSM": DsmUnit.limits}, maxima={"DSM": lib.CARD_DSM_FILTERS})
        return [DsmUnit(self, lim["DSM"]), SteeringHashUnit(self), ErfWriterUnit(self),
                InfoUnit(self, "CLOCK", "DAG clock: ERF 64-bit fixed-point timestamps", {})]

    def clock_info(self):
        return dict(format="ERF 64-bit fixed point (seconds . 2^-32)")

    def loss(self):
        """The link's loss counter: ERF lctr of the records read, plus the card's own drops
        (none on an offline replay: the card waits for the host)."""
        reader = getattr(self.link, "reader", None)
        try:
            return int(reader.lost)
        except (AttributeError, TypeError):
            return 0

    def stats(self):
        d = super().stats()
        d["ps_ifdrop"] = self.loss()
        return d

    def hw_info(self):
        d = super().hw_info()
        d["loss_counter"] = self.loss()
        return d


BACKEND = card_backend(Dag, "dag", "DAG-like card emulator: ERF link (or a live interface: dag:IFNAME), "
                            "ERF clock, loss counter, DSM classifier", ("DSM", "CLOCK"))
open_offline, open_live = BACKEND.open_offline, BACKEND.open_live


@hookimpl
def scampi_backends():
    return [BACKEND]
