"""explain(dev): the device's global monitoring graph as the organizer and mapper built it —
which nodes are shared and by whom, where each runs, its cost class, and packets in and out."""
import sys
import types

from .api import find_device


def explain_data(dev):
    """The graph as plain data: a list of node dicts in plan order (depth-first)."""
    d = find_device(dev)
    hw_nodes = {}
    if d.hardware is not None:
        try:
            hw_nodes = {n["hw_id"]: n for n in d.hardware.hw_info().get("nodes", [])}
        except Exception:
            hw_nodes = {}
    with d.plan_lock:
        plan = d.plan
        out = []

        def walk(node, depth):
            for child in node.children:
                pin, pout = plan.hits(child) if plan else (child.hits_in, child.hits_out)
                bin_, bout = plan.byte_hits(child) if plan else (child.bytes_in, child.bytes_out)
                refined = None
                hw = hw_nodes.get(child.hw_id) if child.hw_id is not None else None
                if hw is not None:
                    # the card's own counters: software only sees what crossed the bus
                    if not child.hw_exact:
                        refined = pout
                    pin, pout = hw.get("pkts_in", pin), hw.get("pkts_out", pout)
                    bin_, bout = hw.get("bytes_in", bin_), hw.get("bytes_out", bout)
                out.append(dict(refined=refined,
                    depth=depth, function=child.desc.name, args=list(child.args),
                    owners=sorted(child.owners), shared=child.shared(),
                    placement=child.placement,
                    exact=child.hw_exact if child.hw_id is not None else None,
                    note=child.hw_note, cost=child.desc.cost, filters=child.desc.filters,
                    pkts_in=pin, pkts_out=pout, bytes_in=bin_, bytes_out=bout))
                walk(child, depth + 1)
        with d.graph.lock:
            walk(d.graph.root, 0)
    info = dict(device=d.name, backend=d.backend, state=d.state, packets=d.packets, nodes=out)
    if d.hardware is not None:
        try:
            info["hardware"] = d.hardware.hw_info()
            info["units"] = [u.describe() for u in d.hardware.units()]
        except Exception as exc:
            info["hardware"] = {"error": str(exc)}
    return info


def explain(dev):
    """A human-readable rendering of explain_data()."""
    info = explain_data(dev)
    lines = ["device %s (%s, %s): %d packets in" % (info["device"], info["backend"], info["state"],
                                                    info["packets"])]
    if "units" in info:
        lines.append("  hardware units: " + ", ".join(
            "%s[%s]" % (u["name"], ", ".join("%s %s" % (k, v) for k, v in u["limits"].items()))
            for u in info["units"]))
    bus = (info.get("hardware") or {}).get("bus")
    if bus:
        lines.append("  bus: %d packets, %d bytes crossed to the host (%.2f%% of packets)"
                     % (bus.get("packets", 0), bus.get("bytes", 0), 100.0 * bus.get("share_of_packets", 0)))
    lines.append("  raw packet stream")
    for n in info["nodes"]:
        args = ", ".join(repr(a) for a in n["args"])
        call = "%s(%s)" % (n["function"], args) if args else n["function"]
        # a server labels each owner with its client (pid, uid, program)
        owners = ", ".join(n.get("owner_labels") or ["%d.%d" % o for o in n["owners"]])
        where = n["placement"]
        if n["exact"] is False:
            where += " superset + software"
        sel = ""
        if n["filters"] and n["pkts_in"]:
            sel = " (%.1f%%)" % (100.0 * n["pkts_out"] / n["pkts_in"])
        if n["refined"] is not None:
            sel += ", %d after software refinement" % n["refined"]
        lines.append("  %s└─ %s  [flows %s%s] on %s, cost %s, in %d out %d%s%s" % (
            "   " * n["depth"], call, owners, ", shared" if n["shared"] else "", where,
            n["cost"], n["pkts_in"], n["pkts_out"], sel,
            ("  -- " + n["note"]) if n["note"] else ""))
    return "\n".join(lines)


class _CallableModule(types.ModuleType):
    """``mapi.explain`` is this module and, called, explain(): whichever was bound first (a
    lazy attribute of the package, or an ``import mapi.explain``), mapi.explain(dev) works."""

    def __call__(self, dev, *args, **kwargs):
        return explain(dev, *args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
