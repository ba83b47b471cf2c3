"""The Python half of the libpcap drop-in (runs inside the application, in the embedded
interpreter of libpcap.so.0.8).

Every pcap_t becomes a MAPI flow: an offline handle is an offline device plus one flow on it; the
filter the application sets becomes a BPF_FILTER function of that flow; its packets reach the
C half through the flow's TO_BUFFER ring, which C reads directly.  This module only runs when a
handle opens, compiles, sets a filter, starts, ends or closes: never per packet.

MAPI_PCAP_REPORT=FILE (or "stderr") appends one JSON line per closed handle: its MAPI device, flow
and functions with their packet counters, so one can check that the packets went through MAPI.
"""
import json
import logging
import os
import stat
import struct
import sys
import tempfile
import threading

# Imported now, while the process may still read the interpreter's files: tcpdump drops its
# privileges between opening a handle and starting to read it.
import queue  # noqa: F401  (used by the device threads)

import mapi
from mapi import api as mapi_api
from mapi.errors import MapiError, ENODEV, EPERM
from mapi.registry import get_registry
from mapi._engine import ffi as engine_ffi, lib as engine_lib
from mapi import bpf_jit

log = logging.getLogger("libpcap_shim")

PCAP_ERROR = -1
PCAP_ERROR_NO_SUCH_DEVICE = -5
PCAP_ERROR_PERM_DENIED = -8
PCAP_NETMASK_UNKNOWN = 0xFFFFFFFF
RING_BYTES = 64 << 20

_lock = threading.Lock()
_handles = {}          # address of the pcap_t -> Handle
_programs = {}         # compiled program bytes -> (expr, optimize, netmask, dlt, snaplen)
_report = None         # open file for MAPI_PCAP_REPORT
_ffi = _lib = None


class Handle:
    """What the Python half knows about one pcap_t."""

    def __init__(self, kind, dev, path=None, dlt=None, snaplen=None):
        self.kind = kind
        self.dev = dev
        self.path = path
        self.dlt = dlt
        self.snaplen = snaplen
        self.fd = None
        self.fids = {}              # function name -> fid
        self.filter_expr = None     # what the flow's BPF_FILTER runs
        self.filter_where = "none"  # none | mapi | shim (raw program run by the C half)
        self.notes = []
        self.reported = False
        self.end_error = None
        self.pcapng = False
        self.dev_snaplen = snaplen
        self.ring_bytes = RING_BYTES
        self.open_args = None


# --- helpers ------------------------------------------------------------------------------------
def _put(buf, text, size=256):
    data = text.encode("utf-8", "replace")[:size - 1]
    _ffi.memmove(buf, data + b"\0", len(data) + 1)


def _key(p):
    return int(_ffi.cast("uintptr_t", p))


def _engine_addr(name):
    return int(engine_ffi.cast("uintptr_t", engine_ffi.addressof(engine_lib, name)))


def _accepts_all(prog):
    """A one-instruction `ret #k` with k > 0 (tcpdump's empty filter)."""
    if len(prog) != 8:
        return False
    code, _, _, k = struct.unpack("=HBBI", prog)
    return code == 0x06 and k != 0


def _compile(expr, dlt, snaplen, optimize, netmask):
    """libpcap's own compiler as the engine runs it (a pcap_open_dead handle, as BPF_FILTER
    compiles): (program bytes, None) or (None, libpcap's message)."""
    prog = engine_ffi.new("mapi_bpf_insn **")
    n = engine_ffi.new("uint32_t *")
    err = engine_ffi.new("char[512]")
    rc = engine_lib.mapi_bpf_compile(engine_ffi.NULL, dlt, snaplen, expr.encode("latin-1"),
                                     optimize, netmask, prog, n, err)
    if rc < 0:
        return None, engine_ffi.string(err).decode("utf-8", "replace")
    code = bytes(engine_ffi.buffer(prog[0], n[0] * 8))
    engine_lib.mapi_free(prog[0])
    return code, None


# --- native BPF ---------------------------------------------------------------------------------
def _jit_setup():
    """BPF_FILTER's native code (mapi.bpf_jit) inside an application.  Its cache must stay
    readable after the application drops privileges (tcpdump runs as user "tcpdump" by the time
    the flow starts), so unless MAPI_CACHE_DIR says otherwise it lives in a directory of this
    user's that others may read but not write.  Programs are compiled at pcap_compile() time,
    before any privilege drop; BPF_FILTER later finds them loaded."""
    if os.environ.get("MAPI_BPF_JIT") == "0":
        return
    if "MAPI_CACHE_DIR" not in os.environ:
        d = os.path.join(tempfile.gettempdir(), "scampi-pcap-shim-%d" % os.getuid())
        try:
            os.makedirs(d, mode=0o755, exist_ok=True)
            st = os.lstat(d)
        except OSError:
            os.environ["MAPI_BPF_JIT"] = "0"
            return
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o022:
            os.environ["MAPI_BPF_JIT"] = "0"      # someone else's or writable by others: unsafe
            return
        os.environ["MAPI_CACHE_DIR"] = d
    os.environ.setdefault("MAPI_BPF_JIT", "sync")


def _precompile(code):
    if _accepts_all(code) or not bpf_jit.enabled():
        return
    insns = [struct.unpack_from("=HBBI", code, i) for i in range(0, len(code), 8)]
    try:
        bpf_jit.compile_native(insns)
    except Exception as exc:            # the interpreter runs it then
        log.warning("native BPF precompile failed: %s", exc)


# --- savefile errors in libpcap's words ---------------------------------------------------------
def libpcap_error_text(exc):
    """The message libpcap gives where the MAPI reader stopped (the reader keeps libpcap's own
    text beside its own); MAPI's message when libpcap has no equivalent."""
    text = (getattr(exc, "where", None) or {}).get("pcap_error")
    return text or str(exc)


# --- reports ------------------------------------------------------------------------------------
def _open_report():
    global _report
    dest = os.environ.get("MAPI_PCAP_REPORT")
    if not dest:
        return
    if dest == "stderr":
        _report = sys.stderr
    else:
        _report = open(dest, "a", buffering=1)


def _report_handle(h, seen=None, delivered=None):
    if _report is None or h.reported:
        return
    h.reported = True
    rec = dict(pid=os.getpid(), kind=h.kind, device=h.dev, path=h.path, flow=h.fd,
               filter=h.filter_expr, filter_where=h.filter_where, notes=h.notes, functions=[])
    try:
        info = mapi.get_device_info(h.dev)
        rec["device_packets"] = info.get("packets")
        rec["device_backend"] = info.get("backend")
    except MapiError:
        pass
    if h.fd is not None:
        for name, fid in h.fids.items():
            try:
                fi = mapi.get_function_info(h.fd, fid)
            except MapiError:
                continue
            entry = dict(fid=fid, name=name, pkts_in=fi.get("pkts_in"), pkts_out=fi.get("pkts_out"))
            if name == "BPF_FILTER":
                entry["native"] = bool(fi.get("native"))
            if name == "TO_BUFFER":
                try:
                    entry["ring"] = mapi.read_results(h.fd, fid).value
                except MapiError:
                    pass
            rec["functions"].append(entry)
    if seen is not None:
        rec["shim_seen"] = seen
        rec["shim_delivered"] = delivered
    if h.end_error:
        rec["end_error"] = h.end_error
    try:
        _report.write(json.dumps(rec) + "\n")
        _report.flush()
    except (OSError, ValueError):
        pass


# --- the calls the C half makes -----------------------------------------------------------------
def bind(ffi, lib):
    global _ffi, _lib
    _ffi, _lib = ffi, lib

    @ffi.def_extern(error=0)
    def shim_py_init(errbuf):
        _jit_setup()
        # MAPI's own log lines would be extra stderr output the application never printed;
        # MAPI_PCAP_LOG=1 lets them through
        if not os.environ.get("MAPI_PCAP_LOG"):
            logging.getLogger().addHandler(logging.NullHandler())
        try:
            get_registry()
            lib.shim_set_engine(_engine_addr("mapi_ring_next_many"), _engine_addr("mapi_ring_interrupt"),
                                _engine_addr("mapi_ring_clear_interrupt"), _engine_addr("mapi_ring_fd"))
            _open_report()
        except Exception as exc:
            _put(errbuf, "MAPI libpcap shim: %s: %s" % (type(exc).__name__, exc))
            return 0
        return 1

    @ffi.def_extern(error=0)
    def shim_py_open_offline(p, path, dlt, snaplen, pcapng, errbuf):
        name = ffi.string(path).decode("utf-8", "surrogateescape")
        try:
            # raw_ts: classic pcap time stamps exactly as stored (libpcap hands them out
            # unnormalised); libpcap_compat: pcapng files fail where libpcap fails
            dev = mapi.create_offline_device(name, backend="savefile", raw_ts=True,
                                             libpcap_compat=True)
        except MapiError as exc:
            _put(errbuf, "%s: %s" % (name, exc))
            return 0
        h = Handle("offline", dev, name, dlt, snaplen)
        h.pcapng = bool(pcapng)
        h.dev_snaplen = mapi.get_device_info(dev).get("snaplen") or snaplen
        with _lock:
            _handles[_key(p)] = h
        return 1

    @ffi.def_extern(error=0)
    def shim_py_compile(dlt, snaplen, file_linktype, swapped, expr, optimize, netmask, insns,
                        length, errbuf):
        text = ffi.string(expr).decode("latin-1")
        if file_linktype >= 0:
            # a savefile handle: libpcap generates savefile-specific code (DLT_NULL, DLT_ENC)
            if lib.shim_savefile_compile(file_linktype, snaplen, swapped, expr, optimize, netmask,
                                         insns, length, errbuf) < 0:
                return 0
            code = bytes(ffi.buffer(ffi.cast("char *", insns[0]), length[0] * 8))
        else:
            prog = engine_ffi.new("mapi_bpf_insn **")
            n = engine_ffi.new("uint32_t *")
            err = engine_ffi.new("char[512]")
            if engine_lib.mapi_bpf_compile(engine_ffi.NULL, dlt, snaplen, expr, optimize, netmask,
                                           prog, n, err) < 0:
                _put(errbuf, engine_ffi.string(err).decode("utf-8", "replace"))
                return 0
            code = bytes(engine_ffi.buffer(prog[0], n[0] * 8))
            insns[0] = int(engine_ffi.cast("uintptr_t", prog[0]))   # the C half owns it now
            length[0] = n[0]
        with _lock:
            _programs[code] = (text, optimize, netmask, dlt, snaplen)
        _precompile(code)
        return 1

    @ffi.def_extern(error=0)
    def shim_py_setfilter(p, insns, n, started, filter_here, ring, errbuf):
        h = _handles.get(_key(p))
        if h is None:
            _put(errbuf, "MAPI libpcap shim: unknown handle")
            return 0
        code = bytes(ffi.buffer(insns, n * 8))
        ring[0] = 0
        if started and h.kind == "offline":
            # the replay runs: the new program runs in the C half on what the flow delivers
            h.notes.append("filter replaced after the flow started; run in the shim")
            h.filter_where = "shim"
            filter_here[0] = 1
            return 1
        _choose_filter(h, code, filter_here)
        if started:
            # a live capture: a new flow with the new filter replaces the running one
            try:
                old = h.fd
                h.fd = mapi.create_flow(h.dev)
                ring[0] = _connect(h)
                mapi.close_flow(old)
            except MapiError as exc:
                _put(errbuf, str(exc))
                return 0
        return 1

    def _choose_filter(h, code, filter_here):
        known = _programs.get(code)
        h.filter_expr = None
        if _accepts_all(code):
            h.filter_where = "none"
            filter_here[0] = 0
            return
        if known is None:
            h.filter_where = "shim"
            h.notes.append("program not compiled by pcap_compile; run in the shim")
            filter_here[0] = 1
            return
        expr, optimize = known[0], known[1]
        # BPF_FILTER compiles with optimisation on, an unknown netmask, the device's snaplen and a
        # pcap_open_dead() handle.  The same instructions: the flow's filter is the application's.
        # Only the optimisation flag differs: the same packets pass, and the C half re-checks.
        # Anything else (netmask, savefile-specific code): the C half runs the program alone.
        dev_snaplen = h.dev_snaplen or 262144
        mine, err = _compile(expr, h.dlt, dev_snaplen, 1, PCAP_NETMASK_UNKNOWN)
        if mine is not None and mine != code and optimize != 1:
            plain, _ = _compile(expr, h.dlt, dev_snaplen, optimize, PCAP_NETMASK_UNKNOWN)
            where = "mapi+shim" if plain == code else "shim"
        else:
            where = "mapi" if mine == code else "shim"
        if where == "shim":
            h.notes.append("BPF_FILTER would not run this very program (%s); run in the shim"
                           % (err or "libpcap compiles it differently for this handle"))
        else:
            h.filter_expr = expr
        h.filter_where = where
        filter_here[0] = 0 if where == "mapi" else 1

    @ffi.def_extern(error=0)
    def shim_py_start(p, ring, errbuf):
        h = _handles.get(_key(p))
        if h is None:
            _put(errbuf, "MAPI libpcap shim: unknown handle")
            return 0
        try:
            if h.fd is None:
                h.fd = mapi.create_flow(h.dev)
            ring[0] = _connect(h)
            if h.kind == "offline":
                mapi.start_offline_device(h.dev)
        except MapiError as exc:
            _put(errbuf, str(exc))
            return 0
        return 1

    def _connect(h):
        """Apply the handle's functions to its flow, connect it; the TO_BUFFER ring's address."""
        h.fids = {}
        if h.filter_expr:
            h.fids["BPF_FILTER"] = mapi.apply_function(h.fd, "BPF_FILTER", h.filter_expr)
        h.fids["TO_BUFFER"] = mapi.apply_function(h.fd, "TO_BUFFER", mapi.WAIT, h.ring_bytes)
        mapi.connect(h.fd)
        instance = mapi_api.function_instance(h.fd, h.fids["TO_BUFFER"])
        return int(engine_ffi.cast("uintptr_t", instance.ring))

    @ffi.def_extern(error=0)
    def shim_py_end_status(p, errbuf):
        h = _handles.get(_key(p))
        if h is None:
            return 1
        try:
            mapi.wait_offline_device(h.dev, timeout=60)
        except MapiError as exc:
            text = libpcap_error_text(exc)
            h.end_error = text
            _put(errbuf, text)
            return 0
        return 1

    @ffi.def_extern()
    def shim_py_close(p, seen, delivered):
        with _lock:
            h = _handles.pop(_key(p), None)
        if h is None:
            return
        _report_handle(h, seen, delivered)
        try:
            if h.fd is not None:
                mapi.close_flow(h.fd)       # a live device closes with its last flow
            if h.kind == "offline":
                mapi.delete_offline_device(h.dev)
        except MapiError as exc:
            log.warning("closing %s: %s", h.dev, exc)

    @ffi.def_extern()
    def shim_py_report(p, seen, delivered):
        h = _handles.get(_key(p))
        if h is not None:
            _report_handle(h, seen, delivered)

    @ffi.def_extern(error=0)
    def shim_py_activate(p, device, snaplen, promisc, timeout_ms, buffer_size, immediate, status,
                         dlt, errbuf):
        name = ffi.string(device).decode("utf-8", "surrogateescape")
        if name == "any":
            status[0] = PCAP_ERROR
            _put(errbuf, "MAPI devices capture on one interface; the \"any\" pseudo-device is not "
                 "available through MAPI")
            return 0
        backend = _live_backend_name(name)
        if backend is None and name in _os_interfaces():
            status[0] = PCAP_ERROR
            _put(errbuf, "MAPI has no backend installed that captures on network interfaces "
                 "(the nic and ring backends)")
            return 0
        options = dict(snaplen=snaplen, promisc=bool(promisc))
        if backend == "ring":
            options["immediate"] = bool(immediate)
            if timeout_ms > 0 and not immediate:
                options["block_timeout_ms"] = timeout_ms
        elif backend == "nic" and buffer_size > 0:
            options["buffer"] = buffer_size
        if backend and ":" not in name:
            name = "%s:%s" % (backend, name)
        try:
            fd = mapi.create_flow(name, **options)
        except MapiError as exc:
            status[0] = _pcap_status(exc)
            if status[0] != PCAP_ERROR_NO_SUCH_DEVICE:
                _put(errbuf, str(exc))
            return 0
        options_used = (name, options)
        dev = mapi.get_flow_info(fd)["device"]
        dinfo = mapi.get_device_info(dev)
        h = Handle("live", dev, None, engine_lib.mapi_linktype_to_dlt(dinfo.get("linktype", 1)),
                   snaplen)
        h.fd = fd
        h.open_args = options_used
        h.dev_snaplen = dinfo.get("snaplen") or snaplen
        if buffer_size > 0:
            h.ring_bytes = max(1 << 20, min(buffer_size, 1 << 34))
        with _lock:
            _handles[_key(p)] = h
        dlt[0] = h.dlt
        status[0] = 0
        return 1

    @ffi.def_extern(error=0)
    def shim_py_setdirection(p, direction, errbuf):
        h = _handles.get(_key(p))
        if h is None or h.kind != "live":
            _put(errbuf, "Setting direction is not supported on this device")
            return 0
        name, options = h.open_args
        options = dict(options, direction={0: "inout", 1: "in", 2: "out"}[direction])
        try:
            mapi.close_flow(h.fd)           # the device closes with it, then reopens
            h.fd = mapi.create_flow(name, **options)
        except MapiError as exc:
            _put(errbuf, str(exc))
            return 0
        h.open_args = (name, options)
        h.dev = mapi.get_flow_info(h.fd)["device"]
        return 1

    @ffi.def_extern(error=0)
    def shim_py_stats(p, recv, drop, ifdrop, errbuf):
        """Live statistics as libpcap on Linux gives them: packets that passed the filter
        (delivered or dropped for want of room), drops, drops by the interface."""
        h = _handles.get(_key(p))
        if h is None:
            _put(errbuf, "MAPI libpcap shim: unknown handle")
            return 0
        try:
            st = mapi.stats(h.dev)
            ring = {}
            if h.fd is not None and "TO_BUFFER" in h.fids:
                ring = mapi.read_results(h.fd, h.fids["TO_BUFFER"]).value
        except MapiError as exc:
            _put(errbuf, str(exc))
            return 0
        passed = ring.get("written", 0) + ring.get("dropped", 0)
        recv[0] = (passed + st.get("ps_drop", 0)) & 0xFFFFFFFF
        drop[0] = (st.get("ps_drop", 0) + ring.get("dropped", 0)) & 0xFFFFFFFF
        ifdrop[0] = st.get("ps_ifdrop", 0) & 0xFFFFFFFF
        return 1

    @ffi.def_extern(error=0)
    def shim_py_devices(buf, size):
        lines = "".join("%s\t%s\n" % (n, d or "") for n, d in _mapi_devices())
        _put(buf, lines, size)
        return 1


def _live_backend_name(name):
    """The backend a live device name goes to: "ring:eth0" names it; a bare interface name
    goes to the AF_PACKET ring (what libpcap itself uses on Linux) when it is installed."""
    backends = get_registry().backends
    if ":" in name and name.split(":", 1)[0] in backends:
        return name.split(":", 1)[0]
    if name in _os_interfaces():
        for b in ("ring", "nic"):
            if b in backends and backends[b].open_live:
                return b
    return None


def _pcap_status(exc):
    if exc.code == ENODEV:
        return PCAP_ERROR_NO_SUCH_DEVICE
    if exc.code == EPERM:
        return PCAP_ERROR_PERM_DENIED
    return PCAP_ERROR


def _os_interfaces():
    try:
        return set(os.listdir("/sys/class/net"))
    except OSError:
        return set()


def _mapi_devices():
    """(name, description) of the devices MAPI backends offer for live capture."""
    out = []
    for desc in get_registry().backends.values():
        if desc.list_devices is None:
            continue
        try:
            for d in desc.list_devices():
                out.append((d.get("name"), d.get("description", "")))
        except Exception as exc:   # a broken backend must not break pcap_findalldevs
            log.warning("backend %s: list_devices failed: %s", desc.name, exc)
    return [(n, d) for n, d in out if n]
