"""mapid's command line: configuration, logging, signals, and the loop.

    mapid [--config FILE] [--socket PATH] [--metrics HOST:PORT] [--log-level LEVEL]
          [--listen HOST:PORT --tls-cert PEM --tls-key PEM --tls-client-ca PEM]

Foreground, logs to stderr.  SIGTERM/SIGINT: stop cleanly (every client's flows closed, files
flushed, the socket removed).  SIGHUP: reload the config file (limits, offered devices, log
level; the socket and the metrics address need a restart)."""
import argparse
import gc
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
        self.remote = None                # the remote listener's sessions (mapi.server.remote)

    def sessions(self):
        local = [c.session for c in list(self.server.connections.values())]
        return local + (self.remote.sessions() if self.remote is not None else [])

    def summaries(self):
        counts = {}                      # device -> per-flow counts, walked once per listing
        return [s.summary(counts) for s in self.sessions()]

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
    p.add_argument("--listen", help="also serve remote clients (gRPC, mutual TLS) on HOST:PORT")
    p.add_argument("--tls-cert", help="this server's certificate (PEM), for --listen")
    p.add_argument("--tls-key", help="its private key (PEM)")
    p.add_argument("--tls-client-ca", help="the CA whose certificates clients must present")
    p.add_argument("--remote-traces", help="a directory whose traces remote clients may replay")
    p.add_argument("--remote-output", help="a directory remote clients' TO_FILE may write into")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from . import config as config_mod
    overrides = dict(socket=args.socket, metrics=args.metrics, log_level=args.log_level,
                     workers=args.workers, listen=args.listen, tls_cert=args.tls_cert,
                     tls_key=args.tls_key, tls_client_ca=args.tls_client_ca,
                     remote_traces=args.remote_traces, remote_output=args.remote_output)
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

    if cfg["metrics"]:
        from mapi import organizer
        organizer.COUNT_BYTES = True      # per-flow wire bytes; without metrics nobody reads them
    limits = cfg["limits"]
    engine = Engine(limits, cfg["live"])
    try:
        engine.configure_devices(cfg["devices"])
    except MapiError as exc:
        log.error("%s", exc)
        return 2
    from mapi.jobcontrol.control import JobControl
    try:
        jobs = JobControl(cfg["jobcontrol"], engine)
    except MapiError as exc:
        log.error("%s", exc)
        return 2
    directory = Directory(engine)
    server = None

    def make_session(conn, pid, uid, gid):
        session = Session(conn, engine, server, pid, uid, gid, directory)
        session.jobs = jobs
        return session
    def remote_session(conn, uid):
        session = make_session(conn, 0, uid, uid)
        session.remote = True
        return session
    server = Server(cfg["socket"], make_session, workers=cfg["workers"],
                    max_message=limits["message_bytes"], max_backlog=limits["backlog_bytes"],
                    socket_mode=cfg["socket_mode"])
    directory.server = server
    if cfg["listen"]:
        from . import remote
        try:
            directory.remote = remote.listen(
                cfg["listen"], cfg["tls_cert"], cfg["tls_key"], cfg["tls_client_ca"],
                lambda conn: remote_session(conn, remote.sessions.REMOTE_UID),
                server._ids, limits, traces=cfg["remote_traces"], output=cfg["remote_output"])
        except (OSError, remote.tls.TLSError) as exc:
            log.error("%s", exc)
            server.shutdown()
            return 2
        log.info("serving remote clients on %s (port %d, mutual TLS)", cfg["listen"],
                 directory.remote.port)
    if cfg["metrics"]:
        from .metrics import serve
        serve(cfg["metrics"], directory)

    def reload():
        try:
            new = config_mod.load(args.config, overrides)
            engine.limits.update(new["limits"])
            engine.live_defaults = dict(new["live"])
            engine.configure_devices(new["devices"])
            jobs.configure(new["jobcontrol"])
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
    # what start-up made (modules, the registry, the configuration) lives as long as mapid: out
    # of the collector's sight, a full collection (which holds the interpreter, every control
    # call waiting) walks only what came since, not every object of every imported module
    gc.collect()
    gc.freeze()
    log.info("listening on %s%s", cfg["socket"],
             (", metrics on http://%s/metrics" % cfg["metrics"]) if cfg["metrics"] else "")
    try:
        server.run()
    finally:
        log.info("stopping: closing %d clients' flows", len(server.connections))
        if directory.remote is not None:
            directory.remote.stop()
        server.shutdown()
        engine.shutdown()
        jobs.close()
        log.info("stopped")
    return 0
