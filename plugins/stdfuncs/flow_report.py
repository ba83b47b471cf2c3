"""FLOW_REPORT(format="ipfix", destination="", key="5tuple", active_timeout="30m",
idle_timeout="15s", tcp_end_timeout="5s", sampling=0, domain=0, max_flows=1048576, mtu=1400,
template_refresh=20): flow metering and export.

Meters the packets that reach it into flows and, as each flow finishes, hands its record on
(mapi_flowrec, link type 157: what a NetFlow collector device makes, so RECORD_FILTER,
RECORD_COUNTER, RECORD_TOP, RECORD_REPORT and EXPIRED_FLOWS work after it) and exports it.

key: "5tuple" (addresses, ports, protocol), "biflow" (the same, both directions one flow as in
RFC 5103: the first packet's sender is the source, the reverse direction's counts go to
out_packets/out_bytes), or a comma-separated set of src, dst, sport, dport, proto, tos, ifindex
(the other fields are 0 in the records).  Bytes are IP bytes.  A flow ends after idle_timeout
without packets, after tcp_end_timeout once a FIN or RST was seen, and at the end of the stream;
at active_timeout a long flow is reported and goes on counting afresh; when max_flows are kept
the oldest one is reported to make room.  Timeouts run on packet time.
sampling: the 1-in-N sampling applied before FLOW_REPORT (e.g. a SAMPLE), noted in the records
and the export (0: none).

format: "ipfix" (RFC 7011: templates, an options template with the exporting totals and the
sampling), "v9" (RFC 3954) or "v5"; destination: "" (records only), "udp:HOST:PORT" (one
datagram per message), "file:PATH" (messages back to back; RFC 5655 for IPFIX) or "fd:N" (the
same into descriptor N of the process that runs the engine).  Details of
the templates: mapi/csrc/fn/flow_export.h.  Result: dict of counters (packets, ignored, flows,
active, records, idle, active_timeouts, ended, forced, resources, and for an export: exported,
messages, export_bytes, templates, not_exportable, write_errors)."""
import os
import socket

from mapi._engine import ffi, lib
from mapi.descriptor import Arg, FunctionDescriptor, FunctionInstance
from mapi.errors import MapiError, EBADARG, EOPEN

from .bucket import parse_interval

FORMATS = {"ipfix": lib.MAPI_FLOWEXP_IPFIX, "v9": lib.MAPI_FLOWEXP_V9, "v5": lib.MAPI_FLOWEXP_V5}
KEY_FIELDS = {"src": lib.MAPI_FLOWKEY_SRC, "dst": lib.MAPI_FLOWKEY_DST,
              "sport": lib.MAPI_FLOWKEY_SPORT, "dport": lib.MAPI_FLOWKEY_DPORT,
              "proto": lib.MAPI_FLOWKEY_PROTO, "tos": lib.MAPI_FLOWKEY_TOS,
              "ifindex": lib.MAPI_FLOWKEY_IFINDEX}
FIVE_TUPLE = ("src", "dst", "sport", "dport", "proto")
REASONS = ("idle", "active_timeouts", "ended", "forced", "resources")


def parse_key(key):
    """-> (bits, biflow)"""
    if key in ("5tuple", "biflow"):
        return sum(KEY_FIELDS[f] for f in FIVE_TUPLE), key == "biflow"
    fields = [f.strip() for f in key.split(",") if f.strip()]
    bad = [f for f in fields if f not in KEY_FIELDS]
    if bad or not fields:
        raise MapiError(EBADARG, "FLOW_REPORT: key %r: %s; give \"5tuple\", \"biflow\" or fields "
                        "among %s" % (key, "unknown field %r" % bad[0] if bad else "no field",
                                      ", ".join(KEY_FIELDS)), argument="key")
    return sum(KEY_FIELDS[f] for f in set(fields)), False


def open_destination(dest):
    """"udp:HOST:PORT" -> a connected UDP socket; "file:PATH" -> an open file; "fd:N" -> a
    copy of this process's descriptor N (mapid: the one its client passed for "file:PATH").
    Returns the object that owns the descriptor."""
    kind, _, rest = dest.partition(":")
    if kind == "fd" and rest.isdigit():
        try:
            return os.fdopen(os.dup(int(rest)), "wb", buffering=0)
        except OSError as exc:
            raise MapiError(EOPEN, "FLOW_REPORT: descriptor %s: %s" % (rest, exc.strerror),
                            argument="destination") from None
    if kind == "udp":
        host, _, port = rest.rpartition(":")
        host = host.strip("[]")
        try:
            info = socket.getaddrinfo(host, int(port), type=socket.SOCK_DGRAM)[0]
            s = socket.socket(info[0], socket.SOCK_DGRAM)
            s.connect(info[4])
        except (ValueError, OSError) as exc:
            raise MapiError(EOPEN, "FLOW_REPORT: cannot send to %r: %s" % (dest, exc),
                            argument="destination")
        return s
    if kind == "file" and rest:
        try:
            return open(rest, "wb", buffering=0)
        except OSError as exc:
            raise MapiError(EOPEN, "FLOW_REPORT: cannot write %s: %s" % (rest, exc.strerror),
                            argument="destination", file=rest)
    raise MapiError(EBADARG, "FLOW_REPORT: destination must be \"\", \"udp:HOST:PORT\", "
                    "\"file:PATH\" or \"fd:N\", got %r" % (dest,), argument="destination")


class FlowReport(FunctionInstance):
    closes_output = True         # close_flow returns once the output is complete
    kernel = lib.mapi_flowmeter_kernel
    made_drain = lib.mapi_flowmeter_drain

    def __init__(self, fmt, dest, key, active, idle, tcp_end, sampling, domain, max_flows, mtu,
                 refresh):
        bits, biflow = parse_key(key)
        self.sink = self.exp = None
        if dest:
            self.sink = open_destination(dest)
            e = lib.mapi_flowexp_new(FORMATS[fmt], self.sink.fileno(), domain, mtu, refresh,
                                     sampling, int(biflow))
            if e == ffi.NULL:
                raise MemoryError("FLOW_REPORT: exporter")
            self.exp = ffi.gc(e, lib.mapi_flowexp_free)
        cfg = ffi.new("mapi_flowmeter_config *", dict(
            key=bits, biflow=int(biflow), max_flows=max_flows, sampling=sampling, domain=domain,
            version=FORMATS[fmt], active_ns=active, idle_ns=idle, tcp_end_ns=tcp_end,
            exporter=self.exp if self.exp is not None else ffi.NULL))
        m = lib.mapi_flowmeter_new(cfg)
        if m == ffi.NULL:
            raise MemoryError("FLOW_REPORT: cannot allocate the flow table")
        self.m = ffi.gc(m, lib.mapi_flowmeter_free)
        self.state = self.m
        self.made = lib.mapi_flowmeter_batch(self.m)

    def result(self):
        st = ffi.new("mapi_flowmeter_stats *")
        lib.mapi_flowmeter_get_stats(self.m, st)
        d = dict(packets=st.packets, ignored=st.ignored, flows=st.flows, active=st.active,
                 records=st.records)
        d.update(zip(REASONS, list(st.by_reason)[1:]))
        if self.exp is not None:
            e = ffi.new("mapi_flowexp_stats *")
            lib.mapi_flowexp_get_stats(self.exp, e)
            d.update(exported=e.records, messages=e.messages, export_bytes=e.bytes,
                     templates=e.templates, not_exportable=e.not_exportable,
                     write_errors=e.write_errors,
                     write_error=os.strerror(e.last_errno) if e.last_errno else None)
        return d, 0

    def close(self):
        sink, self.sink = self.sink, None
        if sink is not None:
            sink.close()


def check(ctx, args):
    fmt, dest, key, active, idle, tcp_end, sampling, domain, max_flows, mtu, refresh = args
    if fmt not in FORMATS:
        raise MapiError(EBADARG, "FLOW_REPORT: format must be one of %s, got %r"
                        % (", ".join(FORMATS), fmt), argument="format")
    bits, biflow = parse_key(key)
    if biflow and fmt == "v5" and dest:
        raise MapiError(EBADARG, "FLOW_REPORT: NetFlow v5 cannot carry biflows; use ipfix or v9",
                        argument="format")
    if dest and not dest.startswith(("udp:", "file:")):
        open_destination(dest)                       # raises naming the destination
    for name, v, lo, hi in (("sampling", sampling, 0, 2 ** 32 - 1), ("domain", domain, 0, 2 ** 32 - 1),
                            ("max_flows", max_flows, 1, 1 << 28), ("mtu", mtu, 512, 65535),
                            ("template_refresh", refresh, 1, 1 << 20)):
        if not lo <= v <= hi:
            raise MapiError(EBADARG, "FLOW_REPORT: %s must be %d..%d, got %r" % (name, lo, hi, v),
                            argument=name)
    return (fmt, dest, key, parse_interval("FLOW_REPORT", "active_timeout", active),
            parse_interval("FLOW_REPORT", "idle_timeout", idle),
            parse_interval("FLOW_REPORT", "tcp_end_timeout", tcp_end, allow_zero=True),
            sampling, domain, max_flows, mtu, refresh)


DESCRIPTOR = FunctionDescriptor(
    name="FLOW_REPORT",
    args=(Arg("format", "s", "ipfix", doc="ipfix, v9 or v5"),
          Arg("destination", "s", "", doc="\"\", udp:HOST:PORT or file:PATH"),
          Arg("key", "s", "5tuple", doc="5tuple, biflow, or fields: src,dst,sport,dport,proto,tos,ifindex"),
          Arg("active_timeout", "t", "30m"), Arg("idle_timeout", "t", "15s"),
          Arg("tcp_end_timeout", "t", "5s", doc="after a FIN or RST"),
          Arg("sampling", "i", 0, doc="1-in-N sampling before FLOW_REPORT, noted"),
          Arg("domain", "i", 0, doc="observation domain / source id"),
          Arg("max_flows", "i", 1 << 20), Arg("mtu", "i", 1400, doc="bytes per export message"),
          Arg("template_refresh", "i", 20, doc="templates every N messages")),
    create=lambda ctx, args: FlowReport(*args),
    check=check,
    doc=__doc__,
    filters=True,
    result="struct",
    cost="high",
    shareable=False,
    stateful=True,
    derives=lambda linktype, args: (lib.MAPI_LINKTYPE_FLOWREC, ffi.sizeof("mapi_flowrec")),
)
