"""Wiring: with a server in use, the MAPI call names of mapi, mapi.api, mapi.events and
mapi.explain are the client's methods; uninstall() puts the in-process ones back.  Code that
calls through those modules (the object layer, mapi.explain's rendering, the CLI) follows."""
import importlib
import threading

# module -> call names the client answers there
SURFACE = {
    "mapi.api": ("create_offline_device", "start_offline_device", "wait_offline_device", "stop_device",
                 "delete_offline_device", "get_device_info", "stats", "devices", "create_flow",
                 "create_flow_with", "apply_function", "connect", "read_results", "get_next_pkt", "loop",
                 "close_flow", "get_flow_info", "get_function_info", "open_live_device",
                 "function_instance"),
    "mapi.events": ("set_event_callback", "get_next_event", "events"),
    "mapi.explain": ("explain_data",),
    "mapi.jobcontrol": ("authenticate", "load_library"),
}
_lock = threading.Lock()
_MISSING = object()
_saved = {}          # (module, name) -> the in-process function
_client = None


def install(client):
    """Route the MAPI calls to `client` (a RemoteMapi)."""
    global _client
    with _lock:
        if _client is not None:
            _restore()
        top = importlib.import_module("mapi")
        pairs = []
        for modname, names in SURFACE.items():
            mod = importlib.import_module(modname)
            for name in names:
                pairs.append((mod, name))
                # the package's names load lazily from these modules: bind them too, so a
                # name first used while a server is in use does not keep the client after
                if top.__dict__.get(name, _MISSING) is mod.__dict__.get(name) or \
                        (name not in top.__dict__ and name in getattr(top, "_LAZY", {})):
                    pairs.append((top, name))
        pairs.append((top, "clients"))
        for mod, name in pairs:
            _saved[(mod, name)] = mod.__dict__.get(name, _MISSING)
            setattr(mod, name, getattr(client, name))
        _client = client


def _restore():
    global _client
    for (mod, name), fn in _saved.items():
        if fn is _MISSING:
            mod.__dict__.pop(name, None)     # lazy again: resolved from its module on next use
        else:
            setattr(mod, name, fn)
    _saved.clear()
    old, _client = _client, None
    if old is not None:
        old.close()


def uninstall():
    with _lock:
        _restore()


def installed():
    """The client in use, or None (in-process engine)."""
    return _client
