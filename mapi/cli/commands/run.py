"""`mapi run -r FILE|-i DEVICE [FLOW... | FILTER WORDS]`: run flows over trace files or live
devices and print every function's result (per interval too, with --interval)."""
import argparse
import re
import sys

from ..flowspec import FLOW_SYNTAX, SpecError
from ..job import Job
from ..source import Source
from ..output import parse_duration, print_table, write_json
from ..session import Session
from . import add_source_arguments

RUN_EPILOG = """\
tcpdump habits:
  mapi run -r trace.pcap tcp port 80         the filter as trailing words: one flow
                                             'BPF_FILTER("tcp port 80") PKT_COUNTER BYTE_COUNTER'
  mapi run -i eth0 --interval 1s             live: packets and bytes every second until Ctrl-C
  mapi run -r trace.pcap -c 100 -w out.pcap udp   the first 100 UDP packets into out.pcap
  cat trace.pcap | mapi run -r - 'PKT_COUNTER'    read standard input
  mapi run -r a.pcap -r b.pcap --merge ...   several files, in turn or merged by time

"""

# a flow starts with a function name (upper case) or a label assignment; filter words do not
_FLOW_START = re.compile(r"\s*([A-Z][A-Za-z0-9_]*(\W|$)|[a-z_]\w*\s*=(?!=)\s*(?![0-9]))")


def quote(text):
    """`text` as a string of the flow language."""
    return '"%s"' % text.replace("\\", "\\\\").replace('"', '\\"')


def flow_specs(args):
    """The flows to run: the FLOW arguments, or one counting flow made of the filter words
    (tcpdump style); -c adds LIMIT, -w adds TO_FILE, --duration on files adds STARTSTOP."""
    words = list(args.flows)
    flows = [w for w in words if _FLOW_START.match(w)]
    if flows and len(flows) != len(words):
        stray = next(w for w in words if not _FLOW_START.match(w))
        raise SpecError(None, None, "%r is not a flow (a flow starts with a function name such "
                        "as PKT_COUNTER); give either flows or a capture filter as trailing "
                        "words, e.g. mapi run -r FILE tcp port 80" % stray)
    steps = []
    expr = " ".join(words) if words and not flows else None
    if args.duration is not None and not args.interfaces:
        steps.append('STARTSTOP("", "+%dns")' % args.duration)
    if expr is not None:
        steps.append("BPF_FILTER(%s)" % quote(expr))
    if args.count is not None:
        steps.append("LIMIT(%d)" % args.count)
    write = "TO_FILE(MFF_PCAP, %s)" % quote(args.write) if args.write else None
    if not flows:
        return [" ".join(steps + ["PKT_COUNTER", "BYTE_COUNTER"] + ([write] if write else []))]
    prefix = [s for s in steps if s.startswith("STARTSTOP")]
    specs = [" ".join(prefix + [f]) if prefix else f for f in flows]
    if write:
        specs.append(" ".join(steps + [write]))
    return specs


def sources(args):
    if args.interfaces and args.read:
        raise SpecError(None, None, "-r and -i cannot be mixed: read files or capture live")
    if not args.interfaces and not args.read:
        raise SpecError(None, None, "give a trace file (-r FILE, - for stdin) or a device "
                        "(-i DEVICE, see mapi devices)")
    if args.interfaces:
        return [Source(device=d, backend=args.backend) for d in args.interfaces]
    return [Source(paths=args.read, fmt=args.format, backend=args.backend, merge=args.merge)]


def handle(args):
    for name in ("interval", "duration"):
        value = getattr(args, name)
        if value is not None:
            setattr(args, name, parse_duration("--" + name, value))
    if args.count is not None and args.count < 1:
        raise SpecError(None, None, "-c COUNT must be 1 or more, got %d" % args.count)
    specs = flow_specs(args)
    from ..scope_run import is_scope, run_scope
    if is_scope(args.interfaces):                  # a distributed flow over remote sensors
        return run_scope(args, specs)
    jobs = [Job(src, specs, limit=args.count) for src in sources(args)]
    make_view, sinks = None, []
    stream_json = args.json and args.interval is not None
    if args.interval is not None:
        from ..views import JsonLinesView, TableView
        if args.json:
            make_view = lambda series: JsonLinesView(sys.stdout)      # noqa: E731
        else:
            make_view = lambda series: TableView(sys.stdout, series)  # noqa: E731
    plot = metrics = None
    if args.plot:
        if args.interval is None:
            raise SpecError(None, None, "--plot needs --interval (the width of its steps)")
        from ..plot import PlotSink
        plot = PlotSink(args.plot)
        sinks.append(plot)
    session = Session(jobs, args.interval, make_view, sinks, count=args.count,
                      duration_ns=args.duration, progress=args.progress)
    if args.metrics:
        from ..metrics import MetricsServer
        metrics = MetricsServer(args.metrics, session)

    def report(session):
        if plot is not None:
            plot.draw(args.interval, labels={i + 1: spec for i, spec in enumerate(specs)})
            sys.stderr.write("mapi: %d intervals plotted into %s\n" % (len(plot.rows), args.plot))
        results = [job.results() for job in session.jobs]
        if stream_json:
            for r in results:
                session.view.final(r)
        elif args.json:
            write_json(results[0] if len(results) == 1 else results)
        else:
            for r in results:
                print_table(r, sys.stdout)
    try:
        if metrics is not None:
            metrics.start()
        return session.run(report)
    finally:
        if metrics is not None:
            metrics.stop()


def add_run_arguments(p, default_interval=None):
    """The options of mapi run (mapi plot takes them too)."""
    add_source_arguments(p, "print the results as JSON (with --interval: one JSON object per "
                         "line and interval, then the final results)")
    p.add_argument("-c", "--count", type=int, metavar="COUNT",
                   help="stop after COUNT packets (after the filter words, as tcpdump -c)")
    p.add_argument("--duration", metavar="TIME",
                   help="stop after TIME (e.g. 30s, 5m): wall clock live, packet time on files")
    p.add_argument("--interval", metavar="TIME",
                   help="print each function's value per interval (e.g. 1s, 100ms): wall clock "
                   "live, packet time on files (the rows of tshark -z io,stat)%s"
                   % ("; default %s" % default_interval if default_interval else ""))
    p.add_argument("-w", "--write", metavar="FILE",
                   help="write the packets (that pass the filter words) to a pcap file")
    p.add_argument("--metrics", metavar="HOST:PORT", help="serve every function's result, "
                   "drops and device counters to Prometheus while the run lasts")


def add_parser(sub, name, help):
    p = sub.add_parser(name, help=help,
                       description="Run one or more MAPI flows over trace files or live devices "
                       "and print every function's result; with --interval, also per interval "
                       "while the run lasts.", epilog=RUN_EPILOG + FLOW_SYNTAX,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(p)
    p.add_argument("--plot", metavar="PNG", help="draw the interval values into a PNG "
                   "(needs --interval and matplotlib: pip install 'scampi[plot]')")
    p.set_defaults(handler=handle)
