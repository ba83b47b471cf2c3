"""HASHSAMP(range, keep=False, symmetric=False): PSAMP hash-based selection (RFC 5475) on the
5-tuple, so every packet of a flow gets the same decision, in every flow and every run.

The hash domain is source address, destination address, protocol, source port, destination
port (ports 0 for protocols other than TCP/UDP and for IP fragments after the first), IPv4 or
IPv6, in network byte order (13 or 37 bytes).  The hash function is RFC 5475's BOB (Bob Jenkins'
lookup2, appendix A.2) with initialiser value 0; the selection value is its low 10 bits, 0..1023,
and a packet is selected when value < range: range 0 selects nothing, 1024 every IP packet, and
about range/1024 of the flows in general.  Packets without an IP header are never selected.
symmetric=True hashes the two ends in a fixed order so both directions of a conversation agree.

keep=True also stores a record per selected packet (time, addresses, ports, protocol, TCP
sequence number and flags, selection value), as MAPI's HASHSAMP did; read_results hands over the
records stored since the previous read (at most 4096 are held; older ones are dropped and
counted).  Result: dict(selected, seen, not_ip, samples=[...], lost)."""

from mapi._engine import ffi, lib
from mapi.descriptor import Arg, FunctionInstance, filter_descriptor
from mapi.errors import MapiError, EBADARG


def _addr(raw, ipver):
    b = bytes(raw)
    import ipaddress
    return str(ipaddress.IPv4Address(b[:4]) if ipver == 4 else ipaddress.IPv6Address(b))


class HashSamp(FunctionInstance):
    kernel = lib.mapi_hashsamp_kernel

    def __init__(self, rng, keep, symmetric):
        self.range, self.keep, self.symmetric = rng, keep, symmetric
        self.hs = ffi.gc(lib.mapi_hashsamp_new(rng, int(keep), int(symmetric)), lib.mapi_hashsamp_free)
        if self.hs == ffi.NULL:
            raise MemoryError("HASHSAMP: out of memory")
        self.state = self.hs
        self._recs = ffi.new("mapi_hashsamp_rec[]", lib.MAPI_HASHSAMP_RING)

    def _counts(self):
        c = ffi.new("mapi_hashsamp_counts *")
        lib.mapi_hashsamp_get_counts(self.hs, c)
        return c

    def result(self):
        c = self._counts()
        samples = []
        if self.keep:
            n = lib.mapi_hashsamp_drain(self.hs, self._recs, lib.MAPI_HASHSAMP_RING)
            for r in self._recs[0:n]:
                samples.append(dict(ts=r.ts, src=_addr(r.src, r.ipver), dst=_addr(r.dst, r.ipver),
                                    sport=r.sport, dport=r.dport, proto=r.proto,
                                    tcp_seq=r.tcp_seq, tcp_flags=r.tcp_flags, hash=r.hash))
        return dict(selected=c.selected, seen=c.seen, not_ip=c.not_ip, samples=samples,
                    lost=c.lost_records), c.last_ts

    def reset(self):
        lib.mapi_hashsamp_reset(self.hs)

    def info(self):
        c = self._counts()
        return dict(range=self.range, keep=self.keep, symmetric=self.symmetric, hash="BOB/lookup2",
                    selected=c.selected, seen=c.seen, not_ip=c.not_ip)


def check(ctx, args):
    rng, keep, symmetric = args
    if not 0 <= rng <= 1024:
        raise MapiError(EBADARG, "HASHSAMP: range must be between 0 and 1024 (selection values are "
                        "0..1023, kept when < range), got %r" % (rng,), argument="range")
    return rng, bool(keep), bool(symmetric)


DESCRIPTOR = filter_descriptor(
    "HASHSAMP", __doc__, HashSamp, check, result="struct", cost="low",
    args=(Arg("range", "i", doc="select flows whose hash (0..1023) is < range"),
          Arg("keep", "b", False, doc="store a record per selected packet"),
          Arg("symmetric", "b", False, doc="both directions of a conversation agree")))
