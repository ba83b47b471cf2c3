"""LIMIT(count): pass the first `count` packets that reach it and drop every later one
(tcpdump's -c as a flow step: 'BPF_FILTER("tcp") LIMIT(10) TO_FILE(MFF_PCAP, "f.pcap")' keeps
what `tcpdump -c 10 -w f.pcap tcp` writes).

Per batch, not per packet: the kept indices are one copy of the head of the selection vector.
Result: the number of packets passed so far (u64); info()["reached"] says the limit was hit."""
from mapi._engine import ffi
from mapi.descriptor import Arg, FunctionInstance, filter_descriptor
from mapi.errors import MapiError, EBADARG


class Limit(FunctionInstance):
    def __init__(self, count):
        self.count = count
        self.passed = 0
        self.last_ts = 0

    def process(self, batch, sel, nsel, out):
        keep = min(nsel, self.count - self.passed)
        if keep <= 0:
            return 0
        ffi.memmove(out, sel, keep * ffi.sizeof("uint32_t"))
        self.passed += keep
        self.last_ts = batch.ts[sel[keep - 1]]
        return keep

    def result(self):
        return self.passed, self.last_ts

    def reset(self):
        self.passed = 0

    def info(self):
        return dict(count=self.count, reached=self.passed >= self.count)


def check(ctx, args):
    (count,) = args
    if count < 1:
        raise MapiError(EBADARG, "LIMIT: count must be 1 or more, got %d" % count, argument="count")
    return args


DESCRIPTOR = filter_descriptor(
    "LIMIT", __doc__, Limit, check, result="u64", cost="free",
    args=(Arg("count", "l", doc="packets to pass"),))
