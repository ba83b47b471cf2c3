"""RECORD_REPORT(format, destination, domain=0): FLOW_REPORT-style export of the flow records that
reach it: format "csv" (one line per record with a header line), "line" (nfdump's listing:
first seen, duration, protocol, addresses and ports, packets, bytes) or "ipfix" (RFC 7011 messages
with one template per address family, templates repeated every 16 messages); destination
"file:PATH", "fd:N" (an open descriptor: fd:1 is standard output) or "udp:HOST:PORT" (IPFIX
only).  Result: dict(records, messages, bytes, errors)."""
import ipaddress
import os
import socket

from mapi._engine import ffi, lib
from mapi.descriptor import Arg, FunctionDescriptor, FunctionInstance
from mapi.errors import MapiError, EBADARG, EOPEN

from ._record_vocab import require_records


FORMATS = {"csv": lib.MAPI_RREP_CSV, "ipfix": lib.MAPI_RREP_IPFIX, "line": lib.MAPI_RREP_LINE}


def _open_destination(fmt, dest):
    kind, _, where = dest.partition(":")
    if kind == "fd" and where.isdigit():               # an open descriptor (fd:1: stdout)
        try:
            return os.dup(int(where)), None
        except OSError as exc:
            raise MapiError(EOPEN, "RECORD_REPORT: descriptor %s: %s" % (where, exc.strerror),
                            argument="destination") from None
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
    closes_output = True         # close_flow returns once the output is complete
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
        raise MapiError(EBADARG, "RECORD_REPORT: format must be 'csv', 'line' or 'ipfix', got %r" % (fmt,),
                        argument="format")
    kind = dest.partition(":")[0]
    if kind not in ("file", "udp", "fd") or (kind == "udp" and fmt != "ipfix"):
        raise MapiError(EBADARG, "RECORD_REPORT: destination must be file:PATH%s, got %r"
                        % (" or udp:HOST:PORT" if fmt == "ipfix" else "", dest), argument="destination")
    if not 0 <= domain < 1 << 32:
        raise MapiError(EBADARG, "RECORD_REPORT: domain must fit 32 bits", argument="domain")
    require_records(ctx, "RECORD_REPORT")
    return args


DESCRIPTOR = FunctionDescriptor(
    name="RECORD_REPORT",
    args=(Arg("format", "s"), Arg("destination", "s"), Arg("domain", "i", 0)),
    create=lambda ctx, args: RecordReport(*args), check=_report_check,
    doc="Export flow records as CSV or IPFIX (file or UDP)", result="struct", cost="high",
    shareable=False, stateful=True)
