"""RECORD_TOP(x, field, metric="bytes", max_values=1048576): the x keys of flow records with the
most bytes (or packets, or records), each a RecordTopEntry(value, records, packets, bytes); ties
go to more bytes, then the smaller key (IPv4 before IPv6).  A biflow record's packets and bytes
are both directions' (as nfdump -s counts them).

field uses TOP's names and the record's own (one vocabulary, see RECORD_FILTER): one field,
several joined by commas ("addr.src,port.dst"), conv (both addresses, both directions) or 5tuple:
  ip.src ip.dst ipv6.src ipv6.dst addr.src addr.dst ip.proto tcp.sport tcp.dport udp.sport
  udp.dport port.src port.dst, the short names (src dst nexthop exporter nat_src nat_dst
  bgp_nexthop proto sport dport input output src_as dst_as tos vlan src_mac dst_mac app_id
  mpls_label1 ingress_vrf ...), nfdump's -s names (srcip dstip srcport dstport srcas dstas inif
  outif nhip router ...), and every IPFIX element name (sourceIPv4Address, postNATSourceIPv4Address,
  applicationId, mplsLabelStackSection2, reverse.NAME...).
A record without a field of the key (ip.src on an IPv6 flow, tcp.dport on UDP, an element the
exporter did not send) is not counted.  value: an address string, an int, a MAC/bytes string as
hex, or a tuple for several fields.  A C kernel keeps the table; packets that are not flow
records are an error at apply time (see RECORD_FILTER)."""
import ipaddress
from collections import namedtuple

from mapi._engine import ffi, lib
from mapi.descriptor import Arg, FunctionDescriptor, FunctionInstance
from mapi.errors import MapiError, EBADARG

from ._record_vocab import key_fields, require_records

RecordTopEntry = namedtuple("RecordTopEntry", "value records packets bytes")
METRICS = {"records": 0, "flows": 0, "packets": 1, "bytes": 2}
KINDS = {"number": lib.MAPI_RTOP_NUMBER, "address": lib.MAPI_RTOP_ADDRESS,
         "bytes": lib.MAPI_RTOP_BYTES, "pair": lib.MAPI_RTOP_PAIR}
WIDTH = {"number": 8, "address": 17, "bytes": 17, "pair": 34}


def _c_fields(fields):
    arr = ffi.new("mapi_rtop_field[]", len(fields))
    for i, (_, f) in enumerate(fields):
        arr[i].field, arr[i].ie, arr[i].kind = f.code, f.ie, KINDS[f.kind]
        arr[i].family, arr[i].proto = f.family, f.proto
    return arr


def _address(part):
    fam = part[0]
    return str(ipaddress.IPv4Address(part[1:5]) if fam == 4 else ipaddress.IPv6Address(part[1:17]))


def decode_key(fields, raw):
    """The values of a key, one per field (a conversation: one (address, address) value)."""
    out, off, skip = [], 0, False
    for name, f in fields:
        if skip:
            skip = False
            continue
        w = WIDTH[f.kind]
        part = raw[off:off + w]
        off += w
        if f.kind == "pair":
            out.append((_address(part[:17]), _address(part[17:])))
            skip = True
        elif f.kind == "address":
            out.append(_address(part))
        elif f.kind == "bytes":
            out.append(":".join("%02x" % b for b in part[1:1 + part[0]]))
        else:
            out.append(int.from_bytes(part, "big"))
    return out


class RecordTop(FunctionInstance):
    kernel = lib.mapi_rtop_kernel

    def __init__(self, x, field, metric, max_values):
        self.x, self.field, self.metric, self.max_values = x, field, metric, max_values
        self.fields = key_fields(field, "RECORD_TOP")
        self._cf = _c_fields(self.fields)
        t = lib.mapi_rtop_new(self._cf, len(self.fields), max_values)
        if t == ffi.NULL:
            raise MemoryError("RECORD_TOP table")
        self.t = ffi.gc(t, lib.mapi_rtop_free)
        self.state = self.t

    def result(self):
        items = ffi.new("mapi_rtop_item[]", self.x)
        n = lib.mapi_rtop_collect(self.t, self.x, METRICS[self.metric], items)
        out = []
        for it in items[0:n]:
            values = decode_key(self.fields, bytes(it.key))
            out.append(RecordTopEntry(values[0] if len(values) == 1 else tuple(values),
                                      it.records, it.packets, it.bytes))
        return out, 0

    def reset(self):
        lib.mapi_rtop_reset(self.t)

    def info(self):
        return dict(field=self.field, metric=self.metric, distinct=lib.mapi_rtop_size(self.t),
                    overflow=lib.mapi_rtop_overflow(self.t))


def _top_check(ctx, args):
    x, field, metric, max_values = args
    fields = key_fields(field, "RECORD_TOP")
    if not lib.mapi_rtop_key_len(_c_fields(fields), len(fields)):
        raise MapiError(EBADARG, "RECORD_TOP: the key %r is too large: at most %d fields and %d "
                        "bytes (an address takes 17, a number 8)" % (field, lib.MAPI_RTOP_MAX_FIELDS,
                                                                     lib.MAPI_RTOP_KEY_BYTES),
                        argument="field")
    if metric not in METRICS:
        raise MapiError(EBADARG, "RECORD_TOP: metric must be one of %s, got %r"
                        % (", ".join(METRICS), metric), argument="metric")
    if not 1 <= x <= 1 << 20:
        raise MapiError(EBADARG, "RECORD_TOP: x must be 1..1048576, got %r" % (x,), argument="x")
    if not 1 <= max_values <= 1 << 26:
        raise MapiError(EBADARG, "RECORD_TOP: max_values must be 1..67108864", argument="max_values")
    require_records(ctx, "RECORD_TOP")
    return x, field if isinstance(field, str) else ",".join(field), metric, max_values


DESCRIPTOR = FunctionDescriptor(
    name="RECORD_TOP",
    args=(Arg("x", "i"), Arg("field", "S"), Arg("metric", "s", "bytes"),
          Arg("max_values", "i", 1 << 20)),
    create=lambda ctx, args: RecordTop(*args), check=_top_check,
    doc=__doc__, result="list", cost="low", shareable=True, stateful=True)
