"""The job runner: flow specs made into MAPI flows on one device, run, read back.

    job = Job(Source(paths=["trace.pcap"]), ['BPF_FILTER("tcp port 80") PKT_COUNTER'])
    job.open()          # device, flows, functions, connect (in the order labels need)
    job.run()           # replay; a replay error is kept in job.error, results stay readable
    report = job.results()
    job.close()

A Source (mapi.cli.source) says where the packets come from: one or several files (-r; "-" is
stdin) or a live device (-i).  `run_job` is the open/run/report/close sequence of a subcommand; `mapi run` with
intervals, limits and live devices drives jobs through mapi.cli.session instead.  The job knows
nothing about output formats.
"""
import sys
import threading

import mapi
from mapi.descriptor import ARG_TYPES
from mapi.registry import get_registry

from .flowspec import Ref, SpecError, Step, parse_flow, walk_refs
from .output import EXIT_OK, EXIT_REPLAY_ERROR, iso_utc, jsonable, report_error
from .source import Source

class Job:
    """Flow specs over one device: parse and check (constructor), then open() makes the
    device, flows and functions; run() replays; results() reads everything back.

    limit: pass only the first `limit` packets to each flow (a LIMIT step in front of it).
    """

    def __init__(self, source, specs, limit=None):
        if not isinstance(source, Source):          # Job(path, specs): one file
            source = Source(paths=[source])
        self.source = source
        if not specs:
            raise SpecError(None, None, "no flow given: add at least one, e.g. 'PKT_COUNTER'")
        self.specs = list(specs)
        self.flows = [parse_flow(text, i + 1) for i, text in enumerate(self.specs)]
        reg = get_registry()
        self.descs = [[self._descriptor(reg, fi, s) for s in steps] for fi, steps in enumerate(self.flows)]
        if limit is not None:
            self._limit(reg, limit)
        self.labels = {}                 # label -> (flow index, step index)
        for fi, steps in enumerate(self.flows):
            for si, s in enumerate(steps):
                if s.label is None:
                    continue
                if s.label in self.labels:
                    ofi, _ = self.labels[s.label]
                    raise SpecError(fi + 1, s.col, "label %r is already used in flow %d" % (s.label, ofi + 1))
                self.labels[s.label] = (fi, si)
        self.order = self._order()
        self.dev = None
        self.fds = {}                    # flow index -> fd
        self.fids = {}                   # (flow index, step index) -> fid
        self.error = None                # MapiError met during the replay
        self._drains = []
        self.left = False                # a server's shared device went on without this run
        self.clock = None                # mapi.cli.clock.Clock of --interval
        self.clock_fd = None

    @property
    def path(self):
        return self.source.label

    def _limit(self, reg, count):
        """A LIMIT(count) step in front of every flow that does not already start with one
        and watches no other flow (a watcher sees what its target sees)."""
        desc = reg.function("LIMIT")
        for fi, steps in enumerate(self.flows):
            if any(d.anchor for d in self.descs[fi]) or any(s.name == "LIMIT" for s in steps):
                continue
            steps.insert(0, Step(None, "LIMIT", [count], {}, 1, "LIMIT(%d)" % count))
            self.descs[fi].insert(0, desc)

    def _descriptor(self, reg, fi, step):
        try:
            return reg.function(step.name)
        except mapi.MapiError as exc:
            raise in_flow(exc, fi, step) from None

    def _refs(self, fi, si):
        """(param, Ref) of every label argument of step si of flow fi, checked against the
        descriptor: a label may only stand where an (fd, fid) reference is expected."""
        step, desc = self.flows[fi][si], self.descs[fi][si]
        params = {a.name: a for a in desc.args}
        pairs = [(desc.args[i] if i < len(desc.args) else None, v) for i, v in enumerate(step.args)]
        pairs += [(params.get(k), v) for k, v in step.kwargs.items()]
        out = []
        for param, v in pairs:
            for ref in walk_refs(v):
                if ref.label not in self.labels:
                    raise SpecError(fi + 1, ref.col, "%r is neither a constant nor a label defined "
                                    "in any flow (a string needs quotes: \"%s\"; a label is defined with %s=FUNCTION)"
                                    % (ref.label, ref.label, ref.label))
                if param is None or param.type != "F" or not isinstance(v, Ref):
                    what = "argument %r" % param.name if param else "this argument"
                    kind = ARG_TYPES.get(param.type, param.type) if param else "nothing"
                    raise SpecError(fi + 1, ref.col, "%s of %s takes a %s, not the result %r; "
                                    "usage: %s" % (what, desc.name, kind, ref.label, desc.signature()))
                tfi, tsi = self.labels[ref.label]
                if tfi == fi and tsi >= si:
                    raise SpecError(fi + 1, ref.col, "%r is defined later in this flow; define a "
                                    "label before using it" % ref.label)
                if tfi == fi and desc.anchor == param.name:
                    raise SpecError(fi + 1, ref.col, "%s watches %r, which is in the same flow; put "
                                    "%s in a flow of its own, e.g. '... %s=%s' '%s(..., %s, ...)'"
                                    % (desc.name, ref.label, desc.name, ref.label,
                                       self.flows[tfi][tsi].name, desc.name, ref.label))
                out.append((param, ref))
        return out

    def _order(self):
        """Flows in an order where every flow comes after the flows whose results it watches."""
        deps = {fi: set() for fi in range(len(self.flows))}
        for fi, steps in enumerate(self.flows):
            for si in range(len(steps)):
                for _, ref in self._refs(fi, si):
                    tfi = self.labels[ref.label][0]
                    if tfi != fi:
                        deps[fi].add(tfi)
        order, state = [], {}

        def visit(fi, path):
            if state.get(fi) == "done":
                return
            if state.get(fi) == "visiting":
                cycle = " -> ".join("flow %d" % (f + 1) for f in path + [fi])
                raise SpecError(fi + 1, None, "flows watch each other in a cycle: %s" % cycle)
            state[fi] = "visiting"
            for d in sorted(deps[fi]):
                visit(d, path + [fi])
            state[fi] = "done"
            order.append(fi)
        for fi in range(len(self.flows)):
            visit(fi, [])
        return order

    def _resolve(self, v):
        if isinstance(v, Ref):
            fi, si = self.labels[v.label]
            return (self.fds[fi], self.fids[(fi, si)])
        if isinstance(v, list):
            return [self._resolve(x) for x in v]
        return v

    def open(self, clock_interval_ns=None, on_snapshot=None):
        """Create the device, the flows and their functions, and connect them.  With
        `clock_interval_ns`, a CLI_CLOCK flow (connected last) calls on_snapshot(Snapshot) at
        the end of every interval (packet time offline, wall clock live)."""
        if clock_interval_ns:
            from mapi.client import installed
            if installed() is not None:
                raise mapi.MapiError(mapi.ENOTSUP, "--interval cuts the run with a node of this "
                                     "process (CLI_CLOCK), which a MAPI server (--server, "
                                     "MAPI_SERVER) does not run: leave out --interval or the server",
                                     argument="--interval")
        self.dev = self.source.open()
        for fi in self.order:
            if not self._refers_to_itself(fi):
                self._make_at_once(fi)
                continue
            fd = self._create_flow()
            self.fds[fi] = fd
            for si, step in enumerate(self.flows[fi]):
                args = [self._resolve(v) for v in step.args]
                kwargs = {k: self._resolve(v) for k, v in step.kwargs.items()}
                try:
                    self.fids[(fi, si)] = mapi.apply_function(fd, step.name, *args, **kwargs)
                except mapi.MapiError as exc:
                    raise in_flow(exc, fi, step) from None
            try:
                mapi.connect(fd)
            except mapi.MapiError as exc:
                raise in_flow(exc, fi, None) from None
        for fi, steps in enumerate(self.flows):
            for si in range(len(steps)):
                if self.descs[fi][si].result == "packets":
                    self._drain(self.fds[fi], self.fids[(fi, si)])
        if clock_interval_ns:
            from . import clock
            clock.register()
            self.clock = clock.Clock(self.targets(), clock_interval_ns, self.source.live, on_snapshot)
            self.clock_fd = mapi.create_flow(self.dev)
            mapi.apply_function(self.clock_fd, clock.NAME, self.clock.id)
            mapi.connect(self.clock_fd)
        return self

    def _refers_to_itself(self, fi):
        """Does a step of flow fi take a label of the same flow (known only once it exists)?"""
        return any(self.labels[r.label][0] == fi for step in self.flows[fi]
                   for v in list(step.args) + list(step.kwargs.values()) for r in walk_refs(v))

    def _make_at_once(self, fi):
        """Flow fi in one call (create_flow_with: through a server one request per sensor, not
        one per step); a failed step's error as the separate call would give it, in_flow's."""
        steps = self.flows[fi]
        functions = [dict(name=step.name, args=[self._resolve(v) for v in step.args],
                          kwargs={k: self._resolve(v) for k, v in step.kwargs.items()})
                     for step in steps]
        try:
            fd, fids = self._create_flow(functions)
        except mapi.MapiError as exc:
            failed = exc.where.get("step")
            if failed is None:
                raise
            where = {k: v for k, v in exc.where.items() if k != "step"}
            text = str(exc).removesuffix(" (the flow was closed)")
            text = text.removeprefix("create_flow_with: %s: " % failed)
            step = None if failed == "connect" else steps[int(failed.split()[1]) - 1]
            raise in_flow(mapi.MapiError(exc.code, text, **where), fi, step) from None
        self.fds[fi] = fd
        for si, fid in enumerate(fids):
            self.fids[(fi, si)] = fid

    def _create_flow(self, functions=None):
        try:
            if functions is None:
                return mapi.create_flow(self.dev)
            return mapi.create_flow_with(self.dev, functions)
        except mapi.MapiError as exc:
            if "step" in exc.where:
                raise
            if self.source.live and self.dev.rsplit(":", 1)[-1] == "any":
                raise mapi.MapiError(exc.code, "%s (no installed backend captures on every "
                                     "interface at once; give each with its own -i)" % exc,
                                     **exc.where) from None
            raise

    def targets(self):
        """(fd, fid) of every function of every flow, in flow and step order."""
        return [(self.fds[fi], self.fids[(fi, si)])
                for fi, steps in enumerate(self.flows) for si in range(len(steps))]

    def start(self):
        """Start the replay (a live device started capturing when its first flow connected)."""
        if not self.source.live:
            mapi.start_offline_device(self.dev)

    def stop(self):
        """End the packet stream now (Ctrl-C, -c, --duration): the engine finishes the batch
        it is running, every function sees the end of the stream, results stay readable."""
        try:
            mapi.stop_device(self.dev)
        except mapi.MapiError as exc:
            # a MAPI server's device that other clients' flows use too goes on for them: this
            # run ends here, its results are read as they are now
            self.left = exc.code == mapi.EPERM

    def wait(self, timeout=None):
        """Wait for the end of the stream; True when it ended (a replay error goes to
        self.error).  The CLI's TO_BUFFER readers have taken every packet then."""
        if self.left:
            return True
        try:
            mapi.wait_offline_device(self.dev, timeout)
        except mapi.MapiError as exc:
            if exc.code == 1016:             # still running after `timeout`
                return False
            self.error = exc
        for t in self._drains:
            t.join()
        return True

    def run(self, progress="auto", stream=None):
        """Replay the file through every flow; a replay error is kept in self.error."""
        self.start()
        bar = self.source.progress_bar(self.dev, stream, progress).start()
        try:
            self.wait()
        finally:
            bar.stop(failed=self.error is not None)
        return self

    def _drain(self, fd, fid):
        """Functions that hand out packets (TO_BUFFER) would hold an offline replay back once
        full: the CLI takes their packets and only counts them."""
        counts = {"packets": 0, "bytes": 0}

        def take():
            # counted in C, batch-wise: no per-packet Python however large the trace
            try:
                buf = mapi.api.function_instance(fd, fid)
            except mapi.MapiError:
                return
            while True:
                got = buf.drain(timeout=0.2)
                if got is None:
                    return
                counts["packets"] += got[0]
                counts["bytes"] += got[1]
        t = threading.Thread(target=take, name="mapi-cli-drain", daemon=True)
        t.counts, t.key = counts, (fd, fid)
        t.start()
        self._drains.append(t)

    def results(self):
        """A JSON-ready report: device, flows with each function's result and packet counts."""
        drained = {t.key: t.counts for t in self._drains}
        dinfo = mapi.get_device_info(self.dev)
        flows = []
        for fi, steps in enumerate(self.flows):
            fd = self.fds[fi]
            funcs = []
            for si, step in enumerate(steps):
                fid = self.fids[(fi, si)]
                desc = self.descs[fi][si]
                r = mapi.read_results(fd, fid)
                finfo = mapi.get_function_info(fd, fid)
                entry = dict(fid=fid, name=desc.name, label=step.label, spec=step.text,
                             args=jsonable(finfo.get("args", [])), filters=desc.filters,
                             result_type=desc.result,
                             result=jsonable(r.value), ts=r.ts,
                             time=iso_utc(r.ts) if r.ts else None,
                             pkts_in=finfo.get("pkts_in"), pkts_out=finfo.get("pkts_out"))
                if (fd, fid) in drained:
                    entry["taken_by_cli"] = dict(drained[(fd, fid)])
                if desc.result == "events":
                    entry["events"] = _events(fd, fid)
                funcs.append(entry)
            flows.append(dict(flow=fi + 1, fd=fd, spec=self.specs[fi], functions=funcs))
        # a backend reading a capture of something else (netflow: exports) names it under "capture"
        cap = dinfo.get("capture")          # (a live device's "capture" is its capture mode)
        fmt = dinfo.get("format") or (cap.get("format") if isinstance(cap, dict) else None)
        out = dict(device=self.dev, live=self.source.live, format=fmt,
                   linktype=dinfo.get("linktype"), packets=dinfo.get("packets"), flows=flows)
        if self.source.live:
            out["stats"] = jsonable(mapi.stats(self.dev))
        else:
            out["file"] = self.source.label
            if len(self.source.paths) > 1:
                out["files"] = list(self.source.paths)
        if self.error is not None:
            out["error"] = dict(code=self.error.code, message=str(self.error))
        return out

    def close(self):
        if self.clock is not None:
            self.clock.forget()
        if self.dev is None:
            return
        if self.source.live:
            for fd in [self.clock_fd] + list(self.fds.values()):
                if fd is not None:
                    try:
                        mapi.close_flow(fd)
                    except mapi.MapiError:
                        pass
        else:
            try:
                mapi.delete_offline_device(self.dev)
            except mapi.MapiError:
                pass
        self.dev = None


def _events(fd, fid):
    """Every event the function raised (they wait in its queue once the replay is over)."""
    out = []
    while True:
        try:
            ev = mapi.get_next_event(fd, fid, timeout=0)
        except mapi.MapiError:
            break
        if ev is None:
            break
        out.append(dict(ts=ev.ts, time=iso_utc(ev.ts), value=jsonable(ev.value), kind=ev.kind,
                        threshold=jsonable(ev.threshold), seq=ev.seq))
    return out


def in_flow(exc, fi, step):
    """`exc` again, its message prefixed with the flow (and step) of the spec it came from."""
    where = "flow %d" % (fi + 1)
    if step is not None:
        where += ", column %d (%s)" % (step.col, step.text)
    return mapi.MapiError(exc.code, "%s: %s" % (where, exc), **exc.where)


def run_job(args, replay, report):
    """Set up the flows of `args` (-r, FLOW..., --format, --backend), replay (if `replay`),
    print report(job), close; the exit code says whether the replay met a bad record (results
    are printed first)."""
    job = Job(Source(paths=args.read, fmt=args.format, backend=args.backend,
                     merge=getattr(args, "merge", False)), args.flows)
    try:
        job.open()
        if replay:
            job.run(progress=args.progress)
        report(job)
        sys.stdout.flush()
        if job.error is not None:
            report_error(job.error)
            return EXIT_REPLAY_ERROR
        return EXIT_OK
    finally:
        job.close()
