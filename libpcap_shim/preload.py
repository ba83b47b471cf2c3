"""mapi-preload: run an unchanged libpcap application with every pcap handle on a MAPI flow.

    mapi-preload tcpdump -nr trace.pcap 'tcp port 80'
    mapi-preload --report stderr tcpdump -nr trace.pcap     # MAPI flow/function counters at close
    mapi-preload --server unix:/run/scampi/mapid.sock tcpdump -i eth0   # through mapid
    mapi-preload --print-path                                # the library to put in LD_PRELOAD
    mapi-preload --rebuild ...                               # rebuild it first if a source changed

The library (libpcap_shim/lib/libpcap.so.0.8) is built on first use.  It embeds this project's
virtualenv interpreter, whose location is fixed when the library is built, so the application's
own environment (PYTHONPATH, PYTHONHOME, ...) does not matter.  With a server (--server URL, or
MAPI_SERVER already in the environment) that interpreter never starts: the library speaks
mapid's protocol in C and every pcap handle is a flow on mapid (docs/protocol.md).
"""
import os
import sys

USAGE = """usage: mapi-preload [--rebuild] [--report FILE|stderr] [--server unix:PATH] COMMAND [ARG...]
       mapi-preload --print-path"""


def preload_env(lib, base=None):
    """Environment entries that make a command use the shim (kept LD_PRELOAD entries after it)."""
    base = os.environ if base is None else base
    others = [p for p in base.get("LD_PRELOAD", "").replace(":", " ").split()
              if p and os.path.basename(p) != "libpcap.so.0.8"]
    # a sanitizer runtime must stay first (make test-asan preloads one)
    first = [p for p in others if "libclang_rt.asan" in p or "libasan" in p]
    return {"LD_PRELOAD": " ".join(first + [lib] + [p for p in others if p not in first]),
            "MAPI_PCAP_PYTHON": os.path.abspath(sys.executable)}     # this installation's interpreter


LIBRARY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib", "libpcap.so.0.8")


def library_path(rebuild=False):
    """The library, built first if it is missing (or stale, with rebuild=True); the quick path
    imports nothing, since the wrapper's own start-up adds to every command it runs."""
    if rebuild or not os.path.exists(LIBRARY):
        from scampi.libpcap_shim import build
        if rebuild or not build.up_to_date():
            build.build()
    return LIBRARY


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    report = server = None
    while argv and argv[0].startswith("--"):
        opt = argv.pop(0)
        if opt == "--print-path":
            print(library_path())
            return 0
        if opt == "--rebuild":
            library_path(rebuild=True)
            continue
        if opt == "--report" and argv:
            report = argv.pop(0)
        elif opt == "--server" and argv:
            server = argv.pop(0)
        elif opt in ("-h", "--help"):
            print(USAGE)
            return 0
        elif opt == "--":
            break
        else:
            print("mapi-preload: unknown option %s\n%s" % (opt, USAGE), file=sys.stderr)
            return 2
    if not argv:
        print(USAGE, file=sys.stderr)
        return 2
    env = dict(os.environ)
    env.update(preload_env(library_path(), env))
    if report:
        env["MAPI_PCAP_REPORT"] = report
    if server:
        env["MAPI_SERVER"] = server
    try:
        os.execvpe(argv[0], argv, env)
    except OSError as exc:
        print("mapi-preload: cannot run %s: %s" % (argv[0], exc.strerror), file=sys.stderr)
        return 127


if __name__ == "__main__":
    sys.exit(main())
