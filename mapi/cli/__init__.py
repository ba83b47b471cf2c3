"""The ``mapi`` command: MAPI flows over a trace file, from the shell.

    mapi run -r FILE 'BPF_FILTER("tcp port 80") PKT_COUNTER BYTE_COUNTER' [FLOW ...]
    mapi explain -r FILE FLOW...
    mapi info FILE
    mapi devices
    mapi functions [NAME]

The rooms of this package:
  flowspec.py   the flow language: parse_flow(text) -> [Step], SpecError with flow and column
  job.py        the job runner: Job (specs -> MAPI flows on one device, replay, results) and
                run_job, the open/run/report/close sequence of a command
  output.py     exit codes, the one-line error, JSON values, the results table
  commands/     one module per subcommand; `mapi NAME` imports only module NAME
  entry.py      the argument parser and main(), the console script's entry point

Exit codes: 0 success; 1 the replay met an error after results were collected (a truncated or
corrupt file: the results are printed first); 2 bad usage, bad flow spec or a MapiError before
the replay (missing file, invalid filter, unknown function); 130 interrupted.
"""
from .flowspec import FLOW_SYNTAX, Ref, SpecError, Step, parse_flow
from .entry import build_parser, main

__all__ = ["FLOW_SYNTAX", "Ref", "SpecError", "Step", "build_parser", "main", "parse_flow"]
