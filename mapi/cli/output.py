"""What the commands print: exit codes, the one-line error, JSON values, the results table.

Everything here works on plain report dicts (Job.results(), file_info()...), so the same
formatting serves a final report and, later, one report per interval.  `json` is imported only
by the commands that print JSON: start-up time is part of a one-packet run.
"""
import sys
import time

from mapi.constants import EQUAL, GREATER, LESS
from mapi.errors import CODES, MapiError

EXIT_OK, EXIT_REPLAY_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def one_line(text):
    return " ".join(str(text).split())


def report_error(exc):
    """`mapi: MESSAGE` on stderr, one line; a MapiError adds its number and name."""
    if isinstance(exc, MapiError):
        msg = "%s [MAPI error %d: %s]" % (one_line(exc), exc.code, CODES.get(exc.code, "?"))
    else:
        msg = one_line(exc)
    sys.stderr.write("mapi: %s\n" % msg)
    sys.stderr.flush()


def jsonable(v):
    """Results as JSON values: tuples become lists, bytes hex, other objects their str()."""
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v).hex()
    if hasattr(v, "_asdict"):            # named tuples (TOP's entries) keep their field names
        return jsonable(v._asdict())
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, set, frozenset)):
        return [jsonable(x) for x in v]
    return str(v)


def write_json(obj, out=None, default=None):
    """`obj` as indented JSON and a newline on `out` (stdout)."""
    import json
    out = sys.stdout if out is None else out
    json.dump(obj, out, indent=2, default=default)
    out.write("\n")


def utc_seconds(secs):
    """'2013-05-02 20:20:33' for whole seconds since the epoch (UTC)."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(secs))


def utc_stamp(ts_ns):
    """'2013-05-02 20:20:37.919180000' for nanoseconds since the epoch (UTC)."""
    secs, frac = divmod(ts_ns, 10 ** 9)
    return "%s.%09d" % (utc_seconds(secs), frac)


# --- the results table of `mapi run` ------------------------------------------------------------
def _fmt_scalar(v):
    if isinstance(v, float):
        return "%.6g" % v
    if isinstance(v, (list, tuple)):
        return "(%s)" % ", ".join(_fmt_scalar(x) for x in v)
    if isinstance(v, dict):
        return ", ".join("%s=%s" % (k, _fmt_scalar(x)) for k, x in v.items())
    return "-" if v is None else str(v)


_SYMBOL = {GREATER: ">", LESS: "<", EQUAL: "=="}
EVENTS_SHOWN = 10


def format_result(entry):
    """Lines describing one function's result for the table."""
    v = entry["result"]
    lines = []
    if isinstance(v, list) and v:
        lines = ["%d. %s" % (i + 1, _fmt_scalar(x)) for i, x in enumerate(v)] \
            if entry["result_type"] == "list" else [_fmt_scalar(x) for x in v]
        if len(v) > 1:
            lines.insert(0, "%d entries:" % len(v))
    elif isinstance(v, dict) and len(_fmt_scalar(v)) > 100:
        lines = ["%s=%s" % (k, _fmt_scalar(x)) for k, x in v.items()]
    elif v is not None or entry["result_type"] != "none":
        lines = [_fmt_scalar(v)]
    passed = None
    if entry.get("pkts_in") is not None and (entry["filters"] or entry["pkts_out"] != entry["pkts_in"]):
        passed = "passed %d of %d packets" % (entry["pkts_out"], entry["pkts_in"])
    elif entry["result_type"] == "none" and entry.get("pkts_in") is not None:
        passed = "saw %d packets" % entry["pkts_in"]
    if passed and len(lines) == 1:
        lines[0] += "  (%s)" % passed
    elif passed:
        lines.append(passed)
    events = entry.get("events", [])
    for ev in events[:EVENTS_SHOWN]:
        at = "packet index %d" % ev["seq"] if ev["seq"] is not None else "interval end"
        lines.append("%s %s %s at %s (%s)" % (_fmt_scalar(ev["value"]), _SYMBOL.get(ev["kind"], ev["kind"]),
                                              _fmt_scalar(ev["threshold"]), utc_stamp(ev["ts"]), at))
    if len(events) > EVENTS_SHOWN:
        lines.append("... %d more events (--json lists them all)" % (len(events) - EVENTS_SHOWN))
    if "taken_by_cli" in entry:
        t = entry["taken_by_cli"]
        lines.append("%d packets (%d bytes) taken by mapi run" % (t["packets"], t["bytes"]))
    return lines or ["-"]


def print_table(report, out):
    """The FLOW / FUNCTION / RESULT table of a Job.results() report, then the packet count."""
    rows = [("FLOW", "FUNCTION", ["RESULT"])]
    for flow in report["flows"]:
        for f in flow["functions"]:
            spec = f["spec"] if len(f["spec"]) <= 48 else f["spec"][:45] + "..."
            rows.append((str(flow["flow"]), spec, format_result(f)))
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    for flow_col, func, lines in rows:
        out.write("%-*s  %-*s  %s\n" % (w0, flow_col, w1, func, lines[0]))
        for more in lines[1:]:
            out.write("%-*s  %-*s  %s\n" % (w0, "", w1, "", more))
    out.write("\n%d packets read from %s (%s)\n" % (report["packets"] or 0, report["file"], report["format"]))
