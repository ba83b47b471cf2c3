"""`mapi info FILE`: format, link type, counts and time span of a trace, as a MAPI device reads
it (the numbers equal capinfos')."""
import os
import sys

import mapi
from mapi import linktypes
from mapi.progress import ProgressBar

from ..output import EXIT_OK, EXIT_REPLAY_ERROR, iso_utc, report_error, write_json
from . import FILE_FORMATS, add_json_argument, add_progress_argument


def linktype_name(linktype):
    """libpcap's name and description of a LINKTYPE_ value, e.g. ("EN10MB", "Ethernet")."""
    from mapi._engine import lib
    found = linktypes.lookup(lib.mapi_linktype_to_dlt(linktype))
    return found or ("LINKTYPE_%d" % linktype, "link type %d" % linktype)


def _connected_flow(dev, *calls):
    """A new flow of `dev` with the functions [NAME, arg...] applied in order, connected;
    returns (fd, [fid, ...])."""
    fd = mapi.create_flow(dev)
    fids = [mapi.apply_function(fd, name, *args) for name, *args in calls]
    mapi.connect(fd)
    return fd, fids


def file_info(path, fmt=None, progress="auto"):
    """What `mapi info` reports, measured by MAPI flows: counters on one, and the first packet's
    time from a TO_BUFFER on another that is closed once that packet is out."""
    dev = mapi.create_offline_device(path, fmt)
    error = first = None
    try:
        fd, (pkts, wire) = _connected_flow(dev, ["PKT_COUNTER"], ["BYTE_COUNTER"])
        first_fd, (buf,) = _connected_flow(dev, ["TO_BUFFER", mapi.WAIT, 1 << 20])
        mapi.start_offline_device(dev)
        bar = ProgressBar.for_file(dev, path, mode=progress).start()
        try:
            first = mapi.get_next_pkt(first_fd, buf)
            mapi.close_flow(first_fd)
            mapi.wait_offline_device(dev)
        except mapi.MapiError as exc:
            error = exc
        finally:
            bar.stop(failed=error is not None)
        n = mapi.read_results(fd, pkts)
        nbytes = mapi.read_results(fd, wire).value
        dinfo = mapi.get_device_info(dev)
    finally:
        mapi.delete_offline_device(dev)
    header = dinfo.get("header") or {}
    lt = dinfo.get("linktype")
    name, desc = linktype_name(lt)
    first_ts = first.ts if first is not None else None
    last_ts = n.ts if n.value else None
    info = dict(file=path, file_size=os.path.getsize(path), format=dinfo.get("format"),
                compression=dinfo.get("compression"), linktype=lt, linktype_name=name,
                linktype_description=desc, snaplen=dinfo.get("snaplen"),
                precision=header.get("precision") or ("ns" if dinfo.get("format") != "pcap" else None),
                version=header.get("version"), byte_order=header.get("byte_order"),
                packets=n.value, wire_bytes=nbytes, first_ts=first_ts, last_ts=last_ts,
                first_time=None if first_ts is None else iso_utc(first_ts),
                last_time=None if last_ts is None else iso_utc(last_ts),
                duration_ns=(last_ts - first_ts) if first_ts is not None and last_ts is not None else None)
    if error is not None:
        info["error"] = dict(code=error.code, message=str(error))
    return info, error


def _when(ts_ns, precision):
    if ts_ns is None:
        return "-"
    secs, frac = divmod(ts_ns, 10 ** 9)
    digits = "%09d" % frac if precision == "ns" else "%06d" % (frac // 1000)
    return "%s (%d.%s)" % (iso_utc(ts_ns, len(digits)), secs, digits)


def info_rows(info):
    """(label, text) pairs of the human report."""
    fmt = info["format"]
    if info["version"]:
        fmt += " %s, %s-endian" % (info["version"], info["byte_order"])
    if info["compression"]:
        fmt += ", %s-compressed" % info["compression"]
    dur = info["duration_ns"]
    prec = info["precision"]
    rows = [
        ("file", info["file"]),
        ("file size", "%d bytes" % info["file_size"]),
        ("format", fmt),
        ("link type", "%d %s (%s)" % (info["linktype"], info["linktype_name"], info["linktype_description"])),
        ("snaplen", str(info["snaplen"])),
        ("time precision", {"ns": "nanoseconds", "us": "microseconds"}.get(prec, "-")),
        ("packets", str(info["packets"])),
        ("bytes on wire", str(info["wire_bytes"])),
        ("first packet", _when(info["first_ts"], prec)),
        ("last packet", _when(info["last_ts"], prec)),
        ("duration", "-" if dur is None else "%.9f s" % (dur / 1e9)),
    ]
    if info["packets"]:
        rows.append(("average size", "%.2f bytes on wire" % (info["wire_bytes"] / info["packets"])))
        if dur:
            rows.append(("average rate", "%.3f packets/s, %.1f bits/s"
                         % (info["packets"] / (dur / 1e9), 8 * info["wire_bytes"] / (dur / 1e9))))
    return rows


def handle(args):
    info, error = file_info(args.file, args.format, args.progress)
    if args.json:
        write_json(info)
    else:
        rows = info_rows(info)
        w = max(len(k) for k, _ in rows)
        for k, v in rows:
            print("%-*s  %s" % (w + 1, k + ":", v))
    sys.stdout.flush()
    if error is not None:
        report_error(error)
        return EXIT_REPLAY_ERROR
    return EXIT_OK


def add_parser(sub, name, help):
    p = sub.add_parser(name, help=help, description="Describe a trace file as a MAPI device reads it.")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--format", choices=FILE_FORMATS)
    add_json_argument(p)
    add_progress_argument(p)
    p.set_defaults(handler=handle)
