"""``pcap`` backend: any capture source libpcap knows, through pcapy-ng -- for the devices the
AF_PACKET backends (nic, ring) do not serve: ``any`` (every interface, Linux cooked headers),
``nflog`` / ``nfqueue`` (netfilter), ``usbmonN``, ``bluetooth-monitor``, ``dbus-system``...

    fd = mapi.create_flow("pcap:any")
    fd = mapi.create_flow("pcap:nflog", snaplen=65535)
    fd = mapi.create_flow("nflog")          # a bare name libpcap lists but no interface has

It is a fallback: it advertises no hardware units (BPF_FILTER runs in the engine), its
timestamps are microseconds, and every packet is copied once by pcapy into the buffer a batch
points into.  Packets come many per Python call: pcapy-ng's next_batch() hands over a buffer and
a table of records, which one C call (records.c) turns into a batch.  With a snapshot length
below the maximum, where next_batch() cannot tell the wire length, packets come one callback
each (dispatch()) -- slower; use it only when you must cut packets.

Note: pcapy-ng's wheel carries its own libpcap (get_device_info()["library"] names it), not the
system's; its device list and behaviour are that library's.

Options: snaplen (1..262144, default 262144), promisc (default True), buffer (kernel buffer
bytes, default 32 MiB as the nic backend's; 0: libpcap's 2 MiB), timeout_ms (libpcap's read
timeout, default 50).
"""
import os
import select
import threading

from mapi import hookimpl, native
from mapi.batch import BATCH_CAP
from mapi.descriptor import BackendDescriptor, PacketSource, parse_options
from mapi.errors import MapiError, EBADARG, ENODEV, ENOTSUP, EOPEN, EPERM, EPLUGIN

from ._records import ffi, lib

native.bind_engine(ffi, lib, __name__)

MAX_SNAPLEN = 262144
OPTIONS = {
    "snaplen": (int, MAX_SNAPLEN),
    "promisc": (bool, True),
    "buffer": (int, 32 << 20),
    "timeout_ms": (int, 50),
}
WAIT_S = 0.1                 # a read waits this long for packets, then lets the engine look up

# libpcap's pcap_activate() statuses (pcap/pcap.h)
PCAP_ERROR = -1
PCAP_ERROR_NO_SUCH_DEVICE = -5
PCAP_ERROR_PERM_DENIED = -8
PCAP_ERROR_PROMISC_PERM_DENIED = -11
# DLT_ values whose LINKTYPE_ (what batches carry) differs: libpcap's dlt_to_linktype()
DLT_TO_LINKTYPE = {11: 100, 12: 101, 14: 101, 15: 102, 16: 103, 18: 246, 19: 106}


def _pcapy():
    import pcapy                  # loads pcapy-ng's own libpcap: only when a pcap device opens
    return pcapy


def interposed():
    """Would pcapy-ng's libpcap calls land in another libpcap?  A libpcap in the process's global
    symbol scope (LD_PRELOADed: SCAMPI's own libpcap shim, under which this backend would
    capture through MAPI itself) takes them, so the backend is not offered then."""
    import ctypes
    try:
        ctypes.CDLL(None).pcap_findalldevs
    except AttributeError:
        return False
    return True


def library():
    """Which libpcap pcapy-ng uses: its wheel's bundled copy (path, version) or the system's."""
    pcapy = _pcapy()
    libs = os.path.join(os.path.dirname(pcapy.__file__), "pcapy_ng.libs")
    try:
        bundled = sorted(n for n in os.listdir(libs) if n.startswith("libpcap"))
    except OSError:
        bundled = []
    if not bundled:
        return dict(path="system libpcap", version="")
    import ctypes
    path = os.path.join(libs, bundled[0])
    try:
        f = ctypes.CDLL(path).pcap_lib_version      # already loaded by pcapy: no second copy
        f.restype = ctypes.c_char_p
        version = f().decode()
    except (OSError, AttributeError):
        version = ""
    return dict(path=path, version=version)


def list_devices():
    """The capture sources libpcap finds (every interface, any, nflog, nfqueue, usbmon...)."""
    if interposed():
        return []
    try:
        names = _pcapy().findalldevs()
    except Exception:              # no devices is not an error
        return []
    return [dict(name=n, description="libpcap capture source (pcapy-ng)") for n in names]


class _Records:
    """A batch's hold on the buffer pcapy returned (freed when the engine releases it)."""
    __slots__ = ("data", "cdata")

    def __init__(self, data):
        self.data = data
        self.cdata = ffi.from_buffer(data)

    def release(self):
        self.data = self.cdata = None


class PcapSource(PacketSource):
    """A libpcap capture handle (pcapy-ng), non-blocking, read a buffer of packets at a time."""

    offline = False
    nsec = False

    def __init__(self, device, options):
        opts = parse_options("pcap:%s" % device, options, OPTIONS)
        if not 0 < opts["snaplen"] <= MAX_SNAPLEN:
            raise MapiError(EBADARG, "pcap:%s: snaplen must be 1..%d, got %r"
                            % (device, MAX_SNAPLEN, opts["snaplen"]), argument="snaplen")
        self.device = device
        self.name = "pcap:%s" % device
        if interposed():
            raise MapiError(ENOTSUP, "%s: a libpcap preloaded into this process (the SCAMPI libpcap "
                            "shim?) would take pcapy-ng's calls; capture with the ring or nic "
                            "backend here" % self.name, argument="dev")
        self.snaplen = opts["snaplen"]
        self.promisc = opts["promisc"]
        self.opts = opts
        self.h = self._open(device, opts)
        self.dlt = self.h.datalink()
        self.linktype = DLT_TO_LINKTYPE.get(self.dlt, self.dlt)
        self.fd = self.h.getfd()
        self.h.setnonblock(1)
        # next_batch() gives no wire lengths: only when nothing can have been cut
        self.batched = self.snaplen == MAX_SNAPLEN and hasattr(self.h, "next_batch")
        self.closed = False
        self._lock = threading.Lock()        # held while pcapy is inside libpcap
        self.seq = 0
        self.packets = self.bytes = 0
        self.errors = []
        self._final_stats = (0, 0, 0)

    def _open(self, device, opts):
        pcapy = _pcapy()
        try:
            h = pcapy.create(device)
            h.set_snaplen(opts["snaplen"])
            h.set_promisc(1 if opts["promisc"] else 0)
            h.set_timeout(opts["timeout_ms"])
            if opts["buffer"]:
                h.set_buffer_size(opts["buffer"])
            status = h.activate()
        except pcapy.PcapError as exc:
            raise MapiError(EOPEN, "%s: %s" % (self.name, exc), argument="dev") from None
        if status >= 0:
            return h
        # pcapy gives the status only; libpcap's text comes from opening the same way again
        try:
            pcapy.open_live(device, opts["snaplen"], 1 if opts["promisc"] else 0, opts["timeout_ms"])
            text = "pcap_activate failed (status %d)" % status
        except pcapy.PcapError as exc:
            text = str(exc)
        if status == PCAP_ERROR_NO_SUCH_DEVICE:
            names = ", ".join(d["name"] for d in list_devices()) or "none"
            return self._fail(ENODEV, "%s: %s (libpcap's devices here: %s)" % (self.name, text, names))
        if status in (PCAP_ERROR_PERM_DENIED, PCAP_ERROR_PROMISC_PERM_DENIED):
            return self._fail(EPERM, "%s: %s; capturing needs CAP_NET_RAW (and CAP_NET_ADMIN for "
                              "some sources)" % (self.name, text))
        return self._fail(EPLUGIN, "%s: %s" % (self.name, text))

    @staticmethod
    def _fail(code, message):
        raise MapiError(code, message, argument="dev")

    # --- reading ------------------------------------------------------------------------------
    def next_batch_into(self, batch):
        c = batch.c
        c.n = 0
        c.seq = ffi.NULL
        c.tags = ffi.NULL
        c.linktype = self.linktype
        if self.closed:
            return False
        with self._lock:
            if self.closed:
                return False
            try:
                data, records, fields = self._read(c.cap)
            except Exception as exc:         # the device went away, libpcap failed
                err = MapiError(ENODEV, "%s: capture stopped: %s" % (self.name, exc), argument="dev")
                self.errors.append(str(err))
                raise err from None
        if not records:
            try:
                select.select([self.fd], [], [], WAIT_S)     # packets, or time to look up
            except (OSError, ValueError):                     # closed meanwhile
                pass
            return not self.closed
        hold = _Records(data)
        n = len(records) // (4 * fields)
        self.bytes += lib.pcapb_fill(native.plugin_pointer(ffi, c), ffi.cast("uint8_t *", hold.cdata),
                                     ffi.cast("uint32_t *", ffi.from_buffer(records)), n, fields,
                                     self.linktype)
        batch.keep = hold
        c.first_seq = self.seq
        self.seq += n
        self.packets += n
        return True

    def _read(self, cap):
        """(packet buffer, record table, fields per record) of what libpcap has now."""
        if self.batched:
            data, records = self.h.next_batch(min(cap, BATCH_CAP))
            return data, records, lib.PCAPB_FIELDS_BATCH
        import array
        buf, recs = bytearray(), array.array("I")

        def one(hdr, pkt):                  # the fallback: one Python call per packet
            sec, usec = hdr.getts()
            recs.extend((sec, usec, len(buf), hdr.getcaplen(), hdr.getlen()))
            buf.extend(pkt)
        self.h.dispatch(min(cap, 4096), one)
        return bytes(buf), recs.tobytes(), lib.PCAPB_FIELDS_WIRE

    # --- stats and info -----------------------------------------------------------------------
    def _stats(self):
        if self.closed:
            return self._final_stats
        with self._lock:
            if self.closed:
                return self._final_stats
            return tuple(self.h.stats())

    def stats(self):
        recv, drop, ifdrop = self._stats()
        return dict(ps_recv=recv, ps_drop=drop, ps_ifdrop=ifdrop, kernel_drops=drop,
                    delivered=self.packets, delivered_bytes=self.bytes)

    def info(self):
        return dict(device=self.device, backend="pcap", dlt=self.dlt, linktype=self.linktype,
                    snaplen=self.snaplen, promisc=self.promisc, timestamps="us",
                    reading="next_batch (a buffer per call)" if self.batched
                    else "dispatch (a callback per packet)",
                    library=library(), stats=self.stats(), errors=list(self.errors))

    def close(self):
        if self.closed:
            return
        with self._lock:                     # the reader is never inside libpcap for long
            self._final_stats = tuple(self.h.stats())
            self.closed = True
            self.h.close()


def open_live(device, options=None):
    return PcapSource(device, options)


@hookimpl
def scampi_backends():
    return [BackendDescriptor(
        name="pcap",
        doc="any capture source libpcap knows (any, nflog, nfqueue, usbmon...) through pcapy-ng; "
            "no hardware units",
        open_live=open_live,
        list_devices=list_devices,
        capabilities={"units": [], "timestamps": "us"},
    )]


@hookimpl
def scampi_claim_live(name):
    """A bare name libpcap lists that is not a network interface (those go to the ring)."""
    if os.path.exists(os.path.join("/sys/class/net", name)) or "/" in name or interposed():
        return None
    try:
        known = _pcapy().findalldevs()
    except Exception:
        return None
    return "pcap" if name in known else None
