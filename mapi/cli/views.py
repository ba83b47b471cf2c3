"""How `mapi run --interval` shows its rows while the run lasts.

  TableView   one line per interval and device (TIME, [DEVICE], one column per counted or
              gauged function); on a terminal the screen is redrawn like top(1): the header,
              the latest rows that fit, and a status line.
  JsonLinesView  one JSON object per line and interval (mapi.cli.series rows), then the final
              report as one more line with "type": "final".
"""
import shutil
from collections import deque

from .series import row_values

CLEAR = "\x1b[H\x1b[2J"


def _cell(v):
    if v is None:
        return "-"
    if isinstance(v, float):
        return "%.6g" % v
    return str(v)


class TableView:
    def __init__(self, out, series_list, tty=None):
        self.out = out
        self.tty = out.isatty() if tty is None else tty
        self.multi = len(series_list) > 1
        cols = []
        for s in series_list:
            cols += [c for c in s.columns if c not in cols]
        self.columns = cols
        self.widths = [max(12, len(c)) for c in cols]
        self.dev_width = max([6] + [len(s.source) for s in series_list])
        self.history = deque(maxlen=500)
        self.header_done = False
        self.status = ""

    def header(self):
        head = "%-*s" % (26, "INTERVAL START (UTC)")
        if self.multi:
            head += "  %-*s" % (self.dev_width, "DEVICE")
        return head + "".join("  %*s" % (w, c) for w, c in zip(self.widths, self.columns))

    def line(self, row):
        values = row_values(row)
        text = "%-26s" % row["start"]
        if self.multi:
            text += "  %-*s" % (self.dev_width, row["source"])
        text += "".join("  %*s" % (w, _cell(values.get(c))) for w, c in zip(self.widths, self.columns))
        if "empty_intervals" in row:
            text += "  (%d intervals without packets, to %s)" % (row["empty_intervals"], row["end"])
        return text + ("  (partial)" if row["partial"] else "")

    def add(self, row):
        text = self.line(row)
        if not self.tty:
            if not self.header_done:
                self.out.write(self.header() + "\n")
                self.header_done = True
            self.out.write(text + "\n")
            self.out.flush()
            return
        self.history.append(text)
        self.redraw()

    def set_status(self, text):
        self.status = text
        if self.tty and self.history:
            self.redraw()

    def redraw(self):
        size = shutil.get_terminal_size((100, 24))
        room = max(1, size.lines - 3)
        lines = [self.header()] + list(self.history)[-room:]
        body = "\n".join(line[:size.columns - 1] for line in lines)
        self.out.write(CLEAR + body + "\n" + self.status[:size.columns - 1] + "\n")
        self.out.flush()

    def finish(self):
        """The run ended: the final results follow below what is on the screen."""
        if self.history or self.header_done:
            self.out.write("\n")


class JsonLinesView:
    def __init__(self, out):
        import json
        self.out = out
        self._dumps = json.dumps

    def add(self, row):
        self.out.write(self._dumps(row) + "\n")
        self.out.flush()

    def set_status(self, text):
        pass

    def finish(self):
        pass

    def final(self, report):
        report = dict(report, type="final")
        self.out.write(self._dumps(report) + "\n")
        self.out.flush()
