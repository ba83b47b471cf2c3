"""A one-line progress bar for long offline replays.

Driven by polling the device's counters (packets read, file offset) a few times a second from a
thread of its own; the engine never calls into it.  Drawn on a terminal only.
"""
import os
import shutil
import sys
import threading
import time

import mapi


def _si(value, unit=""):
    """1234567 -> "1.2 M" + unit; small values stay whole: 5 -> "5" + unit."""
    for prefix in ("", "k", "M", "G", "T"):
        if abs(value) < 1000 or prefix == "T":
            number = "%.0f" % value if prefix == "" else "%.1f" % value
            return ("%s %s%s" % (number, prefix, unit)).rstrip()
        value /= 1000.0


def _clock(seconds):
    seconds = int(seconds + 0.5)
    return "%d:%02d" % divmod(seconds, 60) if seconds < 3600 else \
        "%d:%02d:%02d" % (seconds // 3600, seconds // 60 % 60, seconds % 60)


def render(offset, total, packets, elapsed, width=80):
    """The bar's text for `offset` of `total` bytes read (total None: size unknown)."""
    if not total:
        # a compressed file: its size says nothing about the stream, so packets only
        pps = packets / elapsed if elapsed > 0 else 0.0
        return ("%s pkts  %s pkts/s  %s" % (_si(packets), _si(pps), _clock(elapsed)))[:width - 1]
    rate = offset / elapsed if elapsed > 0 else 0.0
    stats = "%s pkts  %s" % (_si(packets), _si(rate, "B/s"))
    frac = min(1.0, offset / total) if total else 0.0
    eta = (total - offset) / rate if rate > 0 else 0.0
    tail = "  %s  ETA %s" % (stats, _clock(eta)) if frac < 1.0 else "  %s  %s" % (stats, _clock(elapsed))
    head = "%3d%% " % int(frac * 100)
    room = width - 1 - len(head) - len(tail) - 2
    if room < 10:
        return (head + tail.strip())[:width - 1]
    done = int(room * frac)
    return "%s[%s%s]%s" % (head, "#" * done, "." * (room - done), tail)


class ProgressBar:
    """Show replay progress of device `dev` on `stream` (stderr).

    mode "auto": only on a terminal, and only once the replay has lasted `delay` seconds (short
    runs stay quiet); "always": from the start, terminal or not; "never": not at all.
    """

    def __init__(self, dev, total_bytes=None, stream=None, mode="auto", interval=0.25, delay=0.5):
        self.dev = dev
        self.total = total_bytes
        self.stream = stream if stream is not None else sys.stderr
        self.interval = interval
        self.delay = 0.0 if mode == "always" else delay
        isatty = getattr(self.stream, "isatty", lambda: False)
        self.enabled = mode == "always" or (mode == "auto" and isatty())
        self._stop = threading.Event()
        self._thread = None
        self._drawn = False
        self._t0 = None

    @classmethod
    def for_file(cls, dev, path, stream=None, mode="auto"):
        """A bar for the replay of file `path` on device `dev`: by bytes read of the file's size,
        or by packets only when the file is compressed (its size says nothing then)."""
        total = None
        if mode != "never" and not mapi.get_device_info(dev).get("compression"):
            try:
                total = os.path.getsize(path)
            except OSError:
                total = None
        return cls(dev, total, stream=stream, mode=mode)

    def start(self):
        if not self.enabled:
            return self
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="mapi-progress", daemon=True)
        self._thread.start()
        return self

    def _run(self):
        if self._stop.wait(self.delay):
            return
        while True:
            self._draw()
            if self._stop.wait(self.interval):
                return

    def _draw(self):
        try:
            st = mapi.stats(self.dev)
        except mapi.MapiError:
            return
        offset = st.get("offset", 0)
        width = shutil.get_terminal_size((80, 24)).columns
        line = render(offset, self.total, st.get("ps_recv", 0), time.monotonic() - self._t0, width)
        try:
            self.stream.write("\r" + line.ljust(width - 1))
            self.stream.flush()
        except (OSError, ValueError):
            return
        self._drawn = True

    def stop(self, failed=False):
        """End the bar: a last frame (if one was drawn at all) and a newline."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._thread = None
        if self._drawn:
            if not failed:
                self._draw()
            try:
                self.stream.write("\n")
                self.stream.flush()
            except (OSError, ValueError):
                pass

    def __enter__(self):
        return self.start()

    def __exit__(self, etype, exc, tb):
        self.stop(failed=etype is not None)
