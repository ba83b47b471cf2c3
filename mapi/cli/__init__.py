"""The ``mapi`` command: MAPI flows over trace files and live devices, from the shell.

    mapi run -r FILE 'BPF_FILTER("tcp port 80") PKT_COUNTER BYTE_COUNTER' [FLOW ...]
    mapi run -i eth0 --interval 1s [--json] [--metrics HOST:PORT] [FLOW ... | FILTER WORDS]
    mapi plot -o out.png -r FILE FLOW...
    mapi explain -r FILE FLOW...
    mapi info FILE
    mapi devices
    mapi functions [NAME]

The rooms of this package:
  flowspec.py   the flow language: parse_flow(text) -> [Step], SpecError with flow and column
  job.py        Source (files, stdin, several files, a live device) and Job (specs -> MAPI
                flows on one device, run, results); run_job, a command's open/run/report/close
  session.py    one mapi run: its jobs, its ends (streams, -c, --duration, Ctrl-C), interval rows
  clock.py      CLI_CLOCK, the node that snapshots every function at each interval end
  series.py     snapshots -> interval rows;  views.py: the interval table and JSON lines
  plot.py       the PNG (matplotlib);  metrics.py: the Prometheus endpoint (prometheus-client)
  multifile.py  several trace files as one device, in turn or merged by time
  output.py     exit codes, the one-line error, JSON values, the results table
  commands/     one module per subcommand; `mapi NAME` imports only module NAME
  entry.py      the argument parser and main(), the console script's entry point

Exit codes: 0 success; 1 the replay met an error after results were collected (a truncated or
corrupt file: the results are printed first); 2 bad usage, bad flow spec or a MapiError before
the replay (missing file, invalid filter, unknown function); 130 interrupted twice (one
Ctrl-C ends a run and prints its results, exit 0).
"""
from .flowspec import FLOW_SYNTAX, Ref, SpecError, Step, parse_flow
from .entry import build_parser, main

__all__ = ["FLOW_SYNTAX", "Ref", "SpecError", "Step", "build_parser", "main", "parse_flow"]
