"""SAMPLE(value, mode, seed): keep a sample of the packets that reach it.

mapi.PERIODIC: keep the packets whose 0-based index among the packets reaching SAMPLE is a
multiple of `value` (the 1st, the value+1-th, ...); value >= 1.
mapi.PROBABILISTIC: keep each packet with probability `value` percent (0..100).  The draws come
from splitmix64 (Steele, Lea, Flood 2014) seeded with `seed`: one 64-bit draw per packet reaching
SAMPLE, kept when (draw >> 11) < round(value / 100 * 2**53).  The same seed and the same
packets give the same sample in every run.

Result: the number of packets kept (u64)."""
from mapi._engine import ffi, lib
from mapi.constants import PERIODIC, PROBABILISTIC
from mapi.descriptor import Arg, FunctionInstance, filter_descriptor
from mapi.errors import MapiError, EBADARG

DEFAULT_SEED = 0x5CA3F1


class Sample(FunctionInstance):
    kernel = lib.mapi_sample_kernel

    def __init__(self, value, mode, seed):
        self.args = (value, mode, seed)
        self.st = ffi.new("mapi_sample_state *")
        self.state = self.st
        self._init()

    def _init(self):
        value, mode, seed = self.args
        if mode == PERIODIC:
            lib.mapi_sample_init(self.st, lib.MAPI_SAMPLE_PERIODIC, int(value), 0.0, seed)
        else:
            lib.mapi_sample_init(self.st, lib.MAPI_SAMPLE_PROBABILISTIC, 0, float(value), seed)

    def result(self):
        return self.st.kept, self.st.last_ts

    def reset(self):
        self._init()

    def info(self):
        value, mode, seed = self.args
        return dict(mode=mode, value=value, seed=seed, seen=self.st.seen, kept=self.st.kept)


def check(ctx, args):
    value, mode, seed = args
    if mode == PERIODIC:
        if isinstance(value, float) and not value.is_integer():
            raise MapiError(EBADARG, "SAMPLE: a PERIODIC value is a whole number of packets (keep "
                            "1 in value), got %r" % (value,), argument="value")
        if not 1 <= value < 2 ** 63:
            raise MapiError(EBADARG, "SAMPLE: a PERIODIC value must be >= 1 (keep 1 packet in "
                            "value), got %r" % (value,), argument="value")
        value = int(value)
    elif not 0 <= value <= 100:
        raise MapiError(EBADARG, "SAMPLE: a PROBABILISTIC value is a percentage between 0 and "
                        "100, got %r" % (value,), argument="value")
    if not 0 <= seed < 2 ** 64:
        raise MapiError(EBADARG, "SAMPLE: seed must be an unsigned 64-bit integer, got %r"
                        % (seed,), argument="seed")
    return value, mode, seed


DESCRIPTOR = filter_descriptor(
    "SAMPLE", __doc__, Sample, check, result="u64", cost="free",
    args=(Arg("value", "n", doc="PERIODIC: keep 1 in value; PROBABILISTIC: percent kept"),
          Arg("mode", "c", PERIODIC, choices=(PERIODIC, PROBABILISTIC)),
          Arg("seed", "l", DEFAULT_SEED, doc="PROBABILISTIC: splitmix64 seed")))
