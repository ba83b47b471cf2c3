"""The ``mapi`` command: MAPI flows over a trace file, from the shell.

    mapi run -r FILE 'BPF_FILTER("tcp port 80") PKT_COUNTER BYTE_COUNTER' [FLOW ...]
    mapi info FILE
    mapi devices
    mapi functions [NAME]

A subcommand is one entry of COMMANDS: a function that adds its argparse sub-parser and sets
``handler``.  Flow specs are parsed here (FlowSpec / parse_flow) and turned into MAPI flows by a
Job, which other subcommands (e.g. one that prints the device graph) can reuse without running.

Exit codes: 0 success; 1 the replay met an error after results were collected (a truncated or
corrupt file: the results are printed first); 2 bad usage, bad flow spec or a MapiError before
the replay (missing file, invalid filter, unknown function); 130 interrupted.
"""
import argparse
import ctypes
import ctypes.util
import datetime
import json
import logging
import os
import re
import sys
import threading
from collections import namedtuple

import mapi
from mapi import constants
from mapi.descriptor import ARG_TYPES, REQUIRED
from mapi.errors import CODES
from mapi.registry import get_registry

EXIT_OK, EXIT_REPLAY_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

FLOW_SYNTAX = """\
flow syntax (one quoted argument per flow; its functions run in order, each on the packets
the previous filters let through):

  FLOW   := STEP { [,] STEP }
  STEP   := [LABEL =] NAME [ ( [ARG {, ARG}] ) ]
  ARG    := [PARAM =] VALUE
  VALUE  := "string" | 'string' | number | CONSTANT | LABEL | [VALUE, ...] | true | false

  - NAME is a MAPI function (see `mapi functions`); parentheses may be left out when it takes
    no arguments or only its defaults: PKT_COUNTER, TO_BUFFER.
  - Strings: a backslash escapes only the quote and itself; other sequences (\\d, \\x41) reach
    the function as written.  STR_SEARCH takes snort-style hex: "|0d 0a|Host:".
  - Numbers: 100, -3, 0x1f, 2.5, 1e6.
  - CONSTANT: a MAPI constant such as PERIODIC, PROBABILISTIC, WAIT, NOWAIT, GREATER, LESS,
    EQUAL, ADD, SUB.
  - LABEL = STEP names the step's result; another step, in this flow or another one, passes the
    label where a function expects a result of another flow (fd, fid), e.g. THRESHOLD:
      'BPF_FILTER("udp port 53") q=PKT_COUNTER'  'THRESHOLD(GREATER, q, 100)'
    Labels are lower-case words that are neither constants nor function names.

examples:
  mapi run -r trace.pcap 'BPF_FILTER("tcp port 80") PKT_COUNTER BYTE_COUNTER'
  mapi run -r trace.pcap 'PKT_COUNTER' 'BPF_FILTER("udp") SAMPLE(10, PERIODIC) PKT_COUNTER'
  mapi run -r trace.pcap --json 'STR_SEARCH(["GET /", "|0d 0a|Host:"]) PKT_COUNTER'
"""


# --- flow specs ---------------------------------------------------------------------------------
class SpecError(Exception):
    """A flow spec that does not parse or does not make sense (exit 2)."""

    def __init__(self, flow, col, message):
        self.flow, self.col = flow, col
        if flow is None:
            super().__init__(message)
            return
        where = "flow %d" % flow if col is None else "flow %d, column %d" % (flow, col)
        super().__init__("%s: %s" % (where, message))


Step = namedtuple("Step", "label name args kwargs col text")   # one function call of a flow
Ref = namedtuple("Ref", "label col")                          # a LABEL used as an argument

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<num>[-+]?(?:0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?))
  | (?P<name>[A-Za-z_]\w*(?::[A-Za-z_]\w*)?(?:!\w+)?)
  | (?P<punct>[()\[\],=])
""", re.X)

_BOOLS = {"true": True, "True": True, "false": False, "False": False}


def _constant_names():
    return {n: getattr(constants, n) for n in dir(constants)
            if n.isupper() and isinstance(getattr(constants, n), (str, int))}


def _tokens(flow, text):
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            ch = text[pos]
            if ch in "\"'":
                raise SpecError(flow, pos + 1, "string starting here has no closing %s" % ch)
            raise SpecError(flow, pos + 1, "unexpected character %r" % ch)
        kind = m.lastgroup
        if kind == "num" and m.end() < len(text) and (text[m.end()].isalnum() or text[m.end()] == "_"):
            raise SpecError(flow, pos + 1, "%r is not a number" % re.match(r"[\w.+-]+", text[pos:]).group())
        if kind != "ws":
            out.append((kind, m.group(), pos + 1))
        pos = m.end()
    out.append(("end", "", len(text) + 1))
    return out


def _unquote(tok):
    quote, body = tok[0], tok[1:-1]
    return re.sub(r"\\([\\%s])" % quote, r"\1", body)


def _number(tok):
    t = tok.lower()
    if "x" in t:
        return int(t, 16)
    if any(c in t for c in ".e"):
        return float(t)
    return int(t)


class _Parser:
    def __init__(self, flow, text):
        self.flow, self.text = flow, text
        self.toks = _tokens(flow, text)
        self.i = 0
        self.constants = _constant_names()

    def peek(self, k=0):
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def take(self):
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def fail(self, tok, what):
        found = "the end of the flow" if tok[0] == "end" else repr(tok[1])
        raise SpecError(self.flow, tok[2], "expected %s, found %s" % (what, found))

    def expect(self, value, what):
        tok = self.take()
        if tok[1] != value or tok[0] not in ("punct",):
            self.fail(tok, what)
        return tok

    def flow_steps(self):
        steps = []
        while self.peek()[0] != "end":
            if steps and self.peek()[1] == ",":
                self.take()
            steps.append(self.step())
        if not steps:
            raise SpecError(self.flow, None, "empty flow: give at least one function, e.g. PKT_COUNTER")
        return steps

    def step(self):
        start = self.peek()
        label = None
        if start[0] == "name" and self.peek(1)[1] == "=":
            label = self.take()[1]
            self.take()
            if not re.fullmatch(r"[a-z_][a-z0-9_]*", label):
                raise SpecError(self.flow, start[2], "label %r must be a lower-case word "
                                "(a-z, 0-9, _), e.g. c=PKT_COUNTER" % label)
            if label in _BOOLS:
                raise SpecError(self.flow, start[2], "%r cannot be a label" % label)
        tok = self.take()
        if tok[0] != "name":
            self.fail(tok, "a function name such as PKT_COUNTER")
        args, kwargs = [], {}
        end = tok[2] + len(tok[1])
        if self.peek()[1] == "(" and self.peek()[0] == "punct":
            self.take()
            while self.peek()[1] != ")":
                if args or kwargs:
                    self.expect(",", "',' or ')' in the arguments of %s" % tok[1])
                    if self.peek()[1] == ")":
                        break
                if self.peek()[0] == "name" and self.peek(1)[1] == "=":
                    key = self.take()
                    self.take()
                    if key[1] in kwargs:
                        raise SpecError(self.flow, key[2], "argument %s given twice" % key[1])
                    kwargs[key[1]] = self.value()
                else:
                    if kwargs:
                        raise SpecError(self.flow, self.peek()[2], "positional argument after "
                                        "a named one in %s" % tok[1])
                    args.append(self.value())
            close = self.expect(")", "')' to close the arguments of %s" % tok[1])
            end = close[2] + 1
        text = self.text[start[2] - 1:end - 1]
        return Step(label, tok[1], args, kwargs, start[2], text)

    def value(self):
        tok = self.take()
        kind, val, col = tok
        if kind == "str":
            return _unquote(val)
        if kind == "num":
            return _number(val)
        if kind == "name":
            if val in _BOOLS:
                return _BOOLS[val]
            if val in self.constants:
                return self.constants[val]
            if re.fullmatch(r"[a-z_][a-z0-9_]*", val):
                return Ref(val, col)
            raise SpecError(self.flow, col, "unknown constant %r (constants: %s; a label is "
                            "a lower-case word)" % (val, ", ".join(sorted(self.constants))))
        if kind == "punct" and val == "[":
            items = []
            while self.peek()[1] != "]":
                if items:
                    self.expect(",", "',' or ']' in the list")
                    if self.peek()[1] == "]":
                        break
                items.append(self.value())
            self.expect("]", "']' to close the list")
            return items
        self.fail(tok, "a value (string, number, constant, label or list)")


def parse_flow(text, flow=1):
    """The steps of one flow spec; SpecError names the flow and column of a mistake."""
    return _Parser(flow, text).flow_steps()


# --- jobs: flow specs made into MAPI flows on one device ---------------------------------------
class Job:
    """Flow specs over one offline file: parse and check (constructor), then open() makes the
    device, flows and functions; run() replays; results() reads everything back."""

    def __init__(self, path, specs, fmt=None, backend=None):
        self.backend = backend
        if not specs:
            raise SpecError(None, None, "no flow given: add at least one, e.g. 'PKT_COUNTER'")
        self.path, self.fmt = path, fmt
        self.specs = list(specs)
        self.flows = [parse_flow(text, i + 1) for i, text in enumerate(self.specs)]
        reg = get_registry()
        self.descs = [[self._descriptor(reg, fi, s) for s in steps] for fi, steps in enumerate(self.flows)]
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

    def _descriptor(self, reg, fi, step):
        try:
            return reg.function(step.name)
        except mapi.MapiError as exc:
            raise _in_flow(exc, fi, step) from None

    def _refs(self, fi, si):
        """(param, Ref) of every label argument of step si of flow fi, checked against the
        descriptor: a label may only stand where an (fd, fid) reference is expected."""
        step, desc = self.flows[fi][si], self.descs[fi][si]
        params = {a.name: a for a in desc.args}
        pairs = [(desc.args[i] if i < len(desc.args) else None, v) for i, v in enumerate(step.args)]
        pairs += [(params.get(k), v) for k, v in step.kwargs.items()]
        out = []
        for param, v in pairs:
            for ref in _walk_refs(v):
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

    def open(self):
        """Create the device, the flows and their functions, and connect them."""
        self.dev = mapi.create_offline_device(self.path, self.fmt, backend=self.backend)
        for fi in self.order:
            fd = mapi.create_flow(self.dev)
            self.fds[fi] = fd
            for si, step in enumerate(self.flows[fi]):
                args = [self._resolve(v) for v in step.args]
                kwargs = {k: self._resolve(v) for k, v in step.kwargs.items()}
                try:
                    self.fids[(fi, si)] = mapi.apply_function(fd, step.name, *args, **kwargs)
                except mapi.MapiError as exc:
                    raise _in_flow(exc, fi, step) from None
            try:
                mapi.connect(fd)
            except mapi.MapiError as exc:
                raise _in_flow(exc, fi, None) from None
        return self

    def run(self, progress="auto", stream=None):
        """Replay the file through every flow; a replay error is kept in self.error."""
        from mapi.progress import ProgressBar
        total = None
        info = mapi.get_device_info(self.dev)
        if not info.get("compression"):
            try:
                total = os.path.getsize(self.path)
            except OSError:
                total = None
        for fi, steps in enumerate(self.flows):
            for si in range(len(steps)):
                if self.descs[fi][si].result == "packets":
                    self._drain(self.fds[fi], self.fids[(fi, si)])
        mapi.start_offline_device(self.dev)
        bar = ProgressBar(self.dev, total, stream=stream, mode=progress).start()
        try:
            mapi.wait_offline_device(self.dev)
        except mapi.MapiError as exc:
            self.error = exc
        finally:
            bar.stop(failed=self.error is not None)
        for t in self._drains:
            t.join()
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
                             pkts_in=finfo.get("pkts_in"), pkts_out=finfo.get("pkts_out"))
                if (fd, fid) in drained:
                    entry["taken_by_cli"] = dict(drained[(fd, fid)])
                if desc.result == "events":
                    entry["events"] = _events(fd, fid)
                funcs.append(entry)
            flows.append(dict(flow=fi + 1, fd=fd, spec=self.specs[fi], functions=funcs))
        out = dict(file=self.path, format=dinfo.get("format"), linktype=dinfo.get("linktype"),
                   packets=dinfo.get("packets"), flows=flows)
        if self.error is not None:
            out["error"] = dict(code=self.error.code, message=str(self.error))
        return out

    def close(self):
        if self.dev is not None:
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
        out.append(dict(ts=ev.ts, value=jsonable(ev.value), kind=ev.kind,
                        threshold=jsonable(ev.threshold), seq=ev.seq))
    return out


def _walk_refs(v):
    if isinstance(v, Ref):
        yield v
    elif isinstance(v, list):
        for x in v:
            yield from _walk_refs(x)


def _in_flow(exc, fi, step):
    where = "flow %d" % (fi + 1)
    if step is not None:
        where += ", column %d (%s)" % (step.col, step.text)
    new = mapi.MapiError(exc.code, "%s: %s" % (where, exc), **exc.where)
    return new


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


# --- human output ------------------------------------------------------------------------------
def _fmt_scalar(v):
    if isinstance(v, float):
        return "%.6g" % v
    if isinstance(v, (list, tuple)):
        return "(%s)" % ", ".join(_fmt_scalar(x) for x in v)
    if isinstance(v, dict):
        return ", ".join("%s=%s" % (k, _fmt_scalar(x)) for k, x in v.items())
    return "-" if v is None else str(v)


_SYMBOL = {mapi.GREATER: ">", mapi.LESS: "<", mapi.EQUAL: "=="}


def _stamp(ts_ns):
    secs, frac = divmod(ts_ns, 10 ** 9)
    return "%s.%09d" % (datetime.datetime.fromtimestamp(secs, datetime.timezone.utc)
                        .strftime("%Y-%m-%d %H:%M:%S"), frac)


def format_result(entry):
    """Lines describing one function's result for the table."""
    v = entry["result"]
    lines = []
    if isinstance(v, list) and v:
        lines = ["%d. %s" % (i + 1, _fmt_scalar(x)) for i, x in enumerate(v)] \
            if entry["result_type"] == "list" else [_fmt_scalar(x) for x in v]
        lines.insert(0, "%d entries:" % len(v)) if len(v) > 1 else None
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
    shown = 10
    for ev in entry.get("events", [])[:shown]:
        at = "packet index %d" % ev["seq"] if ev["seq"] is not None else "interval end"
        lines.append("%s %s %s at %s (%s)" % (_fmt_scalar(ev["value"]), _SYMBOL.get(ev["kind"], ev["kind"]),
                                              _fmt_scalar(ev["threshold"]), _stamp(ev["ts"]), at))
    if len(entry.get("events", [])) > shown:
        lines.append("... %d more events (--json lists them all)" % (len(entry["events"]) - shown))
    if "taken_by_cli" in entry:
        t = entry["taken_by_cli"]
        lines.append("%d packets (%d bytes) taken by mapi run" % (t["packets"], t["bytes"]))
    return lines or ["-"]


def print_table(report, out):
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


# --- subcommands -------------------------------------------------------------------------------
def _run_job(args, replay, report):
    """Set up the flows of `args`, replay (if `replay`), print report(job), close; the exit
    code says whether the replay met a bad record (results are printed first)."""
    job = Job(args.read, args.flows, fmt=args.format, backend=args.backend)
    try:
        job.open()
        if replay:
            job.run(progress=args.progress)
        report(job)
        sys.stdout.flush()
        if job.error is not None:
            _error(job.error)
            return EXIT_REPLAY_ERROR
        return EXIT_OK
    finally:
        job.close()


def cmd_run(args):
    def report(job):
        results = job.results()
        if args.json:
            json.dump(results, sys.stdout, indent=2)
            sys.stdout.write("\n")
        else:
            print_table(results, sys.stdout)
    return _run_job(args, True, report)


def add_run(sub):
    p = sub.add_parser("run", help="run flows over a trace file and print their results",
                       description="Run one or more MAPI flows over an offline trace and print "
                       "every function's result.", epilog=FLOW_SYNTAX,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-r", "--read", required=True, metavar="FILE",
                   help="trace file: pcap, pcapng or ERF, optionally gzip/xz/bzip2-compressed")
    p.add_argument("flows", nargs="*", metavar="FLOW", help="one flow per argument (syntax below)")
    p.add_argument("--format", choices=(mapi.MFF_PCAP, mapi.MFF_PCAPNG, mapi.MFF_DAG_ERF),
                   help="file format (default: detected)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--progress", choices=("auto", "always", "never"), default="auto",
                   help="progress bar on stderr: auto = on a terminal, for runs longer than "
                   "half a second (default)")
    p.add_argument("--backend", metavar="NAME",
                   help="replay through this backend, e.g. combo6 or dag (emulated cards); "
                   "default: detected from the file")
    p.set_defaults(handler=cmd_run)


def cmd_explain(args):
    def report(job):
        if args.json:
            json.dump(mapi.explain_data(job.dev), sys.stdout, indent=2, default=jsonable)
            sys.stdout.write("\n")
        else:
            print(mapi.explain(job.dev))
    return _run_job(args, not args.no_run, report)


def add_explain(sub):
    p = sub.add_parser("explain", help="show the global graph the organizer and mapper built",
                       description="Set up the flows like 'mapi run', replay the file, and print "
                       "the device's global monitoring graph: shared nodes and their owners, "
                       "where each node runs (hardware unit or software), cost class and "
                       "packets in and out.", epilog=FLOW_SYNTAX,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-r", "--read", required=True, metavar="FILE", help="trace file")
    p.add_argument("flows", nargs="*", metavar="FLOW", help="one flow per argument")
    p.add_argument("--format", choices=(mapi.MFF_PCAP, mapi.MFF_PCAPNG, mapi.MFF_DAG_ERF))
    p.add_argument("--backend", metavar="NAME", help="e.g. combo6 or dag")
    p.add_argument("--no-run", action="store_true", help="show the graph before any packet")
    p.add_argument("--json", action="store_true", help="the graph as JSON")
    p.add_argument("--progress", choices=("auto", "always", "never"), default="auto")
    p.set_defaults(handler=cmd_explain)


_pcap = None


def linktype_name(linktype):
    """libpcap's name and description of a LINKTYPE_ value, e.g. ("EN10MB", "Ethernet")."""
    global _pcap
    from mapi._engine import lib
    try:
        if _pcap is None:
            _pcap = ctypes.CDLL(ctypes.util.find_library("pcap") or "libpcap.so.0.8")
            _pcap.pcap_datalink_val_to_name.restype = ctypes.c_char_p
            _pcap.pcap_datalink_val_to_description.restype = ctypes.c_char_p
        dlt = lib.mapi_linktype_to_dlt(linktype)
        name = _pcap.pcap_datalink_val_to_name(dlt)
        desc = _pcap.pcap_datalink_val_to_description(dlt)
        if name:
            return name.decode(), (desc or name).decode()
    except (OSError, AttributeError):
        pass
    return "LINKTYPE_%d" % linktype, "link type %d" % linktype


def file_info(path, fmt=None, progress="auto"):
    """What `mapi info` reports, measured by MAPI flows: counters on one, and the first packet's
    time from a TO_BUFFER on another that is closed once that packet is out."""
    dev = mapi.create_offline_device(path, fmt)
    error = first = None
    try:
        fd = mapi.create_flow(dev)
        pkts = mapi.apply_function(fd, "PKT_COUNTER")
        wire = mapi.apply_function(fd, "BYTE_COUNTER")
        mapi.connect(fd)
        first_fd = mapi.create_flow(dev)
        buf = mapi.apply_function(first_fd, "TO_BUFFER", mapi.WAIT, 1 << 20)
        mapi.connect(first_fd)
        mapi.start_offline_device(dev)
        from mapi.progress import ProgressBar
        dinfo = mapi.get_device_info(dev)
        total = None if dinfo.get("compression") else os.path.getsize(path)
        bar = ProgressBar(dev, total, mode=progress).start()
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
                duration_ns=(last_ts - first_ts) if first_ts is not None and last_ts is not None else None)
    if error is not None:
        info["error"] = dict(code=error.code, message=str(error))
    return info, error


def _when(ts_ns, precision):
    if ts_ns is None:
        return "-"
    secs, frac = divmod(ts_ns, 10 ** 9)
    stamp = datetime.datetime.fromtimestamp(secs, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    digits = "%09d" % frac if precision == "ns" else "%06d" % (frac // 1000)
    return "%s.%s UTC (%d.%s)" % (stamp, digits, secs, digits)


def cmd_info(args):
    info, error = file_info(args.file, args.format, args.progress)
    if args.json:
        json.dump(info, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
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
        w = max(len(k) for k, _ in rows)
        for k, v in rows:
            print("%-*s  %s" % (w + 1, k + ":", v))
    sys.stdout.flush()
    if error is not None:
        _error(error)
        return EXIT_REPLAY_ERROR
    return EXIT_OK


def add_info(sub):
    p = sub.add_parser("info", help="format, link type, packet and byte counts, time span of a file",
                       description="Describe a trace file as a MAPI device reads it.")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--format", choices=(mapi.MFF_PCAP, mapi.MFF_PCAPNG, mapi.MFF_DAG_ERF))
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--progress", choices=("auto", "always", "never"), default="auto")
    p.set_defaults(handler=cmd_info)


def devices_report():
    reg = get_registry()
    backends = []
    for name in sorted(reg.backends):
        d = reg.backends[name]
        entry = dict(backend=name, plugin=d.plugin, doc=(d.doc or "").strip(),
                     offline=d.open_offline is not None, live=d.open_live is not None, devices=[])
        if d.list_devices is not None:
            try:
                entry["devices"] = [jsonable(x) for x in (d.list_devices() or [])]
            except Exception as exc:      # one broken backend must not hide the others
                entry["error"] = "%s: %s" % (type(exc).__name__, exc)
        backends.append(entry)
    return dict(backends=backends, problems=[dict(plugin=p, message=m) for p, m in reg.problems])


def cmd_devices(args):
    rep = devices_report()
    if args.json:
        json.dump(rep, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return EXIT_OK
    for b in rep["backends"]:
        kinds = "/".join(k for k in ("offline", "live") if b[k]) or "none"
        print("%s  (plugin %s; %s)  %s" % (b["backend"], b["plugin"] or "?", kinds, b["doc"]))
        if "error" in b:
            print("    cannot list devices: %s" % b["error"])
        elif b["devices"]:
            for dv in b["devices"]:
                if isinstance(dv, dict):
                    print("    %-16s %s" % (dv.get("name", "?"), dv.get("description", "")))
                else:
                    print("    %s" % dv)
        elif b["offline"] and not b["live"]:
            print("    no interfaces: opens files (mapi run -r FILE ...)")
        else:
            print("    no devices found")
    for p in rep["problems"]:
        print("problem in plugin %s: %s" % (p["plugin"], p["message"]))
    return EXIT_OK


def add_devices(sub):
    p = sub.add_parser("devices", help="installed backends and the devices they offer")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=cmd_devices)


def _param_text(a):
    kind = "|".join(map(str, a.choices)) if a.type == "c" and a.choices else ARG_TYPES.get(a.type, a.type)
    if a.type == "F":
        kind = "LABEL of another function's result"
    text = "%s: %s" % (a.name, kind)
    if a.default is not REQUIRED:
        text += " = %r" % (a.default,)
    return text


def functions_report(names=None):
    reg = get_registry()
    out = []
    for name in (names or sorted(reg.functions)):
        d = reg.function(name)
        out.append(dict(name=d.name, plugin=d.plugin,
                        signature="%s(%s)" % (d.name, ", ".join(_param_text(a) for a in d.args)),
                        args=[dict(name=a.name, type=a.type, type_name=ARG_TYPES.get(a.type, a.type),
                                   required=a.default is REQUIRED,
                                   default=None if a.default is REQUIRED else jsonable(a.default),
                                   choices=jsonable(a.choices), doc=a.doc) for a in d.args],
                        filters=d.filters, modifies=d.modifies, result=d.result, cost=d.cost,
                        shareable=d.shareable, stateful=d.stateful, anchor=d.anchor,
                        doc=(d.doc or "").strip()))
    return out


def cmd_functions(args):
    rep = functions_report(args.names)
    if args.json:
        json.dump(rep, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return EXIT_OK
    for f in rep:
        flags = ["filters" if f["filters"] else None, "modifies packets" if f["modifies"] else None,
                 "result: %s" % f["result"], "cost: %s" % f["cost"],
                 "shareable" if f["shareable"] else "not shareable",
                 "stateful" if f["stateful"] else None,
                 "watches %s" % f["anchor"] if f["anchor"] else None, "plugin: %s" % f["plugin"]]
        print(f["signature"])
        print("    " + ", ".join(x for x in flags if x))
        doc = f["doc"].splitlines()
        for line in (doc if args.names else doc[:1]):
            print("    " + line if line.strip() else "")
    return EXIT_OK


def add_functions(sub):
    p = sub.add_parser("functions", help="installed MAPI functions: signatures and flags")
    p.add_argument("names", nargs="*", metavar="NAME", help="show these functions in full")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=cmd_functions)


# Each entry adds one subcommand; a new one (e.g. `explain`) is one function and one line here.
COMMANDS = [add_run, add_explain, add_info, add_devices, add_functions]


def build_parser():
    p = argparse.ArgumentParser(prog="mapi", description="SCAMPI's MAPI from the command line.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for add in COMMANDS:
        add(sub)
    return p


def _one_line(text):
    return " ".join(str(text).split())


def _error(exc):
    if isinstance(exc, mapi.MapiError):
        msg = "%s [MAPI error %d: %s]" % (_one_line(exc), exc.code, CODES.get(exc.code, "?"))
    else:
        msg = _one_line(exc)
    sys.stderr.write("mapi: %s\n" % msg)
    sys.stderr.flush()


def main(argv=None):
    logging.basicConfig(level=logging.WARNING, format="mapi: warning: %(message)s")
    # replay errors are reported once, by the command itself
    logging.getLogger("mapi.device").setLevel(logging.ERROR)
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (SpecError, mapi.MapiError) as exc:
        _error(exc)
        return EXIT_USAGE
    except KeyboardInterrupt:
        sys.stderr.write("mapi: interrupted\n")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # the reader of our output went away (mapi functions | head): not an error
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
