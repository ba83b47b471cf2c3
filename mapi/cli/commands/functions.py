"""`mapi functions [NAME...]`: the installed functions, their signatures and descriptor flags."""
from mapi.descriptor import ARG_TYPES, REQUIRED
from mapi.registry import get_registry

from ..output import EXIT_OK, jsonable, write_json
from . import add_json_argument


def _param_text(a):
    kind = "|".join(map(str, a.choices)) if a.type == "c" and a.choices else ARG_TYPES.get(a.type, a.type)
    if a.type == "F":
        kind = "LABEL of another function's result"
    text = "%s: %s" % (a.name, kind)
    if a.default is not REQUIRED:
        text += " = %r" % (a.default,)
    return text


def functions_report(names=None):
    reg = get_registry()
    out = []
    for name in (names or sorted(reg.functions)):
        d = reg.function(name)
        out.append(dict(name=d.name, plugin=d.plugin,
                        signature="%s(%s)" % (d.name, ", ".join(_param_text(a) for a in d.args)),
                        args=[dict(name=a.name, type=a.type, type_name=ARG_TYPES.get(a.type, a.type),
                                   required=a.default is REQUIRED,
                                   default=None if a.default is REQUIRED else jsonable(a.default),
                                   choices=jsonable(a.choices), doc=a.doc) for a in d.args],
                        filters=d.filters, modifies=d.modifies, result=d.result, cost=d.cost,
                        shareable=d.shareable, stateful=d.stateful, anchor=d.anchor,
                        doc=(d.doc or "").strip()))
    return out


def handle(args):
    rep = functions_report(args.names)
    if args.json:
        write_json(rep)
        return EXIT_OK
    for f in rep:
        flags = ["filters" if f["filters"] else None, "modifies packets" if f["modifies"] else None,
                 "result: %s" % f["result"], "cost: %s" % f["cost"],
                 "shareable" if f["shareable"] else "not shareable",
                 "stateful" if f["stateful"] else None,
                 "watches %s" % f["anchor"] if f["anchor"] else None, "plugin: %s" % f["plugin"]]
        print(f["signature"])
        print("    " + ", ".join(x for x in flags if x))
        doc = f["doc"].splitlines()
        for line in (doc if args.names else doc[:1]):
            print("    " + line if line.strip() else "")
    return EXIT_OK


def add_parser(sub, name, help):
    p = sub.add_parser(name, help=help)
    p.add_argument("names", nargs="*", metavar="NAME", help="show these functions in full")
    add_json_argument(p)
    p.set_defaults(handler=handle)
