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
import sys as _sys

from .errors import *  # noqa: F401,F403  MapiError, read_error_text and the error codes
from .errors import __all__ as _error_names
from .constants import *  # noqa: F401,F403
from .constants import __all__ as _constant_names

# name -> module that defines it (loaded on first access)
_LAZY = {
    "hookimpl": "hookspecs",
    "explain": "explain", "explain_data": "explain",
    "OfflineDevice": "flow", "Flow": "flow", "Function": "flow",
    "Event": "events", "set_event_callback": "events", "get_next_event": "events",
    "authenticate": "jobcontrol", "load_library": "jobcontrol",
}
_API = ("Result", "Packet", "create_offline_device", "start_offline_device",
        "wait_offline_device", "stop_device", "delete_offline_device", "get_device_info", "stats", "devices",
        "create_flow", "apply_function", "connect", "read_results", "get_next_pkt", "loop",
        "close_flow", "get_flow_info", "get_function_info", "open_live_device")
_LAZY.update((name, "api") for name in _API)


def _submodule(name):
    # __import__, not importlib.import_module: no importlib to import, and -X importtime sees it
    __import__(__name__ + "." + name)
    return _sys.modules[__name__ + "." + name]


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        try:                      # a submodule: mapi.api, mapi.events (callable), ...
            return _submodule(name)
        except ModuleNotFoundError as exc:
            if exc.name != __name__ + "." + name:
                raise
            raise AttributeError("module 'mapi' has no attribute %r" % name) from None
    value = getattr(_submodule(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY) | {"events"})


# A distributed flow (a DiMAPI scope: "grpcs://s1:7000/eth0, grpcs://s2:7000/eth1") is served
# by mapi.client.distributed; its descriptors start at SCOPE_FD_BASE, so the calls below go
# there or to the engine (in-process, or the server in use) by the descriptor alone.
SCOPE_FD_BASE = 1 << 30
_ROUTED = {"apply_function": "api", "connect": "api", "read_results": "api",
           "get_next_pkt": "api", "loop": "api", "close_flow": "api", "get_flow_info": "api",
           "get_function_info": "api", "set_event_callback": "events",
           "get_next_event": "events"}


def _routed(name, module):
    import importlib
    import sys
    full = "mapi." + module
    loaded = sys.modules

    def call(fd, *args, **kwargs):
        if type(fd) is int and fd >= SCOPE_FD_BASE:
            target = importlib.import_module("mapi.client.distributed").FLOWS
        else:
            # a dict lookup once the module is loaded (import_module takes the import lock:
            # a microsecond and more on every get_next_pkt)
            target = loaded.get(full) or importlib.import_module(full)
        return getattr(target, name)(fd, *args, **kwargs)
    call.__name__ = call.__qualname__ = name
    call.__doc__ = "mapi.%s.%s, or the distributed flow's when fd is one" % (module, name)
    return call


globals().update((_name, _routed(_name, _module)) for _name, _module in _ROUTED.items())


def create_flow(dev, **options):
    """A new flow on `dev`: an offline device's name, a live device ("eth0", "ring:eth0"), or
    a scope of remote sensors ("grpcs://s1:7000/eth0, grpcs://s2:7000/eth1": a distributed
    flow, mapi.client.distributed)."""
    import importlib
    if isinstance(dev, str) and "grpcs://" in dev:
        return importlib.import_module("mapi.client.distributed").FLOWS.create_flow(dev, **options)
    return importlib.import_module("mapi.api").create_flow(dev, **options)


def create_flow_with(dev, functions=(), connect=True, **options):
    """create_flow, an apply_function per item of `functions` and connect as one call (one
    request to a MAPI server): returns (fd, [fid, ...]).  Items: "NAME", ("NAME", *args) or
    {"name": ..., "args": [...], "kwargs": {...}}; connect=False leaves the flow open.  A step
    that fails closes the flow and raises its error naming the step (mapi.flow_with)."""
    import importlib
    if isinstance(dev, str) and "grpcs://" in dev:
        return importlib.import_module("mapi.client.distributed").FLOWS.create_flow_with(
            dev, functions, connect, **options)
    return importlib.import_module("mapi.api").create_flow_with(dev, functions, connect,
                                                                 **options)


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


__all__ = (["create_flow_with", "explain", "explain_data", "get_include", "OfflineDevice", "Flow", "Function",
            "hookimpl", "events", "Event", "set_event_callback", "get_next_event",
            "use_server", "clients", "authenticate", "load_library"]
           + list(_API) + list(_error_names) + list(_constant_names))

import os as _os
if _os.environ.get("MAPI_SERVER"):
    from .client import use_server as _use_server
    _use_server(_os.environ["MAPI_SERVER"], connect=False)

# A library does not print: "mapi" gets a NullHandler once logging is loaded (now, if the
# application imported it; else when MAPI first logs).  The application decides.
from .lazylog import quiet as _quiet  # noqa: E402
_quiet()
