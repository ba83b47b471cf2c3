"""The Python half of the libpcap drop-in (runs inside the application, in the embedded
interpreter of libpcap.so.0.8).

Every pcap_t becomes a MAPI flow (handles.py): an offline handle is an offline device plus one
flow on it; the filter the application sets becomes a BPF_FILTER function of that flow
(filters.py); its packets reach the C half through the flow's TO_BUFFER ring, which C reads
directly.  This module only runs when a handle opens, compiles, sets a filter, starts, ends or
closes: never per packet.  MAPI_PCAP_REPORT=FILE|stderr: a JSON line per handle (report.py).

Start-up matters: a preloaded tool pays for this interpreter at its first pcap call.  That call
imports what any later call needs (and only that): tcpdump drops its privileges right after
opening its handle, and the interpreter's files may not be readable afterwards.
"""
import os
import threading

# Imported now, while the process may still read the interpreter's files: tcpdump drops its
# privileges between opening a handle and starting to read it.
import queue  # noqa: F401  (used by the device threads)

from mapi.lazylog import getLogger, quiet_everything

_lock = threading.Lock()
_handles = {}          # address of the pcap_t -> handles.Handle
_ffi = _lib = None
log = getLogger("libpcap_shim")


def _put(buf, text, size=256):
    data = text.encode("utf-8", "replace")[:size - 1]
    _ffi.memmove(buf, data + b"\0", len(data) + 1)


def _key(p):
    return int(_ffi.cast("uintptr_t", p))


def _name(cstr):
    return _ffi.string(cstr).decode("utf-8", "surrogateescape")


def _handle(p, errbuf=None):
    h = _handles.get(_key(p))
    if h is None and errbuf is not None:
        _put(errbuf, "MAPI libpcap shim: unknown handle")
    return h


class _failing:
    """with _failing(errbuf) as g: a MapiError raised inside becomes the call's errbuf text and
    g.failed (the call then returns 0, libpcap's failure)."""

    def __init__(self, errbuf):
        self.errbuf, self.failed = errbuf, False

    def __enter__(self):
        return self

    def __exit__(self, typ, exc, tb):
        from mapi.errors import MapiError
        if typ is not None and issubclass(typ, MapiError):
            _put(self.errbuf, str(exc))
            self.failed = True
            return True
        return False


def _engine_addr(engine, name):
    return int(engine.ffi.cast("uintptr_t", engine.ffi.addressof(engine.lib, name)))


# --- the calls the C half makes (csrc/pyapi.h) --------------------------------------------------
def py_init(errbuf):
    # MAPI's own log lines would be extra stderr output the application never printed;
    # MAPI_PCAP_LOG=1 lets them through (and then logging loads now, while it can)
    if os.environ.get("MAPI_PCAP_LOG"):
        import logging  # noqa: F401
    else:
        quiet_everything()
    try:
        # everything a handle needs later, now (see above)
        from . import filters, handles, report    # noqa: F401  (mapi, its API, filters, rings)
        from mapi import _engine as engine
        from mapi.registry import get_registry
        for name in ("BPF_FILTER", "TO_BUFFER"):   # what a handle's flow applies (handles.py)
            get_registry().function(name)
        _lib.shim_set_engine(*(_engine_addr(engine, n) for n in (
            "mapi_ring_next_many", "mapi_ring_interrupt", "mapi_ring_clear_interrupt", "mapi_ring_fd")))
        report.open_report()
    except Exception as exc:
        _put(errbuf, "MAPI libpcap shim: %s: %s" % (type(exc).__name__, exc))
        return 0
    return 1


def py_open_offline(p, path, dlt, snaplen, pcapng, errbuf):
    from .handles import OfflineHandle
    from mapi.errors import MapiError
    name = _name(path)
    try:
        h = OfflineHandle.open(name, dlt, snaplen, pcapng)
    except MapiError as exc:
        _put(errbuf, "%s: %s" % (name, exc))
        return 0
    with _lock:
        _handles[_key(p)] = h
    return 1


def py_compile(dlt, snaplen, file_linktype, swapped, expr, optimize, netmask, insns, length,
               errbuf):
    from . import filters
    from mapi.bpf import compile_for_dlt
    from mapi.errors import MapiError
    if file_linktype >= 0:
        # a savefile handle: libpcap generates savefile-specific code (DLT_NULL, DLT_ENC)
        if _lib.shim_savefile_compile(file_linktype, snaplen, swapped, expr, optimize, netmask,
                                      insns, length, errbuf) < 0:
            return 0
        code = bytes(_ffi.buffer(_ffi.cast("char *", insns[0]), length[0] * 8))
    else:
        try:
            code = compile_for_dlt(_ffi.string(expr), dlt, snaplen, optimize, netmask)
        except MapiError as exc:
            _put(errbuf, exc.where.get("pcap_error") or str(exc))
            return 0
        insns[0] = _lib.shim_copy_program(code, len(code) // 8)   # the C half owns it now
        length[0] = len(code) // 8
        if not insns[0]:
            _put(errbuf, "out of memory")
            return 0
    filters.remember(code, _ffi.string(expr).decode("latin-1"), optimize)
    return 1


def py_setfilter(p, insns, n, started, filter_here, ring, errbuf):
    h = _handle(p, errbuf)
    if h is None:
        return 0
    with _failing(errbuf) as g:
        filter_here[0], ring[0] = h.set_filter(bytes(_ffi.buffer(insns, n * 8)), started)
    return 0 if g.failed else 1


def _ring_call(p, ring, errbuf, op):
    h = _handle(p, errbuf)
    if h is None:
        return 0
    with _failing(errbuf) as g:
        ring[0] = op(h)
    return 0 if g.failed else 1


def py_start(p, ring, errbuf):
    return _ring_call(p, ring, errbuf, lambda h: h.start())


def py_restart(p, ring, errbuf):
    return _ring_call(p, ring, errbuf, lambda h: h.restart())


def py_end_status(p, errbuf):
    h = _handle(p)
    text = h.end_status() if h is not None else None
    if text:
        _put(errbuf, text)
        return 0
    return 1


def py_close(p, seen, delivered):
    from .report import report
    from mapi.errors import MapiError
    with _lock:
        h = _handles.pop(_key(p), None)
    if h is None:
        return
    report(h, seen, delivered)
    try:
        h.close()
    except MapiError as exc:
        log.warning("closing %s: %s", h.dev, exc)


def py_report(p, seen, delivered):
    from .report import report
    h = _handle(p)
    if h is not None:
        report(h, seen, delivered)


def py_activate(p, device, snaplen, promisc, timeout_ms, buffer_size, immediate, status, dlt,
                errbuf):
    from .handles import LiveHandle, pcap_status, PCAP_ERROR, PCAP_ERROR_NO_SUCH_DEVICE
    from mapi.errors import MapiError
    name = _name(device)
    if name == "any":
        status[0] = PCAP_ERROR
        _put(errbuf, "MAPI devices capture on one interface; the \"any\" pseudo-device is not "
             "available through MAPI")
        return 0
    try:
        h = LiveHandle.open(name, snaplen, promisc, timeout_ms, buffer_size, immediate)
    except MapiError as exc:
        status[0] = pcap_status(exc)
        if status[0] != PCAP_ERROR_NO_SUCH_DEVICE:
            _put(errbuf, str(exc))
        return 0
    with _lock:
        _handles[_key(p)] = h
    dlt[0] = h.dlt
    status[0] = 0
    return 1


def py_setdirection(p, direction, errbuf):
    h = _handle(p)
    if h is None:
        _put(errbuf, "Setting direction is not supported on this device")
        return 0
    with _failing(errbuf) as g:
        h.set_direction(direction)
    return 0 if g.failed else 1


def py_stats(p, recv, drop, ifdrop, errbuf):
    h = _handle(p, errbuf)
    if h is None:
        return 0
    with _failing(errbuf) as g:
        recv[0], drop[0], ifdrop[0] = h.stats()
    return 0 if g.failed else 1


def py_devices(buf, size):
    from .handles import live_devices
    _put(buf, "".join("%s\t%s\n" % (n, d or "") for n, d in live_devices()), size)
    return 1


# C name -> (function, value cffi returns if the function raised)
CALLS = {
    "shim_py_init": (py_init, 0), "shim_py_open_offline": (py_open_offline, 0),
    "shim_py_compile": (py_compile, 0), "shim_py_setfilter": (py_setfilter, 0),
    "shim_py_start": (py_start, 0), "shim_py_restart": (py_restart, 0),
    "shim_py_end_status": (py_end_status, 0), "shim_py_close": (py_close, None),
    "shim_py_report": (py_report, None), "shim_py_activate": (py_activate, 0),
    "shim_py_setdirection": (py_setdirection, 0), "shim_py_stats": (py_stats, 0),
    "shim_py_devices": (py_devices, 0),
}


def bind(ffi, lib):
    """Attach every call of csrc/pyapi.h to its function here."""
    global _ffi, _lib
    _ffi, _lib = ffi, lib
    for name, (fn, error) in CALLS.items():
        if error is None:
            ffi.def_extern(name=name)(fn)
        else:
            ffi.def_extern(name=name, error=error)(fn)
