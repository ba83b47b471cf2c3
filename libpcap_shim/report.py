"""MAPI_PCAP_REPORT=FILE (or "stderr"): one JSON line per closed handle of the libpcap drop-in,
with its MAPI device, flow and functions and their packet counters, so one can check that the
packets went through MAPI."""
import os
import sys

import mapi
from mapi.errors import MapiError

_out = None


def open_report():
    global _out
    dest = os.environ.get("MAPI_PCAP_REPORT")
    if dest:
        import json  # noqa: F401  (now: the application may drop its privileges before a report)
        _out = sys.stderr if dest == "stderr" else open(dest, "a", buffering=1)


def _functions(h):
    out = []
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
        out.append(entry)
    return out


def report(h, seen=None, delivered=None):
    if _out is None or h.reported:
        return
    import json
    h.reported = True
    if h.kind == "offline" and h.fd is not None:
        # the counters settle when the replay's last batch is done (an application that stops
        # reading early, tcpdump -c, closes while the engine may still be in it)
        try:
            mapi.wait_offline_device(h.dev, timeout=0.5)
        except MapiError:
            pass
    rec = dict(pid=os.getpid(), kind=h.kind, device=h.dev, path=h.path, flow=h.fd,
               filter=h.filter_expr, filter_where=h.filter_where, notes=h.notes, functions=[])
    try:
        info = mapi.get_device_info(h.dev)
        rec["device_packets"] = info.get("packets")
        rec["device_backend"] = info.get("backend")
    except MapiError:
        pass
    if h.fd is not None:
        rec["functions"] = _functions(h)
    if seen is not None:
        rec["shim_seen"] = seen
        rec["shim_delivered"] = delivered
    if h.end_error:
        rec["end_error"] = h.end_error
    try:
        _out.write(json.dumps(rec) + "\n")
        _out.flush()
    except (OSError, ValueError):
        pass
