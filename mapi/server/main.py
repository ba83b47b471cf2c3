"""mapid's command line: configuration, logging, signals, and the loop.

    mapid [--config FILE] [--socket PATH] [--metrics HOST:PORT] [--log-level LEVEL]

Foreground, logs to stderr.  SIGTERM/SIGINT: stop cleanly (every client's flows closed, files
flushed, the socket removed).  SIGHUP: reload the config file (limits, offered devices, log
level; the socket and the metrics address need a restart)."""
import argparse
import logging
import os
import signal
import sys

log = logging.getLogger("mapid")


class Directory:
    """Every connected client, for the clients call, explain's owner labels and metrics."""

    def __init__(self, engine):
        self.engine = engine
        self.server = None

    def sessions(self):
        return [c.session for c in list(self.server.connections.values())]

    def summaries(self):
        return [s.summary() for s in self.sessions()]

    def label_of(self, session):
        return session.label() if session is not None else "(closed)"


def parse_args(argv):
    p = argparse.ArgumentParser(prog="mapid", description="The SCAMPI server: one set of "
                                "devices and one global graph per device for every MAPI client.")
    p.add_argument("--config", help="TOML configuration file")
    p.add_argument("--socket", help="Unix socket to listen on (default /run/scampi/mapid.sock)")
    p.add_argument("--metrics", help="serve Prometheus metrics on HOST:PORT")
    p.add_argument("--log-level", help="debug, info, warning, error")
    p.add_argument("--workers", type=int, help="threads running clients' calls")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from . import config as config_mod
    overrides = dict(socket=args.socket, metrics=args.metrics, log_level=args.log_level,
                     workers=args.workers)
    try:
        cfg = config_mod.load(args.config, overrides)
    except config_mod.ConfigError as exc:
        print("mapid: %s" % exc, file=sys.stderr)
        return 2
    logging.basicConfig(stream=sys.stderr, level=cfg["log_level"].upper(),
                        format="mapid[%(process)d] %(levelname)s %(name)s: %(message)s")
    os.environ.pop("MAPI_SERVER", None)
    # the engine's threads hold the GIL for their per-batch Python; a control call waiting for
    # it should not wait a whole default switch interval (5 ms)
    sys.setswitchinterval(0.0005)
    import mapi
    mapi.use_server(None)                 # the server runs the engine itself
    from .engine import Engine
    from .loop import Server
    from .session import Session
    from mapi.errors import MapiError

    limits = cfg["limits"]
    engine = Engine(limits, cfg["live"])
    try:
        engine.configure_devices(cfg["devices"])
    except MapiError as exc:
        log.error("%s", exc)
        return 2
    directory = Directory(engine)
    server = None

    def make_session(conn, pid, uid, gid):
        return Session(conn, engine, server, pid, uid, gid, directory)
    server = Server(cfg["socket"], make_session, workers=cfg["workers"],
                    max_message=limits["message_bytes"], max_backlog=limits["backlog_bytes"],
                    socket_mode=cfg["socket_mode"])
    directory.server = server
    if cfg["metrics"]:
        from .metrics import serve
        serve(cfg["metrics"], directory)

    def reload():
        try:
            new = config_mod.load(args.config, overrides)
            engine.limits.update(new["limits"])
            engine.live_defaults = dict(new["live"])
            engine.configure_devices(new["devices"])
            server.max_backlog = new["limits"]["backlog_bytes"]
            logging.getLogger().setLevel(new["log_level"].upper())
            for key in ("socket", "metrics"):
                if new[key] != cfg[key]:
                    log.warning("config reload: %s changed to %s; it takes effect at the next "
                                "start", key, new[key])
            log.info("configuration reloaded from %s", args.config or "(defaults)")
        except (config_mod.ConfigError, MapiError) as exc:
            log.error("config reload failed, keeping the running configuration: %s", exc)

    signal.signal(signal.SIGTERM, lambda *a: server.stop())
    signal.signal(signal.SIGINT, lambda *a: server.stop())
    signal.signal(signal.SIGHUP, lambda *a: server.post(reload))
    # a signal taken by another thread must still wake the loop's select() (the Python handler
    # runs in the main thread only once it wakes)
    signal.set_wakeup_fd(server.wake_w, warn_on_full_buffer=False)
    log.info("listening on %s%s", cfg["socket"],
             (", metrics on http://%s/metrics" % cfg["metrics"]) if cfg["metrics"] else "")
    try:
        server.run()
    finally:
        log.info("stopping: closing %d clients' flows", len(server.connections))
        server.shutdown()
        engine.shutdown()
        log.info("stopped")
    return 0
