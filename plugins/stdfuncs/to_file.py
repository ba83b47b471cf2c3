"""TO_FILE(fmt, path, count=0): write the packets that reach it to a file, at most `count` of them
(0: all); packets pass on unchanged.

mapi.MFF_PCAP writes what `tcpdump -r IN EXPR -w OUT` writes for the same packets: a libpcap
savefile in host byte order with microsecond timestamps (ns truncated), the input's snaplen
(libpcap's default for the link type when the input's is 0 or negative) and link type (with its
FCS bits), and captured bytes cut to that snaplen.  mapi.MFF_DAG_ERF writes ERF records:
Ethernet as type 2 with the 2-byte pad and a wire length that counts the 4-byte FCS (as DAG cards
and libtrace do), raw IP as types 22/23.  Packets of another link type than the device's first
one are skipped and counted.

Records go through a 4 MiB buffer written by the C kernel; the file is complete once the stream
ends, `count` packets are written, or the flow is closed.  A relative path is relative to the
current directory at apply time.  Result: dict(path, format, packets, bytes, skipped, error)."""
import logging
import os
import time

from mapi._engine import ffi, lib
from mapi.constants import MFF_DAG_ERF, MFF_PCAP, MFF_PCAPNG
from mapi.descriptor import Arg, FunctionDescriptor, FunctionInstance
from mapi.errors import MapiError, EBADARG, EOPEN, ENOTSUP

log = logging.getLogger("mapi.TO_FILE")
FORMATS = {MFF_PCAP: lib.MAPI_TOFILE_PCAP, MFF_DAG_ERF: lib.MAPI_TOFILE_ERF}
ERF_LINKTYPES = {1: "Ethernet", 101: "raw IP", 228: "raw IPv4", 229: "raw IPv6", 12: "raw IP",
                 14: "raw IP"}
# libpcap's max_snaplen_for_dlt(): what it puts in place of a zero or negative snaplen
LIBPCAP_MAX_SNAPLEN = {231: 128 << 20, 279: 8 << 20, 249: 1 << 20}
LIVE_FLUSH_S = 1.0


def header_fields(device):
    """(snaplen, network field) of the pcap header tcpdump would write for this device."""
    snaplen = device.snaplen & 0xFFFFFFFF
    if snaplen == 0 or snaplen >= 1 << 31:
        snaplen = LIBPCAP_MAX_SNAPLEN.get(device.linktype, 262144)
    try:
        header = device.source.info().get("header") or {}
    except Exception:
        header = {}
    # the upper 16 bits of the network field (FCS length and flags) are copied as libpcap does
    ext = header.get("linktype_ext")
    if ext is None:
        ext = (header.get("fcs_bits") or 0) << 28
    return snaplen, (device.linktype & 0xFFFF) | (ext & 0xFFFF0000)


class ToFile(FunctionInstance):
    kernel = lib.mapi_to_file_kernel

    def __init__(self, ctx, fmt, path, count):
        self.device = ctx.device
        self.fmt, self.path, self.count = fmt, path, count
        snaplen, network = header_fields(ctx.device)
        err = ffi.new("char[512]")
        t = lib.mapi_to_file_open(path.encode(), FORMATS[fmt], ctx.device.linktype, network, snaplen,
                                  count, err, 512)
        if t == ffi.NULL:
            raise MapiError(EOPEN, "TO_FILE: %s" % ffi.string(err).decode(errors="replace"),
                            argument="path", file=path)
        self.t = ffi.gc(t, lib.mapi_to_file_free)
        self.state = self.t
        self.reported = False
        self.last_flush = time.monotonic()

    def _stats(self):
        st = ffi.new("mapi_to_file_stats *")
        lib.mapi_to_file_get_stats(self.t, st)
        return st

    def _check_error(self):
        st = self._stats()
        if st.error and not self.reported:
            self.reported = True
            exc = MapiError(EOPEN, "TO_FILE: writing %s failed after %d packets: %s"
                            % (self.path, st.packets, os.strerror(st.error)), file=self.path)
            log.error("%s", exc)
            self.device.errors.append(exc)

    def after_batch(self, batch):
        if not self.device.offline and time.monotonic() - self.last_flush > LIVE_FLUSH_S:
            lib.mapi_to_file_flush(self.t)
            self.last_flush = time.monotonic()
        self._check_error()

    def end(self):
        lib.mapi_to_file_close(self.t)
        self._check_error()

    def close(self):
        lib.mapi_to_file_close(self.t)

    def result(self):
        st = self._stats()
        return dict(path=self.path, format=self.fmt, packets=st.packets, bytes=st.bytes,
                    skipped=st.skipped, complete=bool(st.closed),
                    error=os.strerror(st.error) if st.error else None), st.last_ts

    def info(self):
        value, _ = self.result()
        value["limit"] = self.count
        return value


def check(ctx, args):
    fmt, path, count = args
    if fmt == MFF_PCAPNG:
        raise MapiError(ENOTSUP, "TO_FILE: writing pcapng is not supported; use mapi.MFF_PCAP or "
                        "mapi.MFF_DAG_ERF", argument="fmt")
    if fmt not in FORMATS:
        raise MapiError(EBADARG, "TO_FILE: fmt must be mapi.MFF_PCAP or mapi.MFF_DAG_ERF, got %r"
                        % (fmt,), argument="fmt")
    if not path:
        raise MapiError(EBADARG, "TO_FILE: empty path", argument="path")
    path = os.path.abspath(os.path.expanduser(path))
    parent = os.path.dirname(path)
    if os.path.isdir(path):
        raise MapiError(EOPEN, "TO_FILE: %s is a directory" % path, argument="path", file=path)
    if not os.path.isdir(parent):
        raise MapiError(EOPEN, "TO_FILE: directory %s does not exist" % parent, argument="path",
                        file=path)
    if not os.access(path if os.path.exists(path) else parent, os.W_OK):
        raise MapiError(EOPEN, "TO_FILE: %s is not writable" % path, argument="path", file=path)
    if not 0 <= count < 2 ** 64:
        raise MapiError(EBADARG, "TO_FILE: count must be >= 0 (0 = every packet), got %r" % (count,),
                        argument="count")
    if fmt == MFF_DAG_ERF and ctx.device.linktype not in ERF_LINKTYPES:
        raise MapiError(ENOTSUP, "TO_FILE: ERF records for link type %d are not supported (only %s)"
                        % (ctx.device.linktype, ", ".join(sorted(set(ERF_LINKTYPES.values())))),
                        argument="fmt")
    return fmt, path, count


DESCRIPTOR = FunctionDescriptor(
    name="TO_FILE",
    args=(Arg("fmt", "c", doc="mapi.MFF_PCAP or mapi.MFF_DAG_ERF"),
          Arg("path", "w", doc="file to create (truncated if it exists)"),
          Arg("count", "i", 0, doc="write at most this many packets; 0 = all")),
    create=lambda ctx, args: ToFile(ctx, *args),
    check=check,
    doc=__doc__,
    filters=False,
    result="file",
    cost="high",
    shareable=False,
    stateful=True,
)
