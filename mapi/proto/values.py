"""Python values <-> protocol Values (results, function arguments, info dictionaries).

Exact for what MAPI results hold: None, bools, integers of any size, floats, strings, bytes,
lists, tuples, dicts with any keys, named tuples (Stats, TopEntry, Dist...) and numeric
subtypes that pickle as (class, args) (a meter's Rate).  A typed record is rebuilt with its own
class when that class lives in SCAMPI's packages (mapi, scampi) or a few standard modules;
anything else comes back as a named tuple with the same fields, or as its plain number."""
import importlib
from collections import deque, namedtuple

from . import pb

INT64 = (-(1 << 63), (1 << 63) - 1)
# modules whose classes a client may rebuild records with (never arbitrary imports)
TRUSTED_MODULES = ("mapi", "scampi", "fractions", "decimal", "ipaddress")


def to_value(v, out=None):
    """Encode v into a pb.Value (filled in place when `out` is given)."""
    out = pb.Value() if out is None else out
    if v is None:
        out.none = True
    elif v is True or v is False:
        out.boolean = v
    elif type(v) is int:
        if INT64[0] <= v <= INT64[1]:
            out.integer = v
        else:
            out.big_integer = str(v)
    elif type(v) is float:
        out.real = v
    elif type(v) is str:
        out.text = v
    elif isinstance(v, (bytes, bytearray, memoryview)):
        out.data = bytes(v)
    elif isinstance(v, tuple) and hasattr(v, "_fields"):
        _record(v, out.record)
    elif isinstance(v, tuple):
        seq = out.tuple
        for x in v:
            to_value(x, seq.items.add())
        seq.SetInParent()
    elif isinstance(v, (list, set, frozenset, deque)):
        seq = out.list
        for x in v:
            to_value(x, seq.items.add())
        seq.SetInParent()
    elif isinstance(v, dict):
        entries = out.map.entries
        for k, x in v.items():
            e = entries.add()
            to_value(k, e.key)
            to_value(x, e.value)
        out.map.SetInParent()
    else:
        _record(v, out.record)
    return out


def _record(v, rec):
    """A named tuple, or an object that pickles as (its class, args): a Rate, a Fraction."""
    cls = type(v)
    rec.type = "%s:%s" % (cls.__module__, cls.__qualname__)
    if isinstance(v, tuple):
        rec.fields.extend(v._fields)
        for x in v:
            to_value(x, rec.args.add())
        return
    if isinstance(v, (int, float)):
        to_value(float(v) if isinstance(v, float) else int(v), rec.base)
    try:
        reduced = v.__reduce__()
    except Exception:
        reduced = None
    if isinstance(reduced, tuple) and len(reduced) >= 2 and reduced[0] is cls:
        for x in reduced[1]:
            to_value(x, rec.args.add())
    elif not rec.HasField("base"):
        to_value(repr(v), rec.base)


def from_value(m):
    """Decode a pb.Value into a Python value."""
    kind = m.WhichOneof("kind")
    if kind is None or kind == "none":
        return None
    if kind in ("boolean", "integer", "real", "text", "data"):
        return getattr(m, kind)
    if kind == "big_integer":
        return int(m.big_integer)
    if kind == "list":
        return [from_value(x) for x in m.list.items]
    if kind == "tuple":
        return tuple(from_value(x) for x in m.tuple.items)
    if kind == "map":
        return {_hashable(from_value(e.key)): from_value(e.value) for e in m.map.entries}
    return _from_record(m.record)


def _hashable(k):
    return tuple(_hashable(x) for x in k) if isinstance(k, list) else k


_generic = {}


def _from_record(rec):
    args = [from_value(x) for x in rec.args]
    cls = _trusted_class(rec.type)
    fields = list(rec.fields)
    if cls is not None:
        try:
            return cls(*args)
        except Exception:
            pass
    if fields:
        key = (rec.type, tuple(fields))
        if key not in _generic:
            name = rec.type.rpartition(":")[2].rpartition(".")[2] or "Record"
            _generic[key] = namedtuple(name if name.isidentifier() else "Record", fields,
                                       rename=True)
        return _generic[key](*args)
    if rec.HasField("base"):
        return from_value(rec.base)
    return args


_classes = {}


def _trusted_class(type_name):
    if type_name in _classes:
        return _classes[type_name]
    cls = None
    module, _, qualname = type_name.partition(":")
    if module.split(".")[0] in TRUSTED_MODULES and qualname:
        try:
            obj = importlib.import_module(module)
            for part in qualname.split("."):
                obj = getattr(obj, part)
            cls = obj if isinstance(obj, type) else None
        except Exception:
            cls = None
    _classes[type_name] = cls
    return cls


def to_map(d, out):
    """Fill a protobuf map<string, Value> from a dict."""
    for k, v in (d or {}).items():
        to_value(v, out[str(k)])


def from_map(m):
    return {k: from_value(v) for k, v in m.items()}
