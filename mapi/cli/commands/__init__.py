"""The subcommands of `mapi`, one module each.

A command module has `add_parser(sub, name, help)`, which adds its argparse sub-parser and sets
`handler` (a function of the parsed args returning the exit code).  `mapi NAME` imports only
module NAME, so a command's imports cost nothing to the others; a new command is one module and
one line in COMMANDS.
"""
import importlib

from mapi.constants import MFF_DAG_ERF, MFF_PCAP, MFF_PCAPNG

# name -> the line `mapi --help` shows for it, in that order
COMMANDS = {
    "run": "run flows over trace files or live devices and print their results",
    "plot": "draw packets, bytes and rates per interval of flows into a PNG",
    "collect": "a NetFlow/IPFIX collector storing records in rotating files (as nfcapd)",
    "records": "list, filter and summarise stored flow records (as nfdump)",
    "explain": "show the global graph the organizer and mapper built",
    "info": "format, link type, packet and byte counts, time span of a file",
    "devices": "installed backends and the devices they offer",
    "demo": "several flows at once over a generated trace, with a report",
    "functions": "installed MAPI functions: signatures and flags",
    "clients": "clients of the MAPI server (mapid): flows, packets, drops",
}

FILE_FORMATS = (MFF_PCAP, MFF_PCAPNG, MFF_DAG_ERF)
PROGRESS_MODES = ("auto", "always", "never")


def load(name):
    """The module of command `name`."""
    return importlib.import_module("%s.%s" % (__name__, name))


def add_trace_arguments(p, json_help, required=True):
    """-r FILE... FLOW... --format --json --progress --backend: what a command running flows
    over trace files takes (explain)."""
    _read_arguments(p, required=required)
    p.add_argument("flows", nargs="*", metavar="FLOW", help="one flow per argument (syntax below)")
    _common_arguments(p, json_help)


def add_source_arguments(p, json_help):
    """-r FILE... | -i DEVICE... FLOW... and the options of add_trace_arguments (run, plot)."""
    _read_arguments(p, required=False)
    p.add_argument("-i", "--interface", dest="interfaces", action="append", metavar="DEVICE",
                   help="capture live on DEVICE (eth0, ring:eth0, nic:eth0, combo6:eth0, "
                   "netflow:udp:0.0.0.0:2055...; see mapi devices); repeat for several devices, "
                   "each runs every flow")
    p.add_argument("flows", nargs="*", metavar="FLOW",
                   help="one flow per argument (syntax below), or a tcpdump filter as words")
    _common_arguments(p, json_help)


def _read_arguments(p, required):
    p.add_argument("-r", "--read", action="append", required=required, metavar="FILE",
                   help="trace file: pcap, pcapng or ERF, optionally gzip/xz/bzip2-compressed; "
                   "- reads standard input; repeat to read several files in turn")
    p.add_argument("--merge", action="store_true",
                   help="with several -r: merge the files by packet time (as mergecap)")


def _common_arguments(p, json_help):
    p.add_argument("--format", choices=FILE_FORMATS, help="file format (default: detected)")
    add_json_argument(p, json_help)
    add_progress_argument(p)
    p.add_argument("--backend", metavar="NAME",
                   help="replay through this backend, e.g. combo6 or dag (emulated cards); "
                   "default: detected from the file")


def add_progress_argument(p):
    p.add_argument("--progress", choices=PROGRESS_MODES, default="auto",
                   help="progress bar on stderr: auto = on a terminal, for runs longer than "
                   "half a second (default)")


def add_json_argument(p, what="print JSON"):
    p.add_argument("--json", action="store_true", help=what)
