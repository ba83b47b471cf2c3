"""The names of flow record fields, one vocabulary for RECORD_FILTER, RECORD_TOP and TOP.

A name is one of
  * TOP's names for header fields: ip.src, ip.dst (IPv4), ipv6.src, ipv6.dst, addr.src,
    addr.dst (either family), ip.proto, tcp.sport, tcp.dport, udp.sport, udp.dport, port.src,
    port.dst, and the keys conv (both addresses, both directions) and 5tuple;
  * an IPFIX element name of IANA's registry (mapi.ipfix_ie): sourceIPv4Address,
    bgpSourceAsNumber, postNATSourceIPv4Address, sourceMacAddress, ingressVRFID... -- the
    record keeps every element the exporter sent, so each of them is a field; reverse.NAME is
    the RFC 5103 reverse element;
  * a record field's short name (below, also nfdump's -s names such as srcip, dstport, srcas,
    inif, nhip, router).
"""
from collections import namedtuple

from mapi._engine import lib
from mapi.errors import MapiError, EBADARG
from mapi.ipfix_ie import BY_NAME, ELEMENTS

# code: MAPI_RF_*; kind: "number" | "address" | "bytes"; family: addresses of this family only
# (0: any); proto: only records of this protocol (0: any); ie: extra element id
Field = namedtuple("Field", "code kind family proto ie")


def _f(code, kind="number", family=0, proto=0, ie=0):
    return Field(code, kind, family, proto, ie)


NUMBERS = {
    "proto": lib.MAPI_RF_PROTO, "sport": lib.MAPI_RF_SPORT, "dport": lib.MAPI_RF_DPORT,
    "packets": lib.MAPI_RF_PACKETS, "bytes": lib.MAPI_RF_BYTES,
    "out_packets": lib.MAPI_RF_OUT_PACKETS, "out_bytes": lib.MAPI_RF_OUT_BYTES,
    "tos": lib.MAPI_RF_TOS, "dst_tos": lib.MAPI_RF_DST_TOS, "tcp_flags": lib.MAPI_RF_TCP_FLAGS,
    "input": lib.MAPI_RF_INPUT, "output": lib.MAPI_RF_OUTPUT, "src_as": lib.MAPI_RF_SRC_AS,
    "dst_as": lib.MAPI_RF_DST_AS, "src_mask": lib.MAPI_RF_SRC_MASK, "dst_mask": lib.MAPI_RF_DST_MASK,
    "vlan": lib.MAPI_RF_VLAN, "dst_vlan": lib.MAPI_RF_DST_VLAN, "direction": lib.MAPI_RF_DIRECTION,
    "version": lib.MAPI_RF_VERSION, "domain": lib.MAPI_RF_DOMAIN, "template": lib.MAPI_RF_TEMPLATE,
    "sampling": lib.MAPI_RF_SAMPLING, "family": lib.MAPI_RF_FAMILY,
    "duration": lib.MAPI_RF_DURATION, "icmp_type": lib.MAPI_RF_ICMP_TYPE,
    "icmp_code": lib.MAPI_RF_ICMP_CODE, "engine_type": lib.MAPI_RF_ENGINE_TYPE,
    "engine_id": lib.MAPI_RF_ENGINE_ID, "nat_event": lib.MAPI_RF_NAT_EVENT,
    "end_reason": lib.MAPI_RF_END_REASON, "nat_sport": lib.MAPI_RF_NAT_SPORT,
    "nat_dport": lib.MAPI_RF_NAT_DPORT, "mpls_label1": lib.MAPI_RF_MPLS_LABEL1,
    "mpls_exp1": lib.MAPI_RF_MPLS_EXP1, "ingress_vrf": lib.MAPI_RF_INGRESS_VRF,
    "egress_vrf": lib.MAPI_RF_EGRESS_VRF, "app_id": lib.MAPI_RF_APP_ID, "bpp": lib.MAPI_RF_BPP,
    "pps": lib.MAPI_RF_PPS, "bps": lib.MAPI_RF_BPS, "first": lib.MAPI_RF_FIRST,
    "last": lib.MAPI_RF_LAST, "record": lib.MAPI_RF_RECORD,
}
ADDRESSES = {"src": lib.MAPI_RF_SRC, "dst": lib.MAPI_RF_DST, "nexthop": lib.MAPI_RF_NEXTHOP,
             "exporter": lib.MAPI_RF_EXPORTER, "nat_src": lib.MAPI_RF_NAT_SRC,
             "nat_dst": lib.MAPI_RF_NAT_DST, "bgp_nexthop": lib.MAPI_RF_BGP_NEXTHOP}
BYTES = {"src_mac": lib.MAPI_RF_SRC_MAC, "dst_mac": lib.MAPI_RF_DST_MAC}

SHORT = dict({k: _f(v) for k, v in NUMBERS.items()},
             **{k: _f(v, "address") for k, v in ADDRESSES.items()},
             **{k: _f(v, "bytes") for k, v in BYTES.items()})

# TOP's names
HEADER = {
    "ip.src": _f(lib.MAPI_RF_SRC, "address", 4), "ip.dst": _f(lib.MAPI_RF_DST, "address", 4),
    "ipv6.src": _f(lib.MAPI_RF_SRC, "address", 6), "ipv6.dst": _f(lib.MAPI_RF_DST, "address", 6),
    "addr.src": SHORT["src"], "addr.dst": SHORT["dst"], "ip.proto": SHORT["proto"],
    "tcp.sport": _f(lib.MAPI_RF_SPORT, proto=6), "tcp.dport": _f(lib.MAPI_RF_DPORT, proto=6),
    "udp.sport": _f(lib.MAPI_RF_SPORT, proto=17), "udp.dport": _f(lib.MAPI_RF_DPORT, proto=17),
    "port.src": _f(lib.MAPI_RF_SPORT, proto=lib.MAPI_RTOP_PORTS),
    "port.dst": _f(lib.MAPI_RF_DPORT, proto=lib.MAPI_RTOP_PORTS),
    # in a 5tuple: 0 for transports without ports (as TOP's key)
    "port.src?": _f(lib.MAPI_RF_SPORT, proto=lib.MAPI_RTOP_PORTS_OR_ZERO),
    "port.dst?": _f(lib.MAPI_RF_DPORT, proto=lib.MAPI_RTOP_PORTS_OR_ZERO),
}
ALIASES = {"tcp.srcport": "tcp.sport", "tcp.dstport": "tcp.dport", "udp.srcport": "udp.sport",
           "udp.dstport": "udp.dport",
           # nfdump's -s statistics of one field
           "srcip": "addr.src", "dstip": "addr.dst", "srcport": "sport", "dstport": "dport",
           "srcas": "src_as", "dstas": "dst_as", "inif": "input", "outif": "output",
           "nhip": "nexthop", "nhbip": "bgp_nexthop", "router": "exporter", "srctos": "tos",
           "dsttos": "dst_tos", "srcmask": "src_mask", "dstmask": "dst_mask", "srcvlan": "vlan",
           "dstvlan": "dst_vlan", "insrcmac": "src_mac", "indstmac": "dst_mac",
           "mpls1": "mpls_label1", "odid": "domain", "dir": "direction", "ivrf": "ingress_vrf",
           "vrf": "ingress_vrf", "evrf": "egress_vrf"}
SHORTHANDS = {"conv": ("addr.src", "addr.dst"),
              "5tuple": ("ip.proto", "addr.src", "port.src?", "addr.dst", "port.dst?")}

# IANA elements that have a place in the fixed record
_FIXED_ELEMENTS = {
    1: "bytes", 2: "packets", 4: "proto", 5: "tos", 6: "tcp_flags", 7: "sport", 10: "input",
    11: "dport", 14: "output", 16: "src_as", 17: "dst_as", 9: "src_mask", 29: "src_mask",
    13: "dst_mask", 30: "dst_mask", 23: "out_bytes", 24: "out_packets", 38: "engine_type",
    39: "engine_id", 55: "dst_tos", 56: "src_mac", 58: "vlan", 59: "dst_vlan", 61: "direction",
    80: "dst_mac", 95: "app_id", 136: "end_reason", 176: "icmp_type", 177: "icmp_code",
    178: "icmp_type", 179: "icmp_code", 227: "nat_sport", 228: "nat_dport", 230: "nat_event",
    234: "ingress_vrf", 235: "egress_vrf",
}
_FIXED_ADDRESS_ELEMENTS = {8: ("src", 4), 27: ("src", 6), 12: ("dst", 4), 28: ("dst", 6),
                           15: ("nexthop", 4), 62: ("nexthop", 6), 18: ("bgp_nexthop", 4),
                           63: ("bgp_nexthop", 6), 225: ("nat_src", 4), 281: ("nat_src", 6),
                           226: ("nat_dst", 4), 282: ("nat_dst", 6)}
# elements the collector turns into other fields (times, sampling, totals): named errors
_FOLDED = {21: "first/last", 22: "first/last", 150: "first", 151: "last", 152: "first",
           153: "last", 154: "first", 155: "last", 156: "first", 157: "last", 158: "first",
           159: "last", 160: "first/last", 161: "duration", 34: "sampling", 50: "sampling",
           48: "sampling", 302: "sampling", 85: "bytes", 86: "packets", 32: "icmp_type/icmp_code",
           139: "icmp_type/icmp_code", 70: "mpls_label1/mpls_exp1"}
_KIND_OF_TYPE = {"ipv4Address": "address", "ipv6Address": "address", "macAddress": "bytes",
                 "octetArray": "bytes", "string": "bytes"}
_REVERSE_FIXED = {1: "out_bytes", 2: "out_packets", 85: "out_bytes", 86: "out_packets"}


def _element(name, what):
    reverse = name.startswith("reverse.")
    base = name[len("reverse."):] if reverse else name
    eid = BY_NAME.get(base)
    if eid is None:
        return None
    if reverse:
        if eid in _REVERSE_FIXED:
            return SHORT[_REVERSE_FIXED[eid]]
    elif eid in _FIXED_ELEMENTS:
        return SHORT[_FIXED_ELEMENTS[eid]]
    elif eid in _FIXED_ADDRESS_ELEMENTS:
        short, fam = _FIXED_ADDRESS_ELEMENTS[eid]
        return SHORT[short]._replace(family=fam)
    elif eid in _FOLDED:
        raise MapiError(EBADARG, "%s: element %s (%d) is folded into the record's %s field: "
                        "use that name" % (what, base, eid, _FOLDED[eid]), argument="field")
    kind = _KIND_OF_TYPE.get(ELEMENTS[eid][1], "number")
    return _f(lib.MAPI_RF_EXTRA, kind, ie=eid | (lib.MAPI_FLOWREC_REVERSE if reverse else 0))


def field(name, what):
    """The Field of one name (no shorthand), or MapiError naming `what` (the function)."""
    name = ALIASES.get(name, name)
    f = HEADER.get(name) or SHORT.get(name) or _element(name, what)
    if f is None:
        raise MapiError(EBADARG, "%s: unknown field %r; fields: %s, %s, any IPFIX element name "
                        "(e.g. sourceMacAddress, reverse.octetDeltaCount), and the keys %s"
                        % (what, name, ", ".join(HEADER), ", ".join(SHORT), ", ".join(SHORTHANDS)),
                        argument="field")
    return f


def key_fields(spec, what):
    """A key ("ip.src", "addr.src,port.dst", ["conv"], "5tuple") -> [(name, Field)]; conv's
    two addresses come as one pair (kind "pair" on the first)."""
    words = [w.strip() for part in (spec if isinstance(spec, (list, tuple)) else [spec])
             for w in str(part).split(",") if w.strip()]
    out = []
    for w in words:
        if w == "conv":
            out.append(("conv", field("addr.src", what)._replace(kind="pair")))
            out.append(("conv", field("addr.dst", what)))
        else:
            out.extend((n, field(n, what)) for n in SHORTHANDS.get(w, (w,)))
    if not out:
        raise MapiError(EBADARG, "%s: give a field, e.g. \"addr.src\"" % what, argument="field")
    return out


def require_records(ctx, what):
    """MapiError unless the function's input is flow records (a netflow device, a file of
    records, FLOW_REPORT's output): RECORD_* on packets would report nothing, silently."""
    device = getattr(ctx, "device", None)
    linktype = getattr(device, "linktype", lib.MAPI_LINKTYPE_FLOWREC)
    if linktype == lib.MAPI_LINKTYPE_FLOWREC:
        return
    from mapi.linktypes import lookup
    named = lookup(linktype)
    raise MapiError(EBADARG, "%s works on flow records, but %s gives packets of link type %s: read "
                    "captured NetFlow/IPFIX exports with the netflow backend (mapi run --backend "
                    "netflow, create_offline_device(path, backend=\"netflow\")), collect live with "
                    "netflow:udp:HOST:PORT, or put FLOW_REPORT before it"
                    % (what, getattr(device, "name", "the device"),
                       "%d (%s)" % (linktype, named[0]) if named else linktype),
                    argument="flow")
