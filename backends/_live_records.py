"""Functions on flow records that come with the netflow collector (RECORD_FILTER is a standard
function: plugins/stdfuncs/record_filter.py).  Each runs a C kernel over batches of
mapi_flowrec; on packets that are not flow records they do nothing.

RECORD_COUNTER()
    Exact 64-bit sums: records, packets, bytes, out_packets, out_bytes, and scaled_packets /
    scaled_bytes (in + out, times each record's announced sampling interval).
RECORD_TOP(x, field, metric="bytes", max_values=1048576)
    The x values of a record field with the most bytes (or packets, or records), each a
    RecordTopEntry(value, records, packets, bytes); ties go to more bytes, then the smaller value.
    Fields: src, dst, nexthop, exporter (addresses), proto, sport, dport, input, output, src_as,
    dst_as, tos, vlan, version, domain, template.
RECORD_REPORT(format, destination)
    FLOW_REPORT-style export of the records that reach it: format "csv" (one line per record
    with a header line) or "ipfix" (RFC 7011 messages with one template per address family,
    templates repeated every 16 messages); destination "file:PATH" or "udp:HOST:PORT" (IPFIX
    only).  Result: dict(records, messages, bytes, errors).
"""
import ipaddress
import os
import socket
from collections import namedtuple

from mapi._engine import ffi, lib
from mapi.descriptor import Arg, FunctionDescriptor, FunctionInstance
from mapi.errors import MapiError, EBADARG, EOPEN

RecordTopEntry = namedtuple("RecordTopEntry", "value records packets bytes")


class RecordCounter(FunctionInstance):
    kernel = lib.mapi_rsum_kernel

    def __init__(self):
        self.st = ffi.new("mapi_rsum_state *")
        self.state = self.st

    def result(self):
        s = self.st
        return dict(records=s.records, packets=s.packets, bytes=s.bytes,
                    out_packets=s.out_packets, out_bytes=s.out_bytes,
                    scaled_packets=s.scaled_packets, scaled_bytes=s.scaled_bytes), s.last_ts

    def reset(self):
        ffi.memmove(self.st, bytes(ffi.sizeof("mapi_rsum_state")), ffi.sizeof("mapi_rsum_state"))


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


FORMATS = {"csv": lib.MAPI_RREP_CSV, "ipfix": lib.MAPI_RREP_IPFIX}


def _open_destination(fmt, dest):
    kind, _, where = dest.partition(":")
    if kind == "file" and where:
        try:
            return os.open(where, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644), None
        except OSError as exc:
            raise MapiError(EOPEN, "RECORD_REPORT: cannot create %s: %s" % (where, exc.strerror),
                            argument="destination", file=where) from None
    if kind == "udp" and fmt == "ipfix":
        if where.startswith("["):
            host, _, port = where[1:].partition("]:")
        else:
            host, _, port = where.rpartition(":")
        try:
            port = int(port)
            fam = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
        except ValueError:
            raise MapiError(EBADARG, "RECORD_REPORT: bad UDP destination %r (udp:HOST:PORT)" % dest,
                            argument="destination") from None
        s = socket.socket(fam, socket.SOCK_DGRAM)
        try:
            s.connect((host, port))
        except OSError as exc:
            s.close()
            raise MapiError(EOPEN, "RECORD_REPORT: cannot reach %s: %s" % (dest, exc.strerror),
                            argument="destination") from None
        return s.fileno(), s
    raise MapiError(EBADARG, "RECORD_REPORT: destination must be file:PATH%s, got %r"
                    % (" or udp:HOST:PORT" if fmt == "ipfix" else "", dest), argument="destination")


class RecordReport(FunctionInstance):
    kernel = lib.mapi_rrep_kernel

    def __init__(self, fmt, dest, domain):
        self.fmt, self.dest = fmt, dest
        self.fd, self.sock = _open_destination(fmt, dest)
        r = lib.mapi_rrep_new(FORMATS[fmt], self.fd, domain, 1400)
        if r == ffi.NULL:
            raise MemoryError("RECORD_REPORT buffers")
        self.r = r
        self.state = r
        self.err = ffi.new("int32_t *")
        self.last_error = ""

    def _flush(self):
        if self.r is not None and lib.mapi_rrep_flush(self.r, self.err) < 0:
            self.last_error = os.strerror(self.err[0])

    def after_batch(self, batch):
        self._flush()

    def result(self):
        if self.r is None:
            return getattr(self, "_final", (dict(records=0, messages=0, bytes=0, errors=0), 0))
        vals = [ffi.new("uint64_t *") for _ in range(4)]
        lib.mapi_rrep_counts(self.r, *vals)
        return dict(zip(("records", "messages", "bytes", "errors"), (v[0] for v in vals))), 0

    def end(self):
        self._flush()

    def close(self):
        self._flush()
        if self.r is not None:
            self._final = self.result()
            lib.mapi_rrep_free(self.r)
            self.r = None
            self.state = None
        if self.sock is not None:
            self.sock.close()
        elif self.fd is not None:
            os.close(self.fd)
        self.fd = self.sock = None

    def info(self):
        return dict(format=self.fmt, destination=self.dest, last_error=self.last_error)


def _report_check(ctx, args):
    fmt, dest, domain = args
    if fmt not in FORMATS:
        raise MapiError(EBADARG, "RECORD_REPORT: format must be 'csv' or 'ipfix', got %r" % (fmt,),
                        argument="format")
    kind = dest.partition(":")[0]
    if kind not in ("file", "udp") or (kind == "udp" and fmt != "ipfix"):
        raise MapiError(EBADARG, "RECORD_REPORT: destination must be file:PATH%s, got %r"
                        % (" or udp:HOST:PORT" if fmt == "ipfix" else "", dest), argument="destination")
    if not 0 <= domain < 1 << 32:
        raise MapiError(EBADARG, "RECORD_REPORT: domain must fit 32 bits", argument="domain")
    return args


DESCRIPTORS = [
    FunctionDescriptor(
        name="RECORD_COUNTER", args=(), create=lambda ctx, args: RecordCounter(),
        doc="Exact sums of flow records' counters", result="struct", cost="low",
        shareable=True, stateful=True),
    FunctionDescriptor(
        name="RECORD_TOP",
        args=(Arg("x", "i"), Arg("field", "s"), Arg("metric", "s", "bytes"),
              Arg("max_values", "i", 1 << 20)),
        create=lambda ctx, args: RecordTop(*args), check=_top_check,
        doc="Top values of a flow record field by bytes, packets or records", result="list",
        cost="low", shareable=True, stateful=True),
    FunctionDescriptor(
        name="RECORD_REPORT",
        args=(Arg("format", "s"), Arg("destination", "s"), Arg("domain", "i", 0)),
        create=lambda ctx, args: RecordReport(*args), check=_report_check,
        doc="Export flow records as CSV or IPFIX (file or UDP)", result="struct", cost="high",
        shareable=False, stateful=True),
]
