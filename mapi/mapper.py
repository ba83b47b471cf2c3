"""The module mapper: decides, for every node of a device's global graph, whether it runs in the
device's hardware or in software, and explains why.

Rules (after MAPI 2.0's placement, Gigascope's low/high split and Retina's superset filters):
- hardware sees the raw stream, so a node can go to hardware only if its parent is the root or
  a node placed in hardware exactly;
- a unit that can express a filter only approximately runs a superset in hardware, refined by
  the software function (its children then run in software);
- older nodes are placed first, so when a unit is full the newest requests fall back;
- a device that refuses a configuration gets the nodes it names moved to software, and the
  mapper tries again; nothing is ever dropped silently.
"""
import sys

from .lazylog import getLogger

log = getLogger("mapi.mapper")

SOFTWARE = "software"


def hardware_of(source):
    # a device with hardware subclasses mapi.hardware's HardwareDevice, so before that module
    # is imported there is none: a run on a plain source does not import it
    hw = sys.modules.get("mapi.hardware")
    return source if hw is not None and isinstance(source, hw.HardwareDevice) else None


def place(graph, source, generation=0, sticky=()):
    """Decide placements for every node of `graph`; configure the device.  Sets on each node:
    placement ("software" or the unit name), hw_id, hw_exact, hw_note.  Returns the config."""
    hw = hardware_of(source)
    nodes = graph.nodes()
    for n in nodes:
        n.placement, n.hw_id, n.hw_exact, n.hw_note = SOFTWARE, None, False, ""
    if hw is None:
        return None
    from .hardware import HardwareConfig, HardwareError
    try:
        units = [u for u in hw.units() if _sane_unit(u, source)]
    except Exception as exc:
        log.error("device %s: units() failed (%s); everything runs in software", source.name, exc)
        return None
    refused = set(sticky)                 # node serials that stay in software
    for _attempt in range(4):
        config = _decide(graph, nodes, units, source, refused)
        try:
            hw.configure(config)
            return config
        except HardwareError as exc:
            bad = {a.key for a in config.assignments if a.hw_id in exc.hw_ids} or \
                  {a.key for a in config.assignments}
            log.warning("device %s refused the hardware configuration (%s); moving %d node(s) "
                        "to software", source.name, exc, len(bad))
            for n in nodes:
                if n.serial in bad:
                    n.hw_note = "device refused: %s" % exc
            refused |= bad
        except Exception as exc:
            log.error("device %s: configure() failed (%s); everything runs in software",
                      source.name, exc)
            refused |= {a.key for a in config.assignments}
    for n in nodes:
        n.placement, n.hw_id, n.hw_exact = SOFTWARE, None, False
    try:
        hw.configure(HardwareConfig(generation=generation))
    except Exception:
        pass
    return None


def _decide(graph, nodes, units, source, refused):
    from .hardware import MAX_HW_NODES, FILTER, Assignment, HardwareConfig, Offer
    for n in nodes:
        n.placement, n.hw_id, n.hw_exact = SOFTWARE, None, False
    used = {u.name: {} for u in units}
    assignments, placed = [], []
    for n in sorted(nodes, key=lambda n: n.serial):
        parent = n.parent
        if parent is not graph.root and not (parent.hw_id is not None and parent.hw_exact):
            continue
        if n.serial in refused or len(assignments) >= MAX_HW_NODES:
            continue
        best = None
        for u in units:
            if n.desc.name not in u.functions:
                continue
            try:
                offer = u.offer(n.desc, n.args, source)
            except Exception as exc:       # a unit that raises is a unit that says no
                log.error("unit %s raised on %s%r: %s", u.name, n.desc.name, n.args, exc)
                n.hw_note = "unit %s failed: %s" % (u.name, exc)
                continue
            if offer is None:
                if not n.hw_note:
                    n.hw_note = "%s cannot run %s(%s)" % (u.name, n.desc.name, _args(n.args))
                continue
            if not isinstance(offer, Offer) or not isinstance(offer.demand, dict):
                n.hw_note = "%s answered %r, not an Offer" % (u.name, offer)
                log.error("unit %s: offer() returned %r", u.name, offer)
                continue
            if not _fits(u, used[u.name], offer.demand):
                n.hw_note = "%s is full (%s)" % (u.name, _limits(u, used[u.name]))
                continue
            if best is None or (offer.exact and not best[1].exact):
                best = (u, offer)
        if best is None:
            continue
        u, offer = best
        for r, amount in offer.demand.items():
            used[u.name][r] = used[u.name].get(r, 0) + amount
        n.placement, n.hw_id, n.hw_exact = u.name, len(assignments), bool(offer.exact)
        n.hw_note = offer.note
        if u.kind != FILTER:
            n.hw_exact = True              # statistics pass every packet on unchanged
        placed.append(n)
        assignments.append(Assignment(hw_id=n.hw_id, unit=u.name, function=n.desc.name,
                                      args=n.args, offer=offer,
                                      parent_hw_id=None if parent is graph.root else parent.hw_id,
                                      deliver=False, key=n.serial, instance=n.instance))
    for a, n in zip(assignments, placed):
        # which hardware nodes must send their packets across the bus
        a.deliver = (not n.hw_exact) or any(c.hw_id is None for c in n.children)
        a.read_by = _software_readers(n, graph.root)
    deliver_all = any(c.hw_id is None for c in graph.root.children)
    return HardwareConfig(assignments=assignments, deliver_all=deliver_all)


def _software_readers(node, root):
    """Names of the functions of software nodes whose "F" argument names one of `node`'s owners
    (fd, fid): they read its result while packets flow."""
    owners = {tuple(o) for o in getattr(node, "owners", ())}
    if not owners:
        return ()
    out, stack = [], list(root.children)
    while stack:
        n = stack.pop()
        stack.extend(n.children)
        if n is node or n.hw_id is not None or n.desc is None:
            continue
        for arg, value in zip(n.desc.args, n.args):
            if arg.type == "F" and isinstance(value, (tuple, list)) and tuple(value) in owners:
                out.append(n.desc.name)
                break
    return tuple(out)


def _sane_unit(u, source):
    """A unit must be a HardwareUnit with a name, a known kind, function names and integer
    limits; anything else is logged and ignored (its functions run in software)."""
    from .hardware import HardwareUnit, FILTER, STATISTIC
    problem = None
    if not isinstance(u, HardwareUnit):
        problem = "%r is not a HardwareUnit" % (u,)
    elif not isinstance(u.name, str) or not u.name:
        problem = "a unit without a name"
    elif u.kind not in (FILTER, STATISTIC):
        problem = "unit %s has unknown kind %r" % (u.name, u.kind)
    elif not isinstance(u.functions, (tuple, list)) or not all(isinstance(f, str) for f in u.functions):
        problem = "unit %s: functions must be a list of names, not %r" % (u.name, u.functions)
    elif not isinstance(u.limits, dict) or not all(
            isinstance(k, str) and isinstance(v, int) and v >= 0 for k, v in u.limits.items()):
        problem = "unit %s: limits must map resource names to counts, not %r" % (u.name, u.limits)
    if problem:
        log.error("device %s advertises nonsense (%s); ignored", getattr(source, "name", "?"), problem)
        return False
    return True


def _fits(unit, used, demand):
    for r, amount in demand.items():
        cap = unit.limits.get(r)
        if cap is None:
            return False                   # a demand the unit never advertised: refuse
        if used.get(r, 0) + amount > cap:
            return False
    return True


def _limits(unit, used):
    return ", ".join("%s %d/%d" % (r, used.get(r, 0), cap) for r, cap in unit.limits.items())


def _args(args):
    return ", ".join(repr(a) for a in args)
