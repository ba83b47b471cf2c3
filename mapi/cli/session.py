"""One `mapi run`: its jobs (one per -i device, or one over the -r files) from start to end.

    session = Session(jobs, interval_ns=10**9, make_view=TableView, count=100)
    code = session.run(report)          # report(jobs, interrupted) prints the final results

The loop in the main thread takes the interval snapshots the engine threads queue, turns them
into rows (mapi.cli.series) and hands them to the view and to the other sinks (metrics, plot);
it stops every device when one of the ends comes: the streams end (files), -c COUNT packets went
through every LIMIT, --duration of wall-clock time passed (live devices; files are cut in packet
time by a STARTSTOP step), or Ctrl-C.  Whatever the end, the final results are printed.
"""
import queue
import sys
import time

import mapi

from .output import EXIT_OK, EXIT_REPLAY_ERROR, report_error
from .series import Series

POLL_S = 0.1


class Session:
    def __init__(self, jobs, interval_ns=None, make_view=None, sinks=(), count=None,
                 duration_ns=None, progress="auto"):
        self.jobs = list(jobs)
        self.interval_ns = interval_ns
        self.make_view = make_view           # make_view(series list) -> view, once open
        self.view = None
        self.sinks = list(sinks)             # objects with add(row) (metrics, plot data)
        self.count = count
        self.duration_ns = duration_ns
        self.progress = progress
        self.snapshots = queue.Queue()
        self.series = []
        self.interrupted = False
        self.stopped = False

    def open(self):
        for i, job in enumerate(self.jobs):
            job.open(self.interval_ns, lambda snap, i=i: self.snapshots.put((i, snap)))
        self.series = [Series(job) for job in self.jobs]
        if self.make_view is not None:
            self.view = self.make_view(self.series)
        return self

    def _limits(self):
        """(fd, fid) of every LIMIT step of every job."""
        return [(job.fds[fi], job.fids[(fi, si)]) for job in self.jobs
                for fi, steps in enumerate(job.flows) for si, s in enumerate(steps)
                if s.name == "LIMIT"]

    def _count_reached(self, limits):
        if not self.count or not limits:
            return False
        return all(mapi.read_results(fd, fid).value >= self.count for fd, fid in limits)

    def _take_snapshots(self, block):
        while True:
            try:
                i, snap = self.snapshots.get(timeout=POLL_S if block else 0)
            except queue.Empty:
                return
            block = False
            for row in self.series[i].rows_of(snap):
                for sink in [self.view] + self.sinks:
                    if sink is not None:
                        sink.add(row)

    def stop(self):
        if not self.stopped:
            self.stopped = True
            for job in self.jobs:
                job.stop()

    def loop(self):
        """Run until every stream ended or an end condition stopped them."""
        limits = self._limits()
        t0 = time.monotonic()
        live = any(j.source.live for j in self.jobs)
        bars = []
        if len(self.jobs) == 1 and not live and self.view is None:
            bars = [self.jobs[0].source.progress_bar(self.jobs[0].dev, None, self.progress)]
        for job in self.jobs:
            job.start()
            if job.source.live:
                self._listening(job)
        for bar in bars:
            bar.start()
        pending = list(self.jobs)
        try:
            while pending:
                if self.interval_ns is None:   # no snapshots come: wake when the stream ends
                    pending[0].wait(POLL_S)
                else:
                    self._take_snapshots(block=True)
                pending = [j for j in pending if not j.wait(0)]
                if self._count_reached(limits):
                    self.stop()
                if self.duration_ns is not None and self._duration_over(t0, live):
                    self.stop()
                if self.view is not None and live:
                    self.view.set_status(self._status(t0))
        except KeyboardInterrupt:
            self.interrupted = True
        finally:
            try:
                self.stop_and_wait(bars)
            except KeyboardInterrupt:           # a second Ctrl-C: leave at once
                self.interrupted = True
                raise

    def stop_and_wait(self, bars=()):
        if pending_any(self.jobs):
            self.stop()
        for job in self.jobs:
            job.wait()
        for bar in bars:
            bar.stop(failed=any(j.error for j in self.jobs))
        self._take_snapshots(block=False)
        if self.view is not None:
            self.view.finish()

    @staticmethod
    def _listening(job):
        """tcpdump's line: the capture is on (tests and scripts wait for it)."""
        from .commands.info import linktype_name
        lt = mapi.get_device_info(job.dev).get("linktype")
        name, desc = linktype_name(lt)
        sys.stderr.write("mapi: listening on %s, link-type %s (%s); Ctrl-C ends the run and "
                         "prints the results\n" % (job.dev, name, desc))
        sys.stderr.flush()

    def _duration_over(self, t0, live):
        """--duration passed: wall clock live; packet time on files (their STARTSTOP steps
        already keep later packets out, this only spares reading the rest)."""
        if live:
            return (time.monotonic() - t0) * 1e9 >= self.duration_ns
        for job in self.jobs:
            info = mapi.get_device_info(job.dev)
            first, last = info.get("first_ts"), info.get("last_ts")
            if first is None or last is None or last - first < self.duration_ns:
                return False
        return True

    def _status(self, t0):
        parts = []
        for job in self.jobs:
            try:
                st = mapi.stats(job.dev)
            except mapi.MapiError:
                continue
            parts.append("%s: %d packets, %d dropped" % (job.source.label, st.get("ps_recv", 0),
                                                         st.get("ps_drop", 0) + st.get("ps_ifdrop", 0)))
        return "%s  (%.0f s; Ctrl-C ends and prints the results)" % ("; ".join(parts),
                                                                    time.monotonic() - t0)

    def run(self, report):
        """open, loop, report(self), close every job; the exit code."""
        try:
            self.open()
            self.loop()
            report(self)
            sys.stdout.flush()
            errors = [j.error for j in self.jobs if j.error is not None]
            for err in errors:
                report_error(err)
            return EXIT_REPLAY_ERROR if errors else EXIT_OK
        finally:
            for job in self.jobs:
                job.close()


def pending_any(jobs):
    for job in jobs:
        if job.dev is not None:
            try:
                if mapi.get_device_info(job.dev).get("state") != "done":
                    return True
            except mapi.MapiError:
                pass
    return False
