"""MAPI, the SCAMPI monitoring API.

    dev = mapi.create_offline_device("trace.pcap")
    fd = mapi.create_flow(dev)
    fid = mapi.apply_function(fd, "BPF_FILTER", "tcp port 80")
    cnt = mapi.apply_function(fd, "PKT_COUNTER")
    mapi.connect(fd)
    mapi.start_offline_device(dev); mapi.wait_offline_device(dev)
    print(mapi.read_results(fd, cnt).value)

Importing the package loads only the constants and the errors; each call's module (and the C
engine, the plugins) loads when first used, so a command pays only for what it runs.
"""
import logging

from .errors import *  # noqa: F401,F403  MapiError, read_error_text and the error codes
from .errors import __all__ as _error_names
from .constants import *  # noqa: F401,F403
from .constants import __all__ as _constant_names

# A library does not print: without a handler of the application's, records under "mapi"
# would reach logging's last-resort handler (stderr).  The application decides.
logging.getLogger("mapi").addHandler(logging.NullHandler())

# name -> module that defines it (loaded on first access)
_LAZY = {
    "hookimpl": "hookspecs",
    "explain": "explain", "explain_data": "explain",
    "OfflineDevice": "flow", "Flow": "flow", "Function": "flow",
    "Event": "events", "set_event_callback": "events", "get_next_event": "events",
}
_API = ("Result", "Packet", "create_offline_device", "start_offline_device",
        "wait_offline_device", "stop_device", "delete_offline_device", "get_device_info", "stats", "devices",
        "create_flow", "apply_function", "connect", "read_results", "get_next_pkt", "loop",
        "close_flow", "get_flow_info", "get_function_info", "open_live_device")
_LAZY.update((name, "api") for name in _API)


def __getattr__(name):
    import importlib
    module = _LAZY.get(name)
    if module is None:
        try:                      # a submodule: mapi.api, mapi.events (callable), ...
            return importlib.import_module("." + name, __name__)
        except ModuleNotFoundError as exc:
            if exc.name != __name__ + "." + name:
                raise
            raise AttributeError("module 'mapi' has no attribute %r" % name) from None
    value = getattr(importlib.import_module("." + module, __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY) | {"events"})


def use_server(url=None, **tls):
    """Send every MAPI call of this process to the MAPI server (mapid) at `url`, e.g.
    "unix:/run/scampi/mapid.sock" or "grpcs://s1.example:7000" (with ca=, cert=, key= or
    MAPI_TLS_CA/CERT/KEY); None: back to the in-process engine.  The environment variable
    MAPI_SERVER does the same for a whole program."""
    from .client import use_server as _use
    return _use(url, **tls)


def clients():
    """Who is connected to the MAPI server, with their flows, packets and drops."""
    raise MapiError(ENOTSUP, "mapi.clients() needs a MAPI server: set MAPI_SERVER or call "
                    "mapi.use_server()")


def get_include():
    """Directory of the engine's C headers (engine.h: the batch and kernel ABI, mapi_plugin.h:
    the engine API table), for plugins that build their own C (see mapi.cbuild)."""
    from .cbuild import get_include as _get_include
    return _get_include()


__all__ = (["explain", "explain_data", "get_include", "OfflineDevice", "Flow", "Function",
            "hookimpl", "events", "Event", "set_event_callback", "get_next_event",
            "use_server", "clients"]
           + list(_API) + list(_error_names) + list(_constant_names))

import os as _os
if _os.environ.get("MAPI_SERVER"):
    from .client import use_server as _use_server
    _use_server(_os.environ["MAPI_SERVER"], connect=False)
