"""`mapi devices`: the installed backends and the devices each offers."""
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


def handle(args):
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


def add_parser(sub, name, help):
    p = sub.add_parser(name, help=help)
    add_json_argument(p)
    p.set_defaults(handler=handle)
