"""MAPI, the SCAMPI monitoring API.

    dev = mapi.create_offline_device("trace.pcap")
    fd = mapi.create_flow(dev)
    fid = mapi.apply_function(fd, "BPF_FILTER", "tcp port 80")
    cnt = mapi.apply_function(fd, "PKT_COUNTER")
    mapi.connect(fd)
    mapi.start_offline_device(dev); mapi.wait_offline_device(dev)
    print(mapi.read_results(fd, cnt).value)
"""
from .hookspecs import hookimpl
from .errors import MapiError, read_error_text
from .constants import *  # noqa: F401,F403
from .api import (Result, Packet, create_offline_device, start_offline_device,
                  wait_offline_device, delete_offline_device, get_device_info, stats, devices,
                  create_flow, apply_function, connect, read_results, get_next_pkt, loop,
                  close_flow, get_flow_info, get_function_info, open_live_device)

from .explain import explain, explain_data
from .flow import OfflineDevice, Flow, Function
from . import events   # callable module: mapi.events(fd, fid) is the async event iterator
from .events import Event, set_event_callback, get_next_event


def use_server(url=None):
    """Send every MAPI call of this process to the MAPI server (mapid) at `url`, e.g.
    "unix:/run/scampi/mapid.sock"; None: back to the in-process engine.  The environment
    variable MAPI_SERVER does the same for a whole program."""
    from .client import use_server as _use
    return _use(url)


def clients():
    """Who is connected to the MAPI server, with their flows, packets and drops."""
    raise MapiError(1020, "mapi.clients() needs a MAPI server: set MAPI_SERVER or call "
                    "mapi.use_server()")


def get_include():
    """Directory of the engine's C headers (engine.h: the batch and kernel ABI), for plugins
    that build their own kernels."""
    import os
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "csrc")

__all__ = ["explain", "explain_data", "get_include", "OfflineDevice", "Flow", "Function",
    "hookimpl", "MapiError", "read_error_text", "Result", "Packet", "create_offline_device",
    "start_offline_device", "wait_offline_device", "delete_offline_device", "get_device_info",
    "stats", "devices", "create_flow", "apply_function", "connect", "read_results",
    "get_next_pkt", "loop", "close_flow", "get_flow_info", "get_function_info",
    "events", "Event", "set_event_callback", "get_next_event", "use_server", "clients",
]

import os as _os
if _os.environ.get("MAPI_SERVER"):
    from .client import use_server as _use_server
    _use_server(_os.environ["MAPI_SERVER"], connect=False)
