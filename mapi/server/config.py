"""mapid's configuration: an optional TOML file, then the command line.

    socket = "/run/scampi/mapid.sock"     # where clients connect (MAPI_SERVER=unix:PATH)
    socket_mode = "0666"                  # who may connect; what they may do is per uid/flow
    metrics = "127.0.0.1:9464"            # Prometheus endpoint ("" = none)
    workers = 4                           # threads running clients' calls
    log_level = "info"
    listen = "0.0.0.0:7000"               # remote clients: gRPC with mutual TLS ("" = none)
    tls_cert = "/etc/scampi/s1.pem"       # this server's certificate and key (mapi-admin certs)
    tls_key = "/etc/scampi/s1.key"
    tls_client_ca = "/etc/scampi/ca.pem"  # clients must present a certificate of this CA
    remote_traces = ""                    # a directory remote clients may replay traces from
    remote_output = ""                    # a directory remote clients' TO_FILE may write into

    [limits]
    flows_per_client = 256
    buffer_bytes_per_client = 1073741824  # TO_BUFFER rings of one client, in all
    message_bytes = 16777216              # largest frame accepted
    backlog_bytes = 67108864              # pushes queued for a client that does not read

    [live]                                # create_flow options per live backend
    ring = { block_size = 1048576, block_count = 64 }

    [jobcontrol]                          # credentials, quotas, capacity: mapi/jobcontrol/config.py
    root_public_key = "..."

    [devices.replay]                      # a device the server offers to every client
    file = "/srv/traces/day.pcap"
    format = "pcap"                       # optional; detected otherwise
    backend = ""                          # optional
    options = {}
"""
import os
import tomllib

DEFAULT_SOCKET = "/run/scampi/mapid.sock"
DEFAULTS = dict(socket=DEFAULT_SOCKET, socket_mode="0666", metrics="", workers=4, log_level="info",
                listen="", tls_cert="", tls_key="", tls_client_ca="", remote_traces="",
                remote_output="")
DEFAULT_LIMITS = dict(flows_per_client=256, buffer_bytes_per_client=1 << 30,
                      message_bytes=16 << 20, backlog_bytes=64 << 20)
KEYS = set(DEFAULTS) | {"limits", "live", "devices", "jobcontrol"}


class ConfigError(Exception):
    pass


def load(path=None, overrides=None):
    """The configuration as a dict: defaults, the file's values, then `overrides` (not None)."""
    data = {}
    if path:
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except OSError as exc:
            raise ConfigError("cannot read %s: %s" % (path, exc.strerror)) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("%s: %s" % (path, exc)) from None
    unknown = sorted(set(data) - KEYS)
    if unknown:
        raise ConfigError("%s: unknown setting(s) %s (known: %s)"
                          % (path, ", ".join(unknown), ", ".join(sorted(KEYS))))
    cfg = dict(DEFAULTS)
    cfg.update({k: v for k, v in data.items() if k in DEFAULTS})
    cfg.update({k: v for k, v in (overrides or {}).items() if v is not None})
    limits = dict(DEFAULT_LIMITS)
    bad = sorted(set(data.get("limits", {})) - set(DEFAULT_LIMITS))
    if bad:
        raise ConfigError("%s: unknown limit(s) %s (known: %s)"
                          % (path, ", ".join(bad), ", ".join(sorted(DEFAULT_LIMITS))))
    limits.update(data.get("limits", {}))
    for k, v in limits.items():
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ConfigError("%s: limits.%s must be a whole number >= 0, not %r" % (path, k, v))
    cfg["limits"] = limits
    cfg["live"] = dict(data.get("live", {}))
    cfg["devices"] = {}
    for name, spec in data.get("devices", {}).items():
        if not isinstance(spec, dict) or not spec.get("file"):
            raise ConfigError("%s: devices.%s needs a file" % (path, name))
        if ":" in name or name.startswith("offline"):
            raise ConfigError("%s: devices.%s: a device name may not contain ':' or start with "
                              "'offline'" % (path, name))
        extra = sorted(set(spec) - {"file", "format", "backend", "options"})
        if extra:
            raise ConfigError("%s: devices.%s: unknown key(s) %s" % (path, name, ", ".join(extra)))
        spec = dict(spec)
        spec["file"] = os.path.abspath(os.path.expanduser(spec["file"]))
        cfg["devices"][name] = spec
    from mapi.jobcontrol.config import JobConfigError, load as load_jobcontrol
    try:
        cfg["jobcontrol"] = load_jobcontrol(data.get("jobcontrol"), path)
    except JobConfigError as exc:
        raise ConfigError(str(exc)) from None
    try:
        cfg["socket_mode"] = int(str(cfg["socket_mode"]), 8)
    except ValueError:
        raise ConfigError("socket_mode must be octal like \"0660\", not %r" % cfg["socket_mode"]) from None
    if cfg["metrics"]:
        host, _, port = str(cfg["metrics"]).rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError("metrics must be HOST:PORT, not %r" % cfg["metrics"])
    return cfg

