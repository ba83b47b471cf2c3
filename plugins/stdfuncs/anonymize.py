"""ANONYMIZE(key, ip="cryptopan", mac="keep", payload=-1): anonymised copies of the packets.

The functions after ANONYMIZE see the copies, so ANONYMIZE then TO_FILE writes an anonymised
trace in one flow.  key: 32 bytes (a 32-character string, or 64 hex digits): the AES-128 key
and the pad of Crypto-PAn.  ip: "cryptopan" (prefix-preserving: two addresses sharing a k-bit
prefix still share exactly a k-bit prefix; IPv4 and IPv6), "zero" or "keep".  mac (Ethernet):
"keep", "zero" or "map" (a keyed mapping; the group bit and broadcast stay).  payload: -1 keeps
it, 0 removes it, N keeps its first N bytes (after the TCP/UDP/ICMP header, else after the IP
header); the captured length shrinks, wire and IP lengths stay.  IPv4 header, TCP, UDP and
ICMPv6 checksums are updated for the new addresses (RFC 1624): right ones stay right for the
whole packet, ones the capture had wrong (checksum offload) stay wrong.  Addresses inside
ICMP error quotes, ARP and tunnelled inner headers are not rewritten.  Result: dict(packets, ipv4, ipv6, not_ip, truncated)."""
import string

from mapi._engine import ffi, lib
from mapi.descriptor import Arg, FunctionDescriptor, FunctionInstance
from mapi.errors import MapiError, EBADARG

from .cooking import counters

IP_MODES = {"cryptopan": lib.MAPI_ANON_CRYPTOPAN, "zero": lib.MAPI_ANON_ZERO, "keep": lib.MAPI_ANON_KEEP}
MAC_MODES = {"map": lib.MAPI_ANON_MAP, "zero": lib.MAPI_ANON_ZERO, "keep": lib.MAPI_ANON_KEEP}
STATS = ("packets", "ipv4", "ipv6", "not_ip", "truncated", "cache_hits", "cache_misses")


def key_bytes(key):
    if isinstance(key, bytes) and len(key) == 32:
        return key
    if isinstance(key, str) and len(key) == 64 and all(c in string.hexdigits for c in key):
        return bytes.fromhex(key)
    if isinstance(key, str) and len(key) == 32 and all(ord(c) < 256 for c in key):
        return key.encode("latin-1")
    raise MapiError(EBADARG, "ANONYMIZE: the key must be 32 bytes: a 32-character string or 64 "
                    "hex digits (got %d characters)" % len(key), argument="key")


class Anonymize(FunctionInstance):
    kernel = lib.mapi_anon_kernel

    def __init__(self, key, ip, mac, payload):
        err = ffi.new("char[256]")
        k = key_bytes(key)
        a = lib.mapi_anon_new(k, len(k), IP_MODES[ip], MAC_MODES[mac], payload, err, 256)
        if a == ffi.NULL:
            raise MapiError(EBADARG, "ANONYMIZE: %s" % ffi.string(err).decode(), argument="key")
        self.a = ffi.gc(a, lib.mapi_anon_free)
        self.state = self.a
        self.made = lib.mapi_anon_batch(self.a)

    def address(self, packed):
        """Crypto-PAn of one packed address (4 or 16 bytes)."""
        out = ffi.new("uint8_t[16]")
        lib.mapi_anon_address(self.a, packed, len(packed), out)
        return bytes(out[0:len(packed)])

    def result(self):
        st = counters(lib.mapi_anon_get_stats, "mapi_anon_stats", self.a, STATS)
        return {k: st[k] for k in STATS[:5]}, 0

    def info(self):
        return counters(lib.mapi_anon_get_stats, "mapi_anon_stats", self.a, STATS)


def check(ctx, args):
    key, ip, mac, payload = args
    key_bytes(key)
    for name, v, modes in (("ip", ip, IP_MODES), ("mac", mac, MAC_MODES)):
        if v not in modes:
            raise MapiError(EBADARG, "ANONYMIZE: %s must be one of %s, got %r"
                            % (name, ", ".join(modes), v), argument=name)
    if not -1 <= payload < 2 ** 31:
        raise MapiError(EBADARG, "ANONYMIZE: payload must be -1 (keep), 0 (remove) or the bytes "
                        "to keep, got %r" % (payload,), argument="payload")
    return args


DESCRIPTOR = FunctionDescriptor(
    name="ANONYMIZE",
    args=(Arg("key", "s", doc="32 bytes: a 32-character string or 64 hex digits"),
          Arg("ip", "s", "cryptopan", doc="cryptopan, zero or keep"),
          Arg("mac", "s", "keep", doc="keep, zero or map"),
          Arg("payload", "i", -1, doc="-1 keep, 0 remove, N keep N bytes")),
    create=lambda ctx, args: Anonymize(*args),
    check=check,
    doc=__doc__,
    modifies=True,
    result="struct",
    cost="high",
    shareable=True,
    stateful=True,
    derives=lambda linktype, args: (linktype, None),
)
