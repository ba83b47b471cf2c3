"""`mapi devices`: the installed backends and the devices each offers; with a MAPI server
(--server, MAPI_SERVER), the devices that server offers."""
from mapi.client import installed
from mapi.registry import get_registry

from ..output import EXIT_OK, jsonable, write_json
from . import add_json_argument


def devices_report():
    reg = get_registry()
    backends = []
    for name in sorted(reg.backends):
        d = reg.backends[name]
        entry = dict(backend=name, plugin=d.plugin, doc=(d.doc or "").strip(),
                     offline=d.open_offline is not None, live=d.open_live is not None, devices=[])
        if d.list_devices is not None:
            try:
                entry["devices"] = [jsonable(x) for x in (d.list_devices() or [])]
            except Exception as exc:      # one broken backend must not hide the others
                entry["error"] = "%s: %s" % (type(exc).__name__, exc)
        backends.append(entry)
    return dict(backends=backends, problems=[dict(plugin=p, message=m) for p, m in reg.problems])


def server_devices_report():
    """With a MAPI server in use: the devices it offers this client (its own offline devices,
    the devices of its config, live devices in use), as the server describes them."""
    import mapi
    out = []
    for name in mapi.devices():
        try:
            info = mapi.get_device_info(name)
        except mapi.MapiError as exc:
            out.append(dict(name=name, error=str(exc)))
            continue
        out.append(dict(name=name, backend=info.get("backend"), offline=info.get("offline"),
                        state=info.get("state"), path=info.get("path"),
                        packets=info.get("packets"), flows=len(info.get("flows", []))))
    return dict(server=installed().url, devices=out)


def handle(args):
    if installed() is not None:
        return handle_server(args)
    rep = devices_report()
    if args.json:
        write_json(rep)
        return EXIT_OK
    for b in rep["backends"]:
        kinds = "/".join(k for k in ("offline", "live") if b[k]) or "none"
        print("%s  (plugin %s; %s)  %s" % (b["backend"], b["plugin"] or "?", kinds, b["doc"]))
        if "error" in b:
            print("    cannot list devices: %s" % b["error"])
        elif b["devices"]:
            for dv in b["devices"]:
                if isinstance(dv, dict):
                    print("    %-16s %s" % (dv.get("name", "?"), dv.get("description", "")))
                else:
                    print("    %s" % dv)
        elif b["offline"] and not b["live"]:
            print("    no interfaces: opens files (mapi run -r FILE ...)")
        else:
            print("    no devices found")
    for p in rep["problems"]:
        print("problem in plugin %s: %s" % (p["plugin"], p["message"]))
    return EXIT_OK


def handle_server(args):
    rep = server_devices_report()
    if args.json:
        write_json(jsonable(rep))
        return EXIT_OK
    print("devices of the MAPI server at %s:" % rep["server"])
    for d in rep["devices"]:
        if "error" in d:
            print("  %-20s %s" % (d["name"], d["error"]))
            continue
        what = d["path"] if d["offline"] else "live"
        print("  %-20s %s, %s, %s; %d packets, %d flows" % (
            d["name"], d["backend"], what, d["state"], d["packets"] or 0, d["flows"]))
    if not rep["devices"]:
        print("  none yet: create_flow on an interface (eth0, ring:eth0...) or a file of yours")
    return EXIT_OK


def add_parser(sub, name, help):
    p = sub.add_parser(name, help=help)
    add_json_argument(p)
    p.set_defaults(handler=handle)
