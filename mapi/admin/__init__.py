"""mapi-admin: the operator's commands that are not MAPI calls (certificates for the remote
transport, ...).  Each subcommand is a module of this package with main(argv) and a one-line
HELP; COMMANDS maps its name to the module."""
import importlib
import sys

COMMANDS = {
    "certs": "mapi.admin.certs",
}


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        out = sys.stdout if argv[:1] in ([], ["-h"], ["--help"]) else sys.stderr
        if argv and argv[0] not in ("-h", "--help"):
            print("mapi-admin: unknown command %r" % argv[0], file=out)
        print("usage: mapi-admin COMMAND [ARGS]   (mapi-admin COMMAND --help)\n", file=out)
        for name, module in sorted(COMMANDS.items()):
            print("  %-8s %s" % (name, importlib.import_module(module).HELP), file=out)
        return 0 if out is sys.stdout else 2
    return importlib.import_module(COMMANDS[argv[0]]).main(argv[1:])
