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
        d = jsonable(v._asdict())
        if getattr(v, "text", None):      # and the name for people, when they have one
            d["text"] = v.text
        for f in getattr(v, "time_fields", ()):   # ns since the epoch: ISO 8601 beside them
            if isinstance(d.get(f), int) and d[f] > 0:
                d[time_key(f)] = iso_utc(d[f])
        return d
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


def time_key(field):
    """Where the ISO 8601 form of a result's time field goes: start -> start_time,
    first_ns -> first_time (result types declare such fields in `time_fields`)."""
    return (field[:-3] if field.endswith("_ns") else field) + "_time"


def iso_utc(ts_ns, digits=None):
    """ISO 8601 in UTC: '2013-05-02T20:20:33.491822Z'.  `digits` of fraction (default: as
    many as needed: none, 3, 6 or 9)."""
    secs, frac = divmod(int(ts_ns), 10 ** 9)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    if digits is None:
        digits = 0 if not frac else 3 if frac % 10 ** 6 == 0 else 6 if frac % 1000 == 0 else 9
    if digits:
        text += "." + ("%09d" % frac)[:digits]
    return text + "Z"


# --- the results table of `mapi run` ------------------------------------------------------------
def _fmt_scalar(v):
    if isinstance(v, dict) and ("text" in v or next(iter(v), None) == "value"):
        # a ranked entry (TOP, RECORD_TOP): its name (or value), then the numbers
        head = v["text"] if "text" in v else _fmt_scalar(v["value"])
        return "  ".join([head] + ["%s=%s" % (k, _fmt_scalar(x)) for k, x in v.items()
                                   if k not in ("text", "value")])
    if isinstance(v, float):
        return "%.6g" % v
    if isinstance(v, (list, tuple)):
        return "(%s)" % ", ".join(_fmt_scalar(x) for x in v)
    if isinstance(v, dict):
        return ", ".join("%s=%s" % (k, _fmt_scalar(x)) for k, x in _for_people(v))
    return "-" if v is None else str(v)


def _for_people(d):
    """A result dict's items, each time field as its ISO 8601 form (the raw value stays in JSON)."""
    isos = {time_key(k) for k in d if time_key(k) in d}
    return [(k, d[time_key(k)] if time_key(k) in isos else x) for k, x in d.items() if k not in isos]


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
        lines = ["%s=%s" % (k, _fmt_scalar(x)) for k, x in _for_people(v)]
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
                                              _fmt_scalar(ev["threshold"]), iso_utc(ev["ts"]), at))
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
    out.write("\n" + footer(report) + "\n")


def footer(report):
    """The line under the table: what was read or captured (and lost) where."""
    n = report["packets"] or 0
    if not report.get("live"):
        fmt = report.get("format")         # a backend may not name a format (None)
        return "%d packets read from %s%s" % (n, report["file"], " (%s)" % fmt if fmt else "")
    st = report.get("stats") or {}
    text = "%d packets captured on %s" % (n, report["device"])
    drops = [(st.get("ps_drop", 0), "dropped by the kernel"),
             (st.get("ps_ifdrop", 0), "dropped by the interface"),
             (st.get("engine_drops", 0), "dropped by the engine"),
             (sum((st.get("flow_drops") or {}).values()), "dropped by flow buffers")]
    return text + "".join(", %d %s" % (d, what) for d, what in drops if d)


_UNITS = {"ns": 1, "us": 10 ** 3, "ms": 10 ** 6, "s": 10 ** 9, "m": 60 * 10 ** 9,
          "min": 60 * 10 ** 9, "h": 3600 * 10 ** 9}


def parse_duration(option, text):
    """'1s', '250ms', '1.5m', '2h' or plain seconds ('10') -> nanoseconds (an int > 0)."""
    import re
    from decimal import Decimal, InvalidOperation
    from .flowspec import SpecError
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(ns|us|ms|s|min|m|h)?\s*", str(text))
    if m is None:
        raise SpecError(None, None, "%s: %r is not a duration; give a number and a unit (ns, us, ms, s, m, "
                         "h), e.g. 1s or 100ms" % (option, text))
    try:
        ns = Decimal(m.group(1)) * _UNITS[m.group(2) or "s"]
    except InvalidOperation:
        raise SpecError(None, None, "%s: %r is not a duration" % (option, text)) from None
    if ns != ns.to_integral_value() or ns <= 0:
        raise SpecError(None, None, "%s: %r must be a positive whole number of nanoseconds" % (option, text))
    return int(ns)
