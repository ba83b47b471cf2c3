"""RECORD_TOP(x, field, metric="bytes", max_values=1048576): the x values of a flow record field
with the most bytes (or packets, or records), each a RecordTopEntry(value, records, packets,
bytes); ties go to more bytes, then the smaller value.  Fields: src, dst, nexthop, exporter
(addresses), proto, sport, dport, input, output, src_as, dst_as, tos, vlan, version, domain,
template.  A C kernel keeps the table; packets that are not flow records are not counted."""
import ipaddress
from collections import namedtuple

from mapi._engine import ffi, lib
from mapi.descriptor import Arg, FunctionDescriptor, FunctionInstance
from mapi.errors import MapiError, EBADARG

RecordTopEntry = namedtuple("RecordTopEntry", "value records packets bytes")


TOP_FIELDS = {
    "src": lib.MAPI_RF_SRC, "dst": lib.MAPI_RF_DST, "nexthop": lib.MAPI_RF_NEXTHOP,
    "exporter": lib.MAPI_RF_EXPORTER, "proto": lib.MAPI_RF_PROTO, "sport": lib.MAPI_RF_SPORT,
    "dport": lib.MAPI_RF_DPORT, "input": lib.MAPI_RF_INPUT, "output": lib.MAPI_RF_OUTPUT,
    "src_as": lib.MAPI_RF_SRC_AS, "dst_as": lib.MAPI_RF_DST_AS, "tos": lib.MAPI_RF_TOS,
    "vlan": lib.MAPI_RF_VLAN, "version": lib.MAPI_RF_VERSION, "domain": lib.MAPI_RF_DOMAIN,
    "template": lib.MAPI_RF_TEMPLATE,
}
METRICS = {"records": 0, "packets": 1, "bytes": 2}


class RecordTop(FunctionInstance):
    kernel = lib.mapi_rtop_kernel

    def __init__(self, x, field, metric, max_values):
        self.x, self.field, self.metric, self.max_values = x, field, metric, max_values
        t = lib.mapi_rtop_new(TOP_FIELDS[field], max_values)
        if t == ffi.NULL:
            raise MemoryError("RECORD_TOP table")
        self.t = ffi.gc(t, lib.mapi_rtop_free)
        self.state = self.t

    def result(self):
        items = ffi.new("mapi_rtop_item[]", self.x)
        n = lib.mapi_rtop_collect(self.t, self.x, METRICS[self.metric], items)
        out = []
        for it in items[0:n]:
            raw = bytes(it.key)
            if it.family == 4:
                v = str(ipaddress.IPv4Address(raw[:4]))
            elif it.family == 6:
                v = str(ipaddress.IPv6Address(raw))
            else:
                v = int.from_bytes(raw[:8], "big")
            out.append(RecordTopEntry(v, it.records, it.packets, it.bytes))
        return out, 0

    def reset(self):
        lib.mapi_rtop_reset(self.t)

    def info(self):
        return dict(field=self.field, metric=self.metric, distinct=lib.mapi_rtop_size(self.t),
                    overflow=lib.mapi_rtop_overflow(self.t))


def _top_check(ctx, args):
    x, field, metric, max_values = args
    if field not in TOP_FIELDS:
        raise MapiError(EBADARG, "RECORD_TOP: unknown field %r; fields: %s"
                        % (field, ", ".join(TOP_FIELDS)), argument="field")
    if metric not in METRICS:
        raise MapiError(EBADARG, "RECORD_TOP: metric must be one of %s, got %r"
                        % (", ".join(METRICS), metric), argument="metric")
    if not 1 <= x <= 1 << 20:
        raise MapiError(EBADARG, "RECORD_TOP: x must be 1..1048576, got %r" % (x,), argument="x")
    if not 1 <= max_values <= 1 << 26:
        raise MapiError(EBADARG, "RECORD_TOP: max_values must be 1..67108864", argument="max_values")
    return args


DESCRIPTOR = FunctionDescriptor(
    name="RECORD_TOP",
    args=(Arg("x", "i"), Arg("field", "s"), Arg("metric", "s", "bytes"),
          Arg("max_values", "i", 1 << 20)),
    create=lambda ctx, args: RecordTop(*args), check=_top_check,
    doc="Top values of a flow record field by bytes, packets or records", result="list",
    cost="low", shareable=True, stateful=True)
