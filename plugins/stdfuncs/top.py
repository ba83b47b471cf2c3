"""TOP(x, field, max_values=1048576, by="packets"): the x most frequent keys among the packets
that reach it, counted in C (one hash table) by packets and bytes (wire length).

field is one header field, several joined by commas ("ip.src,tcp.dport"; a list works too),
or a shorthand:
  ip.src, ip.dst          IPv4 addresses (as tshark's ip.src / ip.dst)
  ipv6.src, ipv6.dst      IPv6 addresses
  addr.src, addr.dst      addresses of either family
  ip.proto                IPv4 protocol, or the IPv6 transport next header after extension headers
  tcp.sport, tcp.dport    TCP ports (tcp.srcport / tcp.dstport also accepted)
  udp.sport, udp.dport    UDP ports (udp.srcport / udp.dstport also accepted)
  port.src, port.dst      ports of any transport that has them (TCP, UDP, SCTP...)
  conv                    a conversation: the two addresses, both directions together (tshark
                          -z conv,ip)
  5tuple                  protocol, source address and port, destination address and port, one
                          direction (a flow record's key; ports are 0 without a transport header)
(outermost IP header; VLAN, MPLS, PPPoE, Linux cooked, raw IP and loopback framings are
understood; flow records of a netflow device give their own keys).  Packets without a field are
not counted (later IP fragments have no ports).  Up to 6 fields and 40 key bytes (an address
takes 16, a conversation 32).

by: "packets" ranks by packets, then bytes; "bytes" by bytes, then packets (nfdump -s .../bytes).

Result: a list of up to x TopEntry(value, packets, bytes), best first; ties go to the smaller
key (IPv4 before IPv6).  value is an address string or an int for one field, a tuple for several
(a conversation: (address, address), the smaller first).  entry.text names it for people:
"tcp/80 http", "tcp", "10.0.0.6 <-> 212.199.202.9", "tcp 10.0.0.6:44147 -> 192.0.2.1:80 http".
At most max_values distinct keys are tracked; packets with further new keys are counted in
info()["overflow"] (then the result may miss keys)."""
from collections import namedtuple

from mapi._engine import ffi, lib
from mapi.descriptor import Arg, FunctionDescriptor, FunctionInstance
from mapi.errors import MapiError, EBADARG

from ._names import port_text, proto_name, service_name


class TopEntry(namedtuple("TopEntry", "value packets bytes")):
    """One ranked key; equal to the plain (value, packets, bytes) tuple.  .text: for people,
    when it says more than the value (a plain address has none)."""
    text = None


FIELDS = {
    "ip.src": lib.MAPI_TOP_IP_SRC, "ip.dst": lib.MAPI_TOP_IP_DST,
    "ipv6.src": lib.MAPI_TOP_IPV6_SRC, "ipv6.dst": lib.MAPI_TOP_IPV6_DST,
    "addr.src": lib.MAPI_TOP_ADDR_SRC, "addr.dst": lib.MAPI_TOP_ADDR_DST,
    "ip.proto": lib.MAPI_TOP_IP_PROTO,
    "tcp.sport": lib.MAPI_TOP_TCP_SPORT, "tcp.dport": lib.MAPI_TOP_TCP_DPORT,
    "udp.sport": lib.MAPI_TOP_UDP_SPORT, "udp.dport": lib.MAPI_TOP_UDP_DPORT,
    "port.src": lib.MAPI_TOP_PORT_SRC, "port.dst": lib.MAPI_TOP_PORT_DST,
    "conv": lib.MAPI_TOP_CONV,
}
ALIASES = {"tcp.srcport": "tcp.sport", "tcp.dstport": "tcp.dport", "udp.srcport": "udp.sport",
           "udp.dstport": "udp.dport"}
SHORTHANDS = {"5tuple": ("ip.proto", "addr.src", "port.src?", "addr.dst", "port.dst?")}
BY = ("packets", "bytes")
_ADDRESSES = {"ip.src", "ip.dst", "ipv6.src", "ipv6.dst", "addr.src", "addr.dst"}


def _address(raw, family):
    import ipaddress                  # the first result read pays for it, not every start-up
    return str(ipaddress.IPv4Address(raw[:4]) if family == 4 else ipaddress.IPv6Address(raw))


def _decode(names, item):
    """The key of a mapi_top_item as values, one per field."""
    raw = bytes(item.key)
    out, off = [], 0
    for name in names:
        width = lib.mapi_top_field_width(FIELDS[name.rstrip("?")])
        part = raw[off:off + width]
        off += width
        if name == "conv":
            out.append((_address(part[:16], item.family), _address(part[16:], item.family)))
        elif name in _ADDRESSES:
            out.append(_address(part, item.family))
        else:
            out.append(int.from_bytes(part, "big"))
    return out


def _text(names, values):
    """The key for people: service and protocol names, conversations with arrows."""
    if names == list(SHORTHANDS["5tuple"]):
        proto, src, sport, dst, dport = values
        p = proto_name(proto)
        if not sport and not dport:
            return "%s %s -> %s" % (p, src, dst)
        fmt = lambda a, port: ("[%s]:%d" if ":" in a else "%s:%d") % (a, port)  # noqa: E731
        service = service_name(p, dport) or service_name(p, sport)
        return " ".join(x for x in ("%s %s -> %s" % (p, fmt(src, sport), fmt(dst, dport)), service) if x)
    parts = []
    for name, v in zip(names, values):
        name = name.rstrip("?")
        if name == "conv":
            parts.append("%s <-> %s" % v)
        elif name == "ip.proto":
            parts.append(proto_name(v))
        elif name.startswith(("tcp.", "udp.")):
            parts.append(port_text(name[:3], v))
        elif name.startswith("port."):
            parts.append(port_text(None, v))
        else:
            parts.append(str(v))
    return "  ".join(parts)


class Top(FunctionInstance):
    kernel = lib.mapi_top_kernel

    def __init__(self, x, names, max_values, by):
        self.x, self.names, self.max_values, self.by = x, list(names), max_values, by
        codes = [FIELDS[n.rstrip("?")] | (lib.MAPI_TOP_OPTIONAL if n.endswith("?") else 0)
                 for n in self.names]
        t = lib.mapi_top_new(ffi.new("int32_t[]", codes), len(codes),
                             lib.MAPI_TOP_BY_BYTES if by == "bytes" else lib.MAPI_TOP_BY_PACKETS,
                             max_values)
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
        out = []
        for it in items[0:n]:
            values = _decode(self.names, it)
            entry = TopEntry(values[0] if len(values) == 1 else tuple(values), it.packets, it.bytes)
            text = _text(self.names, values)
            entry.text = text if text != str(entry.value) else None
            out.append(entry)
        return out, self._counts().last_ts

    def reset(self):
        lib.mapi_top_reset(self.t)

    def info(self):
        c = self._counts()
        return dict(x=self.x, field=",".join(n.rstrip("?") for n in self.names), by=self.by,
                    seen=c.seen, counted=c.counted, distinct=c.distinct, overflow=c.overflow,
                    max_values=self.max_values)


def field_names(spec):
    """A field argument ("ip.src", "ip.src,tcp.dport", ["conv"], "5tuple") -> field names; a
    trailing ? marks a field a packet may lack (zeros in the key)."""
    words = [w.strip() for part in (spec if isinstance(spec, (list, tuple)) else [spec])
             for w in str(part).split(",") if w.strip()]
    names = []
    for w in words:
        w = ALIASES.get(w, w)
        if w in SHORTHANDS:
            names.extend(SHORTHANDS[w])
        elif w in FIELDS:
            names.append(w)
        else:
            raise MapiError(EBADARG, "TOP: unknown field %r; fields: %s, and the shorthands %s; "
                            "join several with commas" % (w, ", ".join(list(FIELDS) + list(ALIASES)),
                                                          ", ".join(SHORTHANDS)), argument="field")
    if not names:
        raise MapiError(EBADARG, "TOP: give a field, e.g. \"ip.src\"", argument="field")
    if len(names) > lib.MAPI_TOP_MAX_FIELDS or \
            sum(lib.mapi_top_field_width(FIELDS[n.rstrip("?")]) for n in names) > lib.MAPI_TOP_KEY_BYTES:
        raise MapiError(EBADARG, "TOP: the key %r is too large: at most %d fields and %d bytes "
                        "(an address takes 16, a conversation 32)"
                        % (",".join(words), lib.MAPI_TOP_MAX_FIELDS, lib.MAPI_TOP_KEY_BYTES),
                        argument="field")
    return names


def check(ctx, args):
    x, field, max_values, by = args
    names = field_names(field)
    if not 1 <= x <= 1 << 20:
        raise MapiError(EBADARG, "TOP: x must be between 1 and 1048576, got %r" % (x,), argument="x")
    if not 1 <= max_values <= 1 << 26:
        raise MapiError(EBADARG, "TOP: max_values must be between 1 and 67108864, got %r"
                        % (max_values,), argument="max_values")
    # one canonical spelling: identical TOPs of several flows are shared by the organizer
    return x, ",".join(names), max_values, by


DESCRIPTOR = FunctionDescriptor(
    name="TOP",
    args=(Arg("x", "i", doc="how many keys to report"),
          Arg("field", "S", doc="a field, several joined by commas, or conv / 5tuple: ip.src, "
                                "ip.dst, ipv6.src, ipv6.dst, addr.src, addr.dst, ip.proto, "
                                "tcp.sport, tcp.dport, udp.sport, udp.dport, port.src, port.dst"),
          Arg("max_values", "i", 1 << 20, doc="distinct keys tracked at most"),
          Arg("by", "c", "packets", doc="rank by packets or bytes", choices=BY)),
    create=lambda ctx, args: Top(args[0], args[1].split(","), args[2], args[3]),
    check=check,
    doc=__doc__,
    result="list",
    cost="low",
    shareable=True,
    stateful=True,
)
