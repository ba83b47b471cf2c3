"""Results over time: the CLI_CLOCK's snapshots of one job made into interval rows.

A row is a JSON-ready dict, the unit every view prints (table, JSON lines, plot, metrics):

    {"type": "interval", "device": "offline0", "source": "trace.pcap",
     "start": "2013-05-02T20:20:33.491822Z", "start_ns": 1367526033491822000,
     "end": "...", "end_ns": ..., "partial": false,
     "flows": [{"flow": 1, "functions": [
         {"fid": 2, "name": "PKT_COUNTER", "spec": "PKT_COUNTER", "column": "1:PKT_COUNTER",
          "kind": "count", "value": 120, "total": 4441, "pkts": 120}, ...]}]}

What `value` is depends on the function's result:
  u64 (counters)          the change over the interval ("total": the running value) - kind "count"
  float (rates, meters)   the value at the interval's end - kind "gauge"
  a filter's none result  the packets it passed in the interval - kind "count"
  anything else (TOP...)  the result at the interval's end, as is - kind "value"
`pkts` is always the packets that went through the function in the interval.  More than
MAX_EMPTY_ROWS intervals without a packet in a row come out as one row spanning them all, with
"empty_intervals": how many.
"""
from .output import iso_utc, jsonable


MAX_EMPTY_ROWS = 10000      # more empty intervals in a row than this come out as one row


class Series:
    """Turns the snapshots of one job's clock into interval rows (deltas against the previous
    snapshot); `columns` are the functions with a number per interval."""

    def __init__(self, job):
        self.job = job
        self.device = job.dev
        self.source = job.source.label
        self.meta = []                 # per target: (flow number, fid, name, spec, label, kind)
        for fi, steps in enumerate(job.flows):
            for si, step in enumerate(steps):
                desc = job.descs[fi][si]
                if desc.result == "u64" or (desc.filters and desc.result == "none"):
                    kind = "count"
                elif desc.result == "float":
                    kind = "gauge"
                else:
                    kind = "value"
                column = step.label or "%d:%s" % (fi + 1, desc.name)
                self.meta.append((fi + 1, job.fids[(fi, si)], desc.name, step.text, column, kind))
        self.prev = [None] * len(self.meta)
        self.rows = 0

    @property
    def columns(self):
        return [m[4] for m in self.meta if m[5] != "value"]

    def rows_of(self, snap):
        """The rows of one Snapshot: one, or snap.repeat of them when several intervals closed
        at once (the later ones saw no packet: counts 0, gauges and values unchanged)."""
        ns = snap.end_ns - snap.start_ns
        first = self._row(snap.start_ns, snap.end_ns, snap.readings, snap.partial)
        out = [first]
        if snap.repeat - 1 > MAX_EMPTY_ROWS:
            # a long silence (a trace with a gap of days): one row says how many were empty
            gap = self._row(snap.end_ns, snap.start_ns + snap.repeat * ns, snap.readings, snap.partial)
            gap["empty_intervals"] = snap.repeat - 1
            return out + [gap]
        for k in range(1, snap.repeat):
            out.append(self._row(snap.start_ns + k * ns, snap.end_ns + k * ns, snap.readings,
                                 snap.partial))
        return out

    def _row(self, start, end, readings, partial):
        flows = {}
        for i, (meta, reading) in enumerate(zip(self.meta, readings)):
            flow, fid, name, spec, column, kind = meta
            prev = self.prev[i]
            entry = dict(fid=fid, name=name, spec=spec, column=column, kind=kind)
            if reading is None:
                entry.update(value=None, total=None, pkts=None)
            else:
                out_now = reading.pkts_out or 0
                out_before = (prev.pkts_out or 0) if prev is not None else 0
                entry["pkts"] = out_now - out_before
                if kind == "count" and isinstance(reading.value, int):
                    before = prev.value if prev is not None and isinstance(prev.value, int) else 0
                    entry.update(value=reading.value - before, total=reading.value)
                elif kind == "count":
                    entry.update(value=entry["pkts"], total=out_now)
                else:
                    entry["value"] = jsonable(reading.value)
                self.prev[i] = reading
            flows.setdefault(flow, []).append(entry)
        self.rows += 1
        return dict(type="interval", device=self.device, source=self.source,
                    start=iso_utc(start), start_ns=start, end=iso_utc(end), end_ns=end,
                    partial=partial,
                    flows=[dict(flow=f, functions=fs) for f, fs in sorted(flows.items())])


def row_values(row):
    """{column: value} of the numbers of a row (what the table and the plot show)."""
    return {f["column"]: f["value"] for fl in row["flows"] for f in fl["functions"]
            if f["kind"] != "value"}
