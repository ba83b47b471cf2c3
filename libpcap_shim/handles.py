"""What the Python half of the libpcap drop-in knows about each pcap_t: one MAPI flow (and, for
savefiles, the offline device under it).  The two kinds of handle are two ops tables with the
same operations; the calls from C (runtime.py) never ask which kind a handle is."""
import os

import mapi
from mapi import api as mapi_api
from mapi.errors import MapiError, EBADARG

from . import filters

RING_BYTES = 64 << 20


class Handle:
    kind = None

    def __init__(self, dev, path, dlt, snaplen):
        self.dev, self.path, self.dlt, self.snaplen = dev, path, dlt, snaplen
        self.dev_snaplen = snaplen
        self.fd = None
        self.fids = {}              # function name -> fid
        self.filter_expr = None     # what the flow's BPF_FILTER runs
        self.filter_where = "none"  # none | mapi | mapi+shim | shim (run by the C half)
        self.notes = []
        self.reported = False
        self.end_error = None
        self.ring_bytes = RING_BYTES

    def connect(self):
        """Apply the handle's functions to its flow and connect it: the TO_BUFFER ring's
        address for the C half."""
        self.fids = {}
        if self.filter_expr:
            self.fids["BPF_FILTER"] = mapi.apply_function(self.fd, "BPF_FILTER", self.filter_expr)
        self.fids["TO_BUFFER"] = mapi.apply_function(self.fd, "TO_BUFFER", mapi.WAIT, self.ring_bytes)
        mapi.connect(self.fd)
        return _ring_address(self.fd, self.fids["TO_BUFFER"])

    def set_filter(self, code, started):
        """pcap_setfilter(): (filter_here, new ring address or 0)."""
        return filters.choose(self, code), 0

    def end_status(self):
        """None, or libpcap's text for the error that ended the stream."""
        return None

    def stats(self):
        raise MapiError(EBADARG, "Statistics aren't available from this handle")

    def set_direction(self, direction):
        raise MapiError(EBADARG, "Setting direction is not supported on this device")

    def restart(self):
        raise MapiError(EBADARG, "this handle cannot start over")


def _ring_address(fd, fid):
    from mapi._engine import ffi as engine_ffi
    return int(engine_ffi.cast("uintptr_t", mapi_api.function_instance(fd, fid).ring))


class OfflineHandle(Handle):
    """A savefile: an offline device of its own and one flow."""
    kind = "offline"

    @classmethod
    def open(cls, path, dlt, snaplen, pcapng):
        # raw_ts: classic pcap time stamps exactly as stored (libpcap hands them out
        # unnormalised); libpcap_compat: pcapng files fail where libpcap fails
        dev = mapi.create_offline_device(path, backend="savefile", raw_ts=True, libpcap_compat=True)
        h = cls(dev, path, dlt, snaplen)
        h.dev_snaplen = mapi.get_device_info(dev).get("snaplen") or snaplen
        return h

    def start(self):
        if self.fd is None:
            self.fd = mapi.create_flow(self.dev)
        ring = self.connect()
        mapi.start_offline_device(self.dev)
        return ring

    def set_filter(self, code, started):
        if started:
            # the replay runs: the new program runs in the C half on what the flow delivers
            self.notes.append("filter replaced after the flow started; run in the shim")
            self.filter_where = "shim"
            return 1, 0
        return super().set_filter(code, started)

    def end_status(self):
        try:
            mapi.wait_offline_device(self.dev, timeout=60)
        except MapiError as exc:
            # libpcap's text for where the reader stopped (the reader keeps it beside its own)
            self.end_error = (getattr(exc, "where", None) or {}).get("pcap_error") or str(exc)
            return self.end_error
        return None

    def restart(self):
        """The application moved pcap_file(): the same file on a new device from its start."""
        self.close()
        fresh = self.open(self.path, self.dlt, self.snaplen, None)
        self.dev, self.fd = fresh.dev, None
        self.notes.append("pcap_file() moved; the file was read again from its start")
        return self.start()

    def close(self):
        if self.fd is not None:
            mapi.close_flow(self.fd)
            self.fd = None
        mapi.delete_offline_device(self.dev)


PCAP_ERROR = -1
PCAP_ERROR_NO_SUCH_DEVICE = -5
PCAP_ERROR_PERM_DENIED = -8
# libpcap settings a MAPI device may not have: dropped when a backend refuses them
HINTS = ("immediate", "block_timeout_ms", "buffer")


class LiveHandle(Handle):
    """A live capture: one flow on the device MAPI names `name` (MAPI resolves the name: a
    "backend:ifname" or a bare interface name goes to the backend that lists it)."""
    kind = "live"

    @classmethod
    def open(cls, name, snaplen, promisc, timeout_ms, buffer_size, immediate):
        options = dict(snaplen=snaplen, promisc=bool(promisc), immediate=bool(immediate))
        if timeout_ms > 0 and not immediate:
            options["block_timeout_ms"] = timeout_ms
        if buffer_size > 0:
            options["buffer"] = buffer_size
        fd, options = cls._create_flow(name, options)
        dev = mapi.get_flow_info(fd)["device"]
        info = mapi.get_device_info(dev)
        from mapi._engine import lib as engine_lib
        h = cls(dev, None, engine_lib.mapi_linktype_to_dlt(info.get("linktype", 1)), snaplen)
        h.fd, h.name, h.options = fd, name, options
        h.dev_snaplen = info.get("snaplen") or snaplen
        if buffer_size > 0:
            h.ring_bytes = max(1 << 20, min(buffer_size, 1 << 34))
        return h

    @staticmethod
    def _create_flow(name, options):
        while True:
            try:
                return mapi.create_flow(name, **options), options
            except MapiError as exc:
                arg = exc.where.get("argument")
                if exc.code != EBADARG or arg not in HINTS or arg not in options:
                    raise
                options = {k: v for k, v in options.items() if k != arg}

    def start(self):
        return self.connect()

    def set_filter(self, code, started):
        here, _ = super().set_filter(code, started)
        if not started:
            return here, 0
        # a running capture: a new flow with the new filter replaces the running one
        old = self.fd
        self.fd = mapi.create_flow(self.dev)
        ring = self.connect()
        mapi.close_flow(old)
        return here, ring

    def stats(self):
        """Live statistics as libpcap on Linux gives them: packets that passed the filter
        (delivered or dropped for want of room), drops, drops by the interface."""
        st = mapi.stats(self.dev)
        ring = mapi.read_results(self.fd, self.fids["TO_BUFFER"]).value if "TO_BUFFER" in self.fids else {}
        passed = ring.get("written", 0) + ring.get("dropped", 0)
        return ((passed + st.get("ps_drop", 0)) & 0xFFFFFFFF,
                (st.get("ps_drop", 0) + ring.get("dropped", 0)) & 0xFFFFFFFF,
                st.get("ps_ifdrop", 0) & 0xFFFFFFFF)

    def set_direction(self, direction):
        options = dict(self.options, direction={0: "inout", 1: "in", 2: "out"}[direction])
        mapi.close_flow(self.fd)           # the device closes with it, then reopens
        self.fd, self.options = self._create_flow(self.name, options)
        self.dev = mapi.get_flow_info(self.fd)["device"]

    def close(self):
        if self.fd is not None:
            mapi.close_flow(self.fd)       # a live device closes with its last flow


def pcap_status(exc):
    from mapi.errors import ENODEV, EPERM
    return {ENODEV: PCAP_ERROR_NO_SUCH_DEVICE, EPERM: PCAP_ERROR_PERM_DENIED}.get(exc.code, PCAP_ERROR)


def live_devices():
    """(name, description) of the devices MAPI backends offer for live capture."""
    from mapi.registry import get_registry
    import logging
    out = []
    for desc in get_registry().backends.values():
        if desc.list_devices is None:
            continue
        try:
            out += [(d.get("name"), d.get("description", "")) for d in desc.list_devices()]
        except Exception as exc:   # a broken backend must not break pcap_findalldevs
            logging.getLogger("libpcap_shim").warning("backend %s: list_devices failed: %s",
                                                      desc.name, exc)
    return [(n, d) for n, d in out if n]


def os_interfaces():
    try:
        return set(os.listdir("/sys/class/net"))
    except OSError:
        return set()
