"""The combined value of a distributed flow's result from its sensors' values, by the value's
shape (never by function name):

    numbers (counters, byte sums, BINOP, rates)    add
    Stats(count, sum, sum2, min, max)              add count/sum/sum2, min of mins, max of maxes
                                                   (so mean and variance are exact)
    Dist(min, max, width, bins, under, over, count)  add bin by bin (same binning on every sensor)
    [TopEntry(value, packets, bytes)]              exact counts per key added, ranked again
    [Snapshot(start, value)] (BUCKET)              values added per interval of one grid
    {name: number} (TO_BUFFER's counts...)         added key by key

TOP is exact because every sensor ranks its whole table (TOP's x widened to its max_values:
PARTIAL_ARGS) and the client cuts to x after adding; a sensor whose table overflowed says so
in its own info.  A value of another shape combines to None when the sensors disagree."""
import ipaddress

STATS = ("count", "sum", "sum2", "min", "max")
DIST = ("min", "max", "width", "bins", "under", "over", "count")
TOP = ("value", "packets", "bytes")
SNAPSHOT = ("start", "value")


def _widen_top(args, kwargs):
    """TOP(x, field, max_values, by): each sensor keeps (and reports) its whole table."""
    args = list(args)
    max_values = args[2] if len(args) > 2 else kwargs.get("max_values", 1 << 20)
    x = args[0] if args else kwargs.get("x")
    wide = min(max(max_values, 1), 1 << 20)
    if args:
        args[0] = wide
    else:
        kwargs = dict(kwargs, x=wide)
    by = args[3] if len(args) > 3 else kwargs.get("by", "packets")
    return tuple(args), kwargs, dict(x=x, by=by)


# functions whose sensors must compute more than the final answer for the merge to be exact:
# name -> (args, kwargs) -> (sensor args, sensor kwargs, hints for cut())
PARTIAL_ARGS = {"TOP": _widen_top}


def _fields(v):
    return getattr(v, "_fields", None) if isinstance(v, tuple) else None


def _number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def combine(values, hints=None):
    """The combined value of the sensors' values (None ones are missing sensors)."""
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    first = vals[0]
    if all(_number(v) for v in vals):
        return sum(vals)
    shape = _fields(first)
    if shape == STATS and all(_fields(v) == STATS for v in vals):
        return _stats(vals)
    if shape == DIST and all(_fields(v) == DIST for v in vals):
        return _dist(vals)
    if isinstance(first, dict) and all(isinstance(v, dict) for v in vals):
        keys = list(dict.fromkeys(k for v in vals for k in v))
        return {k: combine([v.get(k) for v in vals]) for k in keys}
    if all(isinstance(v, list) for v in vals):
        items = [x for v in vals for x in v]
        if items and all(_fields(x) == TOP for x in items):
            return cut(_top(items, hints), hints)
        if items and all(_fields(x) == SNAPSHOT for x in items):
            return _buckets(vals)
        if not items:
            return []
    return first if all(v == first for v in vals) else None


def cut(value, hints):
    """A TOP list as the application asked for it (x entries), from a widened one."""
    if hints and hints.get("x") and isinstance(value, list):
        return value[:hints["x"]]
    return value


def _stats(vals):
    mins = [v.min for v in vals if v.count and v.min is not None]
    maxs = [v.max for v in vals if v.count and v.max is not None]
    return type(vals[0])(sum(v.count for v in vals), sum(v.sum for v in vals),
                         sum(v.sum2 for v in vals), min(mins) if mins else None,
                         max(maxs) if maxs else None)


def _dist(vals):
    first = vals[0]
    if any((v.min, v.max, v.width, len(v.bins)) != (first.min, first.max, first.width,
                                                    len(first.bins)) for v in vals):
        return None
    bins = [sum(col) for col in zip(*(v.bins for v in vals))]
    return type(first)(first.min, first.max, first.width, bins, sum(v.under for v in vals),
                       sum(v.over for v in vals), sum(v.count for v in vals))


def _key_order(v):
    """Ties rank as TOP ranks them in C: the smaller key first, IPv4 before IPv6."""
    if isinstance(v, (tuple, list)):
        return tuple(_key_order(x) for x in v)
    if isinstance(v, str):
        try:
            a = ipaddress.ip_address(v)
            return (0, a.version, a.packed)
        except ValueError:
            return (1, 0, v.encode())
    return (0, 0, int(v).to_bytes(8, "big", signed=False) if _number(v) and v >= 0 else b"")


def _top(items, hints):
    total = {}
    kind = type(items[0])
    for e in items:
        key = tuple(e.value) if isinstance(e.value, list) else e.value
        p, b = total.get(key, (0, 0))
        total[key] = (p + e.packets, b + e.bytes)
    by_bytes = bool(hints) and hints.get("by") == "bytes"
    rank = (lambda kv: (-kv[1][1], -kv[1][0], _key_order(kv[0]))) if by_bytes else \
        (lambda kv: (-kv[1][0], -kv[1][1], _key_order(kv[0])))
    return [kind(k, p, b) for k, (p, b) in sorted(total.items(), key=rank)]


def _buckets(series):
    """Sensors' snapshots on one grid: the earliest start and the common interval (each
    sensor's intervals start at its own first packet, so starts are put in the grid's slot)."""
    starts = sorted({s.start for v in series for s in v})
    steps = [b - a for v in series for a, b in zip([s.start for s in v], [s.start for s in v][1:])
             if b > a]
    step = min(steps) if steps else 0
    t0 = starts[0]
    kind = type(series[0][0]) if series[0] else type(next(s for v in series for s in v))
    slots = {}
    for v in series:
        for s in v:
            slot = (s.start - t0) // step if step else 0
            slots[slot] = combine([slots.get(slot), s.value])
    return [kind(t0 + k * step, slots[k]) for k in sorted(slots)]
