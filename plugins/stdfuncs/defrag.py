"""DEFRAG(policy="first", timeout="30s", max_bytes=64 MiB, max_datagrams=65536): IPv4 and IPv6
fragment reassembly.

The functions after DEFRAG see every packet that is not a fragment as it came, and each
reassembled datagram (instead of its fragments) when its last missing fragment arrives: the
first fragment's link and IP header (IPv4: total length set, MF and offset cleared, checksum
recomputed; IPv6: fragment header removed, payload length set) and the whole payload.  So a
BPF_FILTER on ports, COOKING or STR_SEARCH after DEFRAG see fragmented traffic whole.

policy, for fragments that overlap bytes already received:
  "first"  the bytes that came first win (BSD-like, and what Wireshark keeps);
  "last"   the later fragment's bytes win;
  "linux"  Linux >= 4.19 / RFC 5722: a fragment wholly within bytes already received is dropped
           as a duplicate; any other overlap discards the whole datagram.
Given up and counted: datagrams incomplete `timeout` after their first fragment (packet time),
the least recently touched when more than max_datagrams or max_bytes are held, impossible ones
(over 65535 bytes, inconsistent last fragments, overlaps under "linux"), and those still
incomplete when the stream ends.  Fragments not wholly captured pass as they are.
Result: dict(packets, fragments, reassembled, overlaps, duplicates, timeouts, evicted,
discarded, unfinished, given_up_fragments, truncated, held_bytes, held_datagrams)."""
from mapi._engine import ffi, lib
from mapi.descriptor import Arg, FunctionInstance, filter_descriptor
from mapi.errors import MapiError, EBADARG

from .bucket import parse_interval
from .cooking import counters

POLICIES = {"first": lib.MAPI_DEFRAG_FIRST, "last": lib.MAPI_DEFRAG_LAST,
            "linux": lib.MAPI_DEFRAG_LINUX}
STATS = ("packets", "fragments", "reassembled", "overlaps", "duplicates", "timeouts", "evicted",
         "discarded", "unfinished", "given_up_fragments", "truncated", "held_bytes", "held_datagrams")


class Defrag(FunctionInstance):
    kernel = lib.mapi_defrag_kernel
    made_drain = lib.mapi_defrag_drain

    def __init__(self, policy, timeout, max_bytes, max_datagrams):
        d = lib.mapi_defrag_new(POLICIES[policy], timeout, max_bytes, max_datagrams)
        if d == ffi.NULL:
            raise MemoryError("DEFRAG: cannot allocate its tables")
        self.d = ffi.gc(d, lib.mapi_defrag_free)
        self.state = self.d
        self.made = lib.mapi_defrag_batch(self.d)

    def result(self):
        return counters(lib.mapi_defrag_get_stats, "mapi_defrag_stats", self.d, STATS), 0


def check(ctx, args):
    policy, timeout, max_bytes, max_datagrams = args
    if policy not in POLICIES:
        raise MapiError(EBADARG, "DEFRAG: policy must be one of %s, got %r"
                        % (", ".join(POLICIES), policy), argument="policy")
    for name, v, lo, hi in (("max_bytes", max_bytes, 1 << 16, 2 ** 40),
                            ("max_datagrams", max_datagrams, 1, 1 << 24)):
        if not lo <= v <= hi:
            raise MapiError(EBADARG, "DEFRAG: %s must be %d..%d, got %r" % (name, lo, hi, v),
                            argument=name)
    return policy, parse_interval("DEFRAG", "timeout", timeout), max_bytes, max_datagrams


DESCRIPTOR = filter_descriptor(
    "DEFRAG", __doc__, Defrag, check, result="struct", cost="low", modifies=True,
    derives=lambda linktype, args: (linktype, 262144),
    args=(Arg("policy", "s", "first", doc="overlaps: first, last or linux"),
          Arg("timeout", "t", "30s", doc="give up a datagram incomplete this long"),
          Arg("max_bytes", "i", 64 << 20), Arg("max_datagrams", "i", 65536)))
