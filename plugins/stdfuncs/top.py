"""TOP(x, field, max_values=1048576): the x most frequent values of a header field among the
packets that reach it, counted in C (a hash table) by packets and bytes (wire length).

Fields (outermost IP header; VLAN, MPLS, PPPoE, Linux cooked, raw IP and loopback framings are
understood):
  ip.src, ip.dst          IPv4 addresses (as tshark's ip.src / ip.dst)
  ipv6.src, ipv6.dst      IPv6 addresses
  addr.src, addr.dst      addresses of either family
  ip.proto                IPv4 protocol, or the IPv6 transport next header after extension headers
  tcp.sport, tcp.dport    TCP ports (tcp.srcport / tcp.dstport also accepted)
  udp.sport, udp.dport    UDP ports (udp.srcport / udp.dstport also accepted)
Packets without the field are not counted (later IP fragments have no ports).

Result: a list of up to x TopEntry(value, packets, bytes), most packets first; ties go to more
bytes, then to the smaller value (IPv4 before IPv6).  Addresses are strings, the rest ints.
At most max_values distinct values are tracked; packets with further new values are counted in
info()["overflow"] (then the result may miss values)."""
from collections import namedtuple

from mapi._engine import ffi, lib
from mapi.descriptor import Arg, FunctionDescriptor, FunctionInstance
from mapi.errors import MapiError, EBADARG

TopEntry = namedtuple("TopEntry", "value packets bytes")

FIELDS = {
    "ip.src": lib.MAPI_TOP_IP_SRC, "ip.dst": lib.MAPI_TOP_IP_DST,
    "ipv6.src": lib.MAPI_TOP_IPV6_SRC, "ipv6.dst": lib.MAPI_TOP_IPV6_DST,
    "addr.src": lib.MAPI_TOP_ADDR_SRC, "addr.dst": lib.MAPI_TOP_ADDR_DST,
    "ip.proto": lib.MAPI_TOP_IP_PROTO,
    "tcp.sport": lib.MAPI_TOP_TCP_SPORT, "tcp.dport": lib.MAPI_TOP_TCP_DPORT,
    "udp.sport": lib.MAPI_TOP_UDP_SPORT, "udp.dport": lib.MAPI_TOP_UDP_DPORT,
}
ALIASES = {"tcp.srcport": "tcp.sport", "tcp.dstport": "tcp.dport", "udp.srcport": "udp.sport",
           "udp.dstport": "udp.dport"}


def _value(item):
    raw = bytes(item.key)
    if item.family in (4, 6):
        import ipaddress              # the first result read pays for it, not every start-up
        return str(ipaddress.IPv4Address(raw[:4]) if item.family == 4 else ipaddress.IPv6Address(raw))
    return int.from_bytes(raw[:item.keylen], "big")


class Top(FunctionInstance):
    kernel = lib.mapi_top_kernel

    def __init__(self, x, field, max_values):
        self.x, self.field, self.max_values = x, field, max_values
        t = lib.mapi_top_new(FIELDS[field], max_values)
        if t == ffi.NULL:
            raise MemoryError("TOP: cannot allocate its table")
        self.t = ffi.gc(t, lib.mapi_top_free)
        self.state = self.t

    def _counts(self):
        c = ffi.new("mapi_top_counts *")
        lib.mapi_top_get_counts(self.t, c)
        return c

    def result(self):
        items = ffi.new("mapi_top_item[]", max(1, self.x))
        n = lib.mapi_top_collect(self.t, self.x, items)
        return [TopEntry(_value(it), it.packets, it.bytes) for it in items[0:n]], self._counts().last_ts

    def reset(self):
        lib.mapi_top_reset(self.t)

    def info(self):
        c = self._counts()
        return dict(x=self.x, field=self.field, seen=c.seen, counted=c.counted,
                    distinct=c.distinct, overflow=c.overflow, max_values=self.max_values)


def check(ctx, args):
    x, field, max_values = args
    field = ALIASES.get(field, field)
    if field not in FIELDS:
        raise MapiError(EBADARG, "TOP: unknown field %r; fields: %s"
                        % (args[1], ", ".join(list(FIELDS) + list(ALIASES))), argument="field")
    if not 1 <= x <= 1 << 20:
        raise MapiError(EBADARG, "TOP: x must be between 1 and 1048576, got %r" % (x,), argument="x")
    if not 1 <= max_values <= 1 << 26:
        raise MapiError(EBADARG, "TOP: max_values must be between 1 and 67108864, got %r"
                        % (max_values,), argument="max_values")
    return x, field, max_values


DESCRIPTOR = FunctionDescriptor(
    name="TOP",
    args=(Arg("x", "i", doc="how many values to report"),
          Arg("field", "s", doc="ip.src, ip.dst, ipv6.src, ipv6.dst, addr.src, addr.dst, ip.proto, "
                                "tcp.sport, tcp.dport, udp.sport, udp.dport"),
          Arg("max_values", "i", 1 << 20, doc="distinct values tracked at most")),
    create=lambda ctx, args: Top(*args),
    check=check,
    doc=__doc__,
    result="list",
    cost="low",
    shareable=True,
    stateful=True,
)
