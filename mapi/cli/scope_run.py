"""`mapi run -i 'grpcs://s1:7000/eth0, grpcs://s2:7000/eth1' FLOW...`: the flows as distributed
flows over the sensors of the scope (mapi.client.distributed), until --duration or Ctrl-C;
then one row per function with the combined value and each sensor's.

    FLOW  FUNCTION       COMBINED  s1:7000/eth0  s2:7000/eth1
    1     PKT_COUNTER        9262          4631          4631

A sensor that did not answer shows "missing"; one whose flow was re-created after it came
back is marked "(restarted)": its counts start from then.  TLS: MAPI_TLS_CA/CERT/KEY."""
import sys
import threading

import mapi

from .flowspec import SpecError
from .job import Job
from .source import Source
from .output import jsonable, write_json

EXIT_OK = 0


def is_scope(interfaces):
    return any("grpcs://" in i for i in interfaces or ())


def short(name):
    return name[len("grpcs://"):] if name.startswith("grpcs://") else name


def cell(value):
    """A result in one table cell."""
    if value is None:
        return "-"
    if isinstance(value, list):
        parts = []
        for e in value[:3]:
            fields = getattr(e, "_fields", ())
            parts.append("%s:%s" % (e[0], e[1]) if "packets" in fields else str(e))
        return " ".join(parts) + (" ..." if len(value) > 3 else "")
    if isinstance(value, dict):
        return " ".join("%s=%s" % kv for kv in value.items())
    if hasattr(value, "_fields"):
        return " ".join("%s=%s" % (k, v) for k, v in zip(value._fields, value))
    return str(value)


def read_all(job):
    """[(flow, spec, DistributedResult)] of every function of the job's flows."""
    out = []
    for fi, steps in enumerate(job.flows):
        for si, step in enumerate(steps):
            fd, fid = job.fds[fi], job.fids[(fi, si)]
            out.append((fi + 1, step.text, mapi.read_results(fd, fid)))
    return out


def table(rows, sensors, out):
    head = ["FLOW", "FUNCTION", "COMBINED"] + [short(s) for s in sensors]
    lines = [head]
    for flow, spec, r in rows:
        per = []
        for s in sensors:
            x = (getattr(r, "sensors", None) or {}).get(s)
            if s in (getattr(r, "missing", None) or {}):
                per.append("missing")
            else:
                per.append(cell(x.value if x is not None else None) +
                           (" (restarted)" if s in (getattr(r, "restarted", None) or {}) else ""))
        lines.append([str(flow), spec if len(spec) <= 40 else spec[:37] + "...",
                      cell(r.value) + (" (partial)" if getattr(r, "partial", False) else "")] + per)
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    for line in lines:
        out.write("  ".join(c.ljust(w) if i < 2 else c.rjust(w)
                            for i, (c, w) in enumerate(zip(line, widths))).rstrip() + "\n")


def run_scope(args, specs):
    if args.read:
        raise SpecError(None, None, "-r and a grpcs:// scope cannot be mixed")
    if args.interval is not None or args.count is not None or args.write or \
            getattr(args, "plot", None):
        raise SpecError(None, None, "a distributed run takes flows, --duration and --json "
                        "(not --interval, -c, -w or --plot)")
    scope = ", ".join(args.interfaces)
    job = Job(Source(device=scope), specs)
    job.open()
    sensors = [s.strip() for s in scope.split(",") if s.strip()]
    sys.stderr.write("mapi: %d flows on %d sensors; %s\n" % (
        len(job.flows), len(sensors), "Ctrl-C ends the run" if args.duration is None else
        "running for %.3g s" % (args.duration / 1e9)))
    stop = threading.Event()
    try:
        stop.wait(None if args.duration is None else args.duration / 1e9)
    except KeyboardInterrupt:
        pass
    rows = read_all(job)
    if args.json:
        write_json([dict(flow=f, spec=spec, combined=jsonable(r.value), ts=r.ts,
                         partial=getattr(r, "partial", False),
                         missing=jsonable(getattr(r, "missing", {})),
                         restarted=jsonable(getattr(r, "restarted", {})),
                         sensors={n: jsonable(x.value) if x is not None else None
                                  for n, x in (getattr(r, "sensors", None) or {}).items()})
                    for f, spec, r in rows])
    else:
        table(rows, sensors, sys.stdout)
    for fd in job.fds.values():
        try:
            mapi.close_flow(fd)
        except mapi.MapiError:
            pass
    return EXIT_OK
