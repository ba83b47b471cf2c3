"""`mapi COMMAND ...`: the argument parser and the exit codes; the commands live in commands/."""
import argparse
import os
import sys

from mapi import lazylog
from mapi.errors import MapiError

from .commands import COMMANDS, load
from .flowspec import SpecError
from .output import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, report_error


def build_parser(full=None):
    """The parser of `mapi`.  Commands named in `full` (default: all) get their whole
    sub-parser; the others only their name and help line, which is all `mapi --help` shows and
    spares importing their modules."""
    p = argparse.ArgumentParser(prog="mapi", description="SCAMPI's MAPI from the command line.")
    p.add_argument("--version", action=_Version, nargs=0,
                   help="print the versions of scampi, Python and libpcap, and exit")
    p.add_argument("--server", metavar="URL",
                   help="send every MAPI call to a MAPI server: unix:PATH (mapid), or "
                   "grpcs://HOST:PORT (TLS from MAPI_TLS_CA/CERT/KEY); default: $MAPI_SERVER, "
                   "else the in-process engine")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, help_line in COMMANDS.items():
        if full is None or name in full:
            load(name).add_parser(sub, name, help_line)
        else:
            sub.add_parser(name, help=help_line)
    return p


def version_text():
    """`mapi --version`: scampi's version, then Python's and the system libpcap's (whose
    compiler BPF_FILTER uses), as tcpdump --version lists its libraries."""
    import platform
    try:
        from importlib.metadata import version
        mine = version("scampi")
    except Exception:
        mine = "unknown (not installed)"
    lines = ["mapi (scampi) %s" % mine, "Python %s" % platform.python_version()]
    try:
        import ctypes
        import ctypes.util
        name = ctypes.util.find_library("pcap")
        if name:
            lib = ctypes.CDLL(name)
            lib.pcap_lib_version.restype = ctypes.c_char_p
            lines.append(lib.pcap_lib_version().decode())
    except (OSError, AttributeError):
        pass
    return "\n".join(lines)


class _Version(argparse.Action):
    """--version, its text made only when asked for (it loads libpcap)."""

    def __call__(self, parser, namespace, values, option_string=None):
        sys.stdout.write(version_text() + "\n")
        parser.exit()


def _configure_logging(logging):
    logging.basicConfig(level=logging.WARNING, format="mapi: warning: %(message)s")
    # replay errors are reported once, by the command itself
    logging.getLogger("mapi.device").setLevel(logging.ERROR)


def _command_of(argv):
    """The subcommand's name: the first word that is neither an option nor the value of
    `mapi`'s own --server."""
    value = False
    for word in argv:
        if value:
            value = False
        elif word == "--server":
            value = True
        elif not word.startswith("-"):
            return word
    return None


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    # our prefix, given to logging when something loads it (most runs log nothing)
    lazylog.when_loaded(_configure_logging)
    command = _command_of(argv)
    args = build_parser([command] if command in COMMANDS else ()).parse_args(argv)
    try:
        if args.server:
            import mapi
            mapi.use_server(args.server)
        return args.handler(args)
    except (SpecError, MapiError) as exc:
        report_error(exc)
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
