"""``netflow`` backend: a NetFlow v5 / v9 / IPFIX collector whose "packets" are flow records.

    fd = mapi.create_flow("netflow:udp:127.0.0.1:2055")       # live: a UDP collector socket
    fd = mapi.create_flow("netflow:udp:[::]:4739", max_templates=256)
    dev = mapi.create_offline_device("exports.pcap", backend="netflow")   # captured exports

Each record is a ``mapi_flowrec`` struct (mapi/csrc/flowrec.h) in a batch of link type
MAPI_LINKTYPE_FLOWREC (157, pcap's LINKTYPE_USER10), followed by every other element the exporter
sent that IANA's registry defines (backends/netflow/iana_ie.h, generated from the registry);
its wire length is the flow's byte count (capped at 2^32-1), its timestamp the arrival time of
the export packet.  So PKT_COUNTER counts records and BYTE_COUNTER sums flow bytes;
RECORD_FILTER (nfdump's filter syntax: "proto tcp and dst port 443"), RECORD_COUNTER (exact
64-bit packet/byte sums), RECORD_TOP and RECORD_REPORT (CSV or IPFIX re-export) work on the
record fields, and RECORD_STORE writes them to rotating files (`mapi collect`).

Templates (and options templates) are kept per exporter: address, version, source id /
observation domain.  Data sets that arrive before their template wait (max_pending_bytes,
pending_ttl_ms) and are decoded when it comes.  Malformed or hostile exports (bad lengths,
unknown versions, template floods past max_templates, exporters past max_exporters) are dropped
and counted in mapi.stats(dev); the collector goes on serving the other exporters.

Options: rcvbuf (live socket buffer), max_exporters, max_templates, max_pending_bytes,
pending_ttl_ms, max_queue; offline also port (only UDP packets to this port, 0: any).
"""
import errno
import ipaddress
import logging
import os
import socket
import threading

from mapi import hookimpl, native
from mapi.batch import Buffer
from mapi.descriptor import BackendDescriptor, PacketSource, parse_options
from mapi.errors import MapiError, EBADARG, EBUSY, EPERM, EPLUGIN, EOPEN
from mapi.registry import get_registry

from ._collector import ffi, lib

native.bind_engine(ffi, lib, __name__)
log = logging.getLogger("mapi.netflow")

_engine_ffi, _engine_lib = native.engine()
LINKTYPE = _engine_lib.MAPI_LINKTYPE_FLOWREC
RECORD_SIZE = _engine_ffi.sizeof("mapi_flowrec")
RECORD_SNAPLEN = RECORD_SIZE + _engine_lib.MAPI_FLOWREC_MAX_EXTRA   # fixed part and extras
RECORDS_PER_BATCH = 4096
BUFFER_BYTES = 4 << 20           # records of a batch with their extra elements
BUFFERS = 8
READ_TIMEOUT_MS = 100
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
SO_MEMINFO = 55
SK_MEMINFO_DROPS = 8

LIMITS = {
    "max_exporters": (int, 256),
    "max_templates": (int, 1024),
    "max_pending_bytes": (int, 4 << 20),
    "pending_ttl_ms": (int, 60000),
    "max_queue": (int, 1 << 20),
}


def parse_address(spec):
    """ "udp:HOST:PORT", "udp:[V6]:PORT" or "udp:PORT" -> (family, host, port)."""
    transport, _, rest = spec.partition(":")
    if transport != "udp" or not rest:
        raise MapiError(EBADARG, "netflow device %r: expected netflow:udp:HOST:PORT (e.g. "
                        "netflow:udp:127.0.0.1:2055)" % spec, argument="dev")
    if rest.startswith("["):
        host, _, port = rest[1:].partition("]:")
    elif rest.count(":") == 0:
        host, port = "0.0.0.0", rest
    else:
        host, _, port = rest.rpartition(":")
    try:
        port = int(port)
        if not 0 <= port <= 65535:
            raise ValueError
    except ValueError:
        raise MapiError(EBADARG, "netflow device %r: bad port %r" % (spec, port), argument="dev")
    try:
        family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:
        raise MapiError(EBADARG, "netflow device %r: %r is not an IP address" % (spec, host),
                        argument="dev")
    return family, host, port


class Collector:
    """The C decoder state and its record buffers, shared by the live and file sources."""

    def __init__(self, name, limits):
        c = lib.mapi_nf_new(limits["max_exporters"], limits["max_templates"],
                            limits["max_pending_bytes"], limits["pending_ttl_ms"],
                            limits["max_queue"])
        if c == ffi.NULL:
            raise MemoryError("netflow collector state")
        self.c = ffi.gc(c, lib.mapi_nf_free)
        self.name = name
        self.limits = limits
        self._free = [Buffer(BUFFER_BYTES, self._buffer_free)
                      for _ in range(BUFFERS)]
        self._cv = threading.Condition()
        self.closed = False

    def _buffer_free(self, buf):
        with self._cv:
            self._free.append(buf)
            self._cv.notify()

    def queued(self):
        return lib.mapi_nf_queued(self.c)

    def take(self, batch):
        """Move queued records into a free buffer described by batch; False if none free."""
        with self._cv:
            while not self._free and not self.closed:
                self._cv.wait(READ_TIMEOUT_MS / 1000.0)
                if not self._free:
                    return False
            if self.closed:
                return False
            buf = self._free.pop().acquire()
        n = lib.mapi_nf_take_records(self.c, native.plugin_pointer(ffi, batch.c),
                                     ffi.cast("uint8_t *", buf.cdata), BUFFER_BYTES)
        if n:
            batch.keep = buf
        else:
            buf.release()
        return True

    def stats(self):
        st = ffi.new("mapi_nf_stats *")
        lib.mapi_nf_get_stats(self.c, st)
        return {k: getattr(st, k) for k, _ in ffi.typeof("mapi_nf_stats").fields}

    def exporters(self):
        out = []
        addr = ffi.new("uint8_t[16]")
        fam, ver, dom = ffi.new("int32_t *"), ffi.new("int32_t *"), ffi.new("uint32_t *")
        pk, rc, tp = ffi.new("uint64_t *"), ffi.new("uint64_t *"), ffi.new("uint32_t *")
        i = 0
        while lib.mapi_nf_exporter(self.c, i, addr, fam, ver, dom, pk, rc, tp) == 0:
            raw = bytes(addr)
            a = ipaddress.IPv6Address(raw) if fam[0] == 6 else ipaddress.IPv4Address(raw[:4])
            out.append(dict(address=str(a), version=ver[0], domain=dom[0], packets=pk[0],
                            records=rc[0], templates=tp[0]))
            i += 1
        return out

    def last_error(self):
        return ffi.string(lib.mapi_nf_last_error(self.c)).decode(errors="replace")

    def info(self):
        return dict(record_layout="mapi_flowrec", record_size=RECORD_SIZE, linktype=LINKTYPE,
                    limits=dict(self.limits), exporters=self.exporters(),
                    last_error=self.last_error(), decoder=self.stats())

    def close(self):
        with self._cv:
            self.closed = True
            self._cv.notify_all()


def _records_batch(batch):
    """The engine batch, emptied for records (Collector.take fills it)."""
    c = batch.c
    c.n = 0
    c.seq = ffi.NULL
    c.tags = ffi.NULL
    c.linktype = LINKTYPE
    return c


class NetflowLiveSource(PacketSource):
    """A UDP collector socket."""

    offline = False
    nsec = True
    linktype = LINKTYPE
    snaplen = RECORD_SNAPLEN

    def __init__(self, spec, options):
        opts = parse_options("netflow:" + spec, options, dict(LIMITS, rcvbuf=(int, 8 << 20)))
        rcvbuf = opts.pop("rcvbuf")
        self.name = "netflow:" + spec
        family, host, port = parse_address(spec)
        self.address = (host, port)
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            if rcvbuf:
                try:
                    self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf)
                except OSError:
                    self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self.sock.bind((host, port))
        except OSError as exc:
            self.sock.close()
            if exc.errno in (errno.EACCES, errno.EPERM):
                raise MapiError(EPERM, "%s: cannot bind UDP port %d on %s: %s (ports below 1024 "
                                "need CAP_NET_BIND_SERVICE)" % (self.name, port, host, exc.strerror),
                                argument="dev") from None
            if exc.errno == errno.EADDRINUSE:
                raise MapiError(EBUSY, "%s: UDP port %d on %s is in use by another socket"
                                % (self.name, port, host), argument="dev") from None
            raise MapiError(EOPEN, "%s: cannot open the collector socket on %s port %d: %s"
                            % (self.name, host, port, exc.strerror or exc), argument="dev") from None
        self.port = self.sock.getsockname()[1]
        self.wake = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.col = Collector(self.name, opts)
        self.err = ffi.new("int32_t *")
        self._read_lock = threading.Lock()
        self.closed = False
        self.seq = 0
        self.datagrams = 0

    def next_batch_into(self, batch):
        c = _records_batch(batch)
        if self.closed:
            return False
        if not self.col.queued():
            with self._read_lock:
                if self.closed:
                    return False
                got = lib.mapi_nf_recv(self.col.c, self.sock.fileno(), self.wake, READ_TIMEOUT_MS,
                                       32, self.err)
            if got == -1:
                return False
            if got == -2:
                raise MapiError(EPLUGIN, "%s: receiving failed: %s"
                                % (self.name, os.strerror(self.err[0])), argument="dev")
            self.datagrams += max(got, 0)
        if self.col.queued() and not self.col.take(batch):
            return not self.closed
        c.first_seq = self.seq
        self.seq += c.n
        return True

    def _socket_drops(self):
        try:
            raw = self.sock.getsockopt(socket.SOL_SOCKET, SO_MEMINFO, 4 * 9)
            return int.from_bytes(raw[4 * SK_MEMINFO_DROPS:4 * SK_MEMINFO_DROPS + 4], "little")
        except OSError:
            return 0

    def stats(self):
        d = self.col.stats()
        drops = self._socket_drops() if not self.closed else getattr(self, "_final_drops", 0)
        d.update(ps_recv=d["records"], ps_drop=drops + d["records_dropped"], ps_ifdrop=0,
                 kernel_drops=drops, datagrams=self.datagrams)
        return d

    def info(self):
        d = self.col.info()
        d.update(transport="udp", address=self.address[0], port=self.port)
        return d

    def close(self):
        if self.closed:
            return
        self._final_drops = self._socket_drops()
        self.closed = True
        self.col.close()
        os.eventfd_write(self.wake, 1)
        if self._read_lock.acquire(timeout=5):
            self._read_lock.release()
        self.sock.close()
        os.close(self.wake)


class _FrameBatch:
    """A private batch for the captured export frames (never handed to the engine)."""
    __slots__ = ("c", "keep")

    def __init__(self):
        self.c = _engine_ffi.gc(_engine_lib.mapi_batch_new(65536), _engine_lib.mapi_batch_free)
        self.keep = None


class NetflowFileSource(PacketSource):
    """Captured export packets (pcap, pcapng, ERF), decoded in capture order."""

    offline = True
    nsec = True
    linktype = LINKTYPE
    snaplen = RECORD_SNAPLEN

    def __init__(self, path, fmt, options):
        opts = parse_options("netflow offline device", options, dict(LIMITS, port=(int, 0)))
        self.port = opts.pop("port")
        self.path = path
        self.name = path
        self.frames = get_registry().backend("savefile").open_offline(path, fmt, {})
        self.col = Collector(path, opts)
        self.fb = _FrameBatch()
        self.eof = False
        self.error = None
        self.seq = 0
        self.frame_count = 0

    def next_batch_into(self, batch):
        c = _records_batch(batch)
        while not self.col.queued() and not self.eof:
            try:
                more = self.frames.next_batch_into(self.fb)
            except MapiError as exc:
                self.error, more = exc, False
            if not more:
                self.eof = True
                lib.mapi_nf_flush_pending(self.col.c)      # their templates never came
                break
            self.frame_count += self.fb.c.n
            lib.mapi_nf_decode_frames(self.col.c, native.plugin_pointer(ffi, self.fb.c), self.port)
            keep, self.fb.keep = self.fb.keep, None
            if keep is not None:
                keep.release()
        if self.col.queued():
            self.col.take(batch)
            c.first_seq = self.seq
            self.seq += c.n
            return True
        if self.error is not None:
            err, self.error = self.error, None
            raise err
        return False

    def stats(self):
        d = self.col.stats()
        d.update(ps_recv=d["records"], ps_drop=d["records_dropped"], ps_ifdrop=0,
                 frames=self.frame_count)
        return d

    def info(self):
        d = self.col.info()
        d.update(path=self.path, capture=self.frames.info())
        return d

    def close(self):
        self.col.close()
        self.frames.close()


def open_live(spec, options=None):
    return NetflowLiveSource(spec, options)


def open_offline(path, fmt=None, options=None):
    return NetflowFileSource(path, fmt, options)


@hookimpl
def scampi_backends():
    return [BackendDescriptor(
        name="netflow",
        doc="NetFlow v5/v9/IPFIX collector: flow records from a UDP socket or captured exports",
        open_live=open_live,
        open_offline=open_offline,
        capabilities={"linktype": LINKTYPE, "record": "mapi_flowrec",
                      "functions": ["RECORD_FILTER", "RECORD_COUNTER", "RECORD_TOP", "RECORD_REPORT"]},
    )]
