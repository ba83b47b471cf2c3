"""The units both emulated cards have: samplers (SAU), counter sets (STU), units that only
describe the card, and the header filter base (LUP on the COMBO6, DSM on the DAG)."""
from mapi.errors import EBADARG  # noqa: F401 (re-exported for the cards' option checks)
from mapi.hardware import FILTER, STATISTIC, HardwareError, HardwareUnit, Offer
from mapi.native import engine
from mapi.results import Stats

from . import ffi, lib
from .translate import REC_ABS, FilterProgram, translate_filter

class CardUnit(HardwareUnit):
    """A unit of an emulated card: limits may be overridden per device (options)."""

    cunit = 0                     # CARD_UNIT_* of emu.h, 0 for units without functions

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
        eng_ffi, eng_lib = engine()         # SAMPLE's own initialisation, draw for draw
        s = eng_ffi.new("mapi_sample_state *")
        if mode == PERIODIC:
            eng_lib.mapi_sample_init(s, eng_lib.MAPI_SAMPLE_PERIODIC, int(value), 0.0, seed)
        else:
            eng_lib.mapi_sample_init(s, eng_lib.MAPI_SAMPLE_PROBABILISTIC, 0, float(value), seed)
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
        if not st.values:
            return Stats(0, 0, 0, None, None), st.last_ts
        return Stats(st.values, st.sum, st.sumsq_hi << 64 | st.sumsq_lo, st.min, st.max), st.last_ts


def _function_name(ref):
    """Name of the function (fd, fid) refers to, or None."""
    import mapi
    try:
        return mapi.get_function_info(*ref)["name"]
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
