"""Results over time for people: the interval rows of a run drawn into a PNG (matplotlib,
imported only here; an optional extra: pip install scampi[plot]).

Three panels share the time axis (UTC), one line per flow (and device):
  packets per interval   the flow's PKT_COUNTER, or else the packets through its last step
  bytes per interval     the flow's BYTE_COUNTER (flows without one are left out)
  rate                   the flow's float results (meters such as PKT_RATE, BIT_RATE) when it
                         has any, else its bits per second (bytes * 8 / interval)
"""
import importlib.util

from .flowspec import SpecError


def need_matplotlib():
    if importlib.util.find_spec("matplotlib") is None:
        raise SpecError(None, None, "plotting needs matplotlib, which is not installed: "
                        "pip install 'scampi[plot]' (or pip install matplotlib)")


def flow_series(rows, interval_ns):
    """{(source, flow): {"packets": [...], "bytes": [...] or None, "rate": [...], "rate_unit": str,
    "t": [start_ns...]}} from the interval rows of one run."""
    out = {}
    for r in rows:
        for fl in r["flows"]:
            key = (r["source"], fl["flow"])
            s = out.setdefault(key, dict(t=[], packets=[], bytes=[], gauges={}))
            s["t"].append(r["start_ns"])
            funcs = fl["functions"]
            pkt = next((f for f in funcs if f["name"] == "PKT_COUNTER"), None)
            s["packets"].append(pkt["value"] if pkt else funcs[-1]["pkts"])
            byt = next((f for f in funcs if f["name"] == "BYTE_COUNTER"), None)
            s["bytes"].append(byt["value"] if byt else None)
            for f in funcs:
                if f["kind"] == "gauge":
                    s["gauges"].setdefault(f["column"], []).append(f["value"])
    secs = interval_ns / 1e9
    for s in out.values():
        if all(b is None for b in s["bytes"]):
            s["bytes"] = None
        if s["gauges"]:
            s["rate"] = s["gauges"]
        elif s["bytes"] is not None:
            s["rate"] = {"bits/s": [8 * b / secs for b in s["bytes"]]}
        else:
            s["rate"] = {"packets/s": [p / secs for p in s["packets"]]}
    return out


class PlotSink:
    """Collects the rows of a run (add(row)) and draws them at the end (draw())."""

    def __init__(self, path, title=None):
        need_matplotlib()
        self.path = path
        self.title = title
        self.rows = []

    def add(self, row):
        self.rows.append(row)

    def draw(self, interval_ns, labels=None):
        """Write the PNG; returns the matplotlib Figure (its lines hold the plotted data)."""
        import datetime

        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.dates as mdates
        import matplotlib.pyplot as plt
        from matplotlib.ticker import EngFormatter

        series = flow_series(self.rows, interval_ns)
        multi = len({src for src, _ in series}) > 1
        fig, axes = plt.subplots(3, 1, sharex=True, figsize=(11, 7.5), dpi=100)
        ax_p, ax_b, ax_r = axes
        for (src, flow), s in sorted(series.items()):
            name = "%d: %s" % (flow, (labels or {}).get(flow, "flow %d" % flow))
            name = name if len(name) <= 48 else name[:45] + "..."
            if multi:
                name = "%s %s" % (src, name)
            t = [datetime.datetime.fromtimestamp(x / 1e9, datetime.timezone.utc) for x in s["t"]]
            ax_p.step(t, s["packets"], where="post", label=name)
            if s["bytes"] is not None:
                ax_b.step(t, s["bytes"], where="post", label=name)
            for unit, ys in s["rate"].items():
                ax_r.step(t, [float("nan") if y is None else y for y in ys], where="post",
                          label="%s %s" % (name, unit))
        secs = interval_ns / 1e9
        ax_p.set_ylabel("packets / %gs" % secs)
        ax_b.set_ylabel("bytes / %gs" % secs)
        ax_r.set_ylabel("rate")
        for ax in axes:
            ax.yaxis.set_major_formatter(EngFormatter())
            ax.grid(True, alpha=0.3)
            if ax.lines:
                ax.legend(loc="upper right", fontsize="small")
        ax_r.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S", tz=datetime.timezone.utc))
        ax_r.set_xlabel("time (UTC)" + (", from %s" % self.rows[0]["start"] if self.rows else ""))
        import os
        names = sorted({os.path.basename(src) for src, _ in series})
        fig.suptitle(self.title or "mapi: %s, %g s intervals" % (", ".join(names), secs))
        fig.tight_layout()
        fig.savefig(self.path)
        plt.close(fig)
        return fig
