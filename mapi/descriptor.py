"""Descriptors: what a function or a backend declares about itself.

Capabilities are data, not code paths: the organizer orders and shares nodes, and the mapper
places them, from these declarations alone.
"""
from __future__ import annotations      # the annotations stay text: typing is not imported

from .errors import MapiError, EBADARG

REQUIRED = object()

# Argument types (after MAPI 2.0's type codes)
ARG_TYPES = {
    "s": "string",
    "i": "integer",
    "l": "unsigned 64-bit integer",
    "n": "number",
    "b": "boolean",
    "S": "string or list of strings",
    "w": "path of a file to write",
    "d": "directory the function creates files in",
    "F": "function reference (fd, fid) of another flow",
    "c": "constant",
    "t": "duration (integer ns, or a string with a unit: \"1s\", \"100ms\")",
}

COST_CLASSES = ("free", "low", "high")
RESULT_TYPES = ("none", "u64", "float", "struct", "list", "packets", "events", "file")


def passed_file(arg_type, arg_name, value):
    """What a client of a MAPI server opens itself and passes as a descriptor for this value
    of an argument: "w" (the file to write at that path), "file" or "fd" (a destination naming
    a file or one of the client's descriptors: FLOW_REPORT's, RECORD_REPORT's), None for
    anything else (udp:HOST:PORT, "", other arguments).  The server opens none of these by
    name (docs/protocol.md section 7)."""
    if arg_type == "w":
        return "w" if value not in (None, "") else None
    if arg_name == "destination" and isinstance(value, str):
        kind, _, rest = value.partition(":")
        if kind in ("file", "fd") and rest:
            return kind
    return None


class _NoDefault:
    def __repr__(self):
        return "<no default>"


_NO_DEFAULT = _NoDefault()


class default_factory:
    """A field default made anew for each instance (dataclasses' field(default_factory=...))."""

    def __init__(self, make):
        self.make = make


class Record:
    """What ``@dataclass`` generates, for the fields the class annotates (in order, a class
    attribute being the default), written out once: importing dataclasses (and inspect, ast,
    dis under it) would cost every start more than all the rest of this module.  Positional or
    keyword construction, equality and (frozen) hashing on the fields, a repr, ``replace()``
    (also as ``copy.replace``); a frozen record refuses assignment, like a frozen dataclass."""

    _frozen = True
    _fields = ()           # ((name, default), ...), set by @record

    def __init__(self, *args, **kwargs):
        cls = type(self)
        if len(args) > len(cls._fields):
            raise TypeError("%s() takes %d positional arguments but %d were given"
                            % (cls.__name__, len(cls._fields), len(args)))
        values = dict(zip((f for f, _ in cls._fields), args))
        for name, value in kwargs.items():
            if name in values:
                raise TypeError("%s() got multiple values for argument %r" % (cls.__name__, name))
            values[name] = value
        unknown = set(values) - {f for f, _ in cls._fields}
        if unknown:
            raise TypeError("%s() got an unexpected keyword argument %r"
                            % (cls.__name__, sorted(unknown)[0]))
        for name, default in cls._fields:
            if name not in values:
                if default is _NO_DEFAULT:
                    raise TypeError("%s() missing required argument %r" % (cls.__name__, name))
                values[name] = default.make() if isinstance(default, default_factory) else default
            object.__setattr__(self, name, values[name])

    def _values(self):
        return tuple(getattr(self, f) for f, _ in self._fields)

    def __setattr__(self, name, value):
        if self._frozen:
            raise AttributeError("cannot assign to field %r" % name)
        object.__setattr__(self, name, value)

    def __delattr__(self, name):
        if self._frozen:
            raise AttributeError("cannot delete field %r" % name)
        object.__delattr__(self, name)

    def __eq__(self, other):
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self):
        if not self._frozen:
            raise TypeError("unhashable type: %r" % type(self).__name__)
        return hash(self._values())

    def __repr__(self):
        return "%s(%s)" % (type(self).__qualname__, ", ".join(
            "%s=%r" % (f, getattr(self, f)) for f, _ in self._fields))

    def replace(self, **changes):
        """A copy with some fields changed (dataclasses.replace)."""
        values = {f: getattr(self, f) for f, _ in self._fields}
        values.update(changes)
        return type(self)(**values)

    __replace__ = replace


def record(frozen=True):
    """Class decorator: the class's annotated names, in order, are its Record fields."""
    def make(cls):
        names = cls.__dict__.get("__annotations__", {})
        cls._fields = tuple((n, cls.__dict__.get(n, _NO_DEFAULT)) for n in names)
        cls._frozen = frozen
        for n in names:                      # defaults live in _fields, not on the class
            if n in cls.__dict__:
                delattr(cls, n)
        return cls
    return make


@record(frozen=True)
class Arg(Record):
    name: str
    type: str
    default: Any = REQUIRED
    doc: str = ""
    choices: Optional[Tuple[Any, ...]] = None   # for type "c"


@record(frozen=True)
class FunctionDescriptor(Record):
    """A MAPI function, MAPI 2.0 style: one small module per function declares one of these.

    create(ctx, args) -> FunctionInstance, called at connect time with validated args.
    check(ctx, args) -> args, optional: extra validation/normalisation at apply time (MAPI's
    ``instance``); raise mapi.MapiError naming the bad argument.
    """
    name: str
    args: Tuple[Arg, ...]
    create: Callable
    doc: str = ""
    filters: bool = False        # may drop packets
    modifies: bool = False       # changes packet bytes
    result: str = "none"         # one of RESULT_TYPES
    cost: str = "low"            # one of COST_CLASSES: per-packet cost class
    shareable: bool = True       # identical instances (same args, same prefix) may be shared
    stateful: bool = False       # order-sensitive (counters, samplers): a barrier for reordering
    check: Optional[Callable] = None
    # Name of an "F" argument (fd, fid): the node hangs under that function's node instead of
    # in its own flow's chain, so it sees exactly the packets that function sees, right after
    # it (THRESHOLD on a counter finds the very packet that crossed).
    anchor: Optional[str] = None
    # A producer hands on packets it makes (a derived batch: reassembled datagrams, stream
    # chunks, flow records, modified copies); derives(linktype, args) -> (link type, snaplen or
    # None for the input's) of what it hands on when its input has `linktype`.  None: the
    # function hands on the packets it gets.
    derives: Optional[Callable] = None
    # A filter the organizer never moves past another (job control's mandatory prefix: every
    # function after it sees only what it passed).
    barrier: bool = False
    plugin: str = ""             # filled in by the registry: who declared it

    def signature(self):
        parts = []
        for a in self.args:
            p = "%s:%s" % (a.name, a.type)
            if a.default is not REQUIRED:
                p += "=%r" % (a.default,)
            parts.append(p)
        return "%s(%s)" % (self.name, ", ".join(parts))


def filter_descriptor(name, doc, make, check, args, result, cost, stateful=True, context=False,
                      **more):
    """The FunctionDescriptor of a filter `name` as the standard ones are: it may drop packets,
    flows share its identical instances (same arguments, same prefix), and at connect time
    make(*checked_args) -- make(ctx, *checked_args) with context=True -- is its instance.
    stateful: it counts what it passed, so the organizer does not reorder it past another
    filter; `more`: the other FunctionDescriptor fields (modifies, derives, ...)."""
    if context:
        def create(ctx, checked):
            return make(ctx, *checked)
    else:
        def create(ctx, checked):
            return make(*checked)
    # the registry's index finds the module holding a DESCRIPTOR through create's module: the
    # filter's own (where `make` lives), so a run imports that module alone
    create.__module__ = make.__module__
    return FunctionDescriptor(name=name, args=args, create=create, check=check, doc=doc,
                              filters=True, result=result, cost=cost, shareable=True,
                              stateful=stateful, **more)


class FunctionInstance:
    """One applied function.  A C kernel (``kernel``, ``state``: cffi pointers) runs inside the
    engine's plan; a function with kernel None gets ``process()`` called once per batch from
    Python instead.  Hooks run once per batch or per event, never per packet."""

    kernel = None            # cffi mapi_kernel_fn, or None
    state = None             # cffi void* passed to the kernel
    tick_ns = 0              # > 0: on_tick() is called when packet time crosses a boundary;
                             # boundaries are first packet seen + k * tick_ns (device.next_tick)
    made = None              # producers (descriptor.derives): cffi mapi_batch* the kernel fills
    made_drain = None        # producers: cffi mapi_drain_fn releasing what is held at the end
    closes_output = False    # close() completes output outside the process (a file, an export):
                             # close_flow returns only once it ran; others close after

    def process(self, batch, sel, nsel, out):
        """Python kernel (only when ``kernel`` is None): sel/out are cffi uint32_t arrays."""
        return nsel

    def on_join(self):
        """Called once, when the first plan that runs this instance is installed: the engine
        is between two batches, so a function that follows another's result reads here the
        value it starts from."""

    def on_linktype(self, linktype):
        """The next batches carry this link type (called before the first batch too)."""

    def on_tick(self, t_ns):
        """Packet time reached t_ns (a multiple of tick_ns); results may be snapshotted."""

    def after_batch(self, batch):
        """Called after each batch has gone through the whole plan (events, flushing)."""

    def result(self):
        """Return (value, ts_ns) for read_results."""
        return None, 0

    def reset(self):
        pass

    def end(self):
        """The device's packet stream ended (offline replay finished)."""

    def unblock(self):
        """The owning flow is closing: never block the engine again (called before the
        instance leaves the plan; close() follows once the engine no longer runs it)."""

    def close(self):
        """Free resources; the instance is not used afterwards."""

    def info(self):
        return {}


@record(frozen=False)
class FunctionContext(Record):
    """What a function may know at apply/create time."""
    device: Any                  # mapi device object (linktype, snaplen, offline, name)
    fd: int
    fid: int
    resolve: Callable = None     # resolve(fd, fid) -> (FunctionDescriptor, node) of another flow
    log: Any = None


@record(frozen=True)
class BackendDescriptor(Record):
    """A packet-source backend: one ops table, like a libpcap capture module.

    open_offline(path, fmt, options) -> PacketSource: replay a file (fmt: a format name or None;
    options: the create_offline_device keywords).  open_live(name, options) -> PacketSource:
    capture from a live device (name without the "backend:" prefix).  list_devices() -> list of
    dicts (name, description, ...).  Each is None when the backend has no such operation; each
    raises mapi.MapiError naming the file, device or option.  Which backend opens a file or a
    bare device name is asked through the hooks scampi_probe_offline / scampi_claim_live.
    """
    name: str
    doc: str = ""
    open_offline: Optional[Callable] = None
    open_live: Optional[Callable] = None
    list_devices: Optional[Callable] = None
    capabilities: dict = default_factory(dict)
    plugin: str = ""


class PacketSource:
    """The ops a backend's open_* returns.  next_batch_into(batch) fills a mapi.batch.Batch
    (blocking until packets are there) and returns False at the end of the stream; it raises
    mapi.MapiError on bad input, after every complete packet before the problem was delivered.
    The batch's ``keep`` must hold the packet memory until the engine releases the batch."""

    name = ""
    linktype = 1
    snaplen = 262144
    offline = True
    nsec = False                      # timestamps were stored with ns resolution

    def next_batch_into(self, batch):
        raise NotImplementedError

    def release(self, batch):
        """The engine is done with this batch; its memory may be reused."""

    def stats(self):
        return {}

    def info(self):
        return {}

    def close(self):
        pass


def declaration_problem(kind, d):
    """What is wrong with `d` as a declaration of `kind` ("functions" or "backends"), or None."""
    if kind == "backends":
        if not isinstance(d, BackendDescriptor) or not d.name:
            return "scampi_backends returned %r, not a BackendDescriptor" % (d,)
        return None
    if not isinstance(d, FunctionDescriptor):
        return "scampi_functions returned %r, not a FunctionDescriptor" % (d,)
    if not d.name or not d.name.replace("_", "").isalnum() or d.name.upper() != d.name:
        return "function name %r must be upper case letters, digits and _" % d.name
    for a in d.args:
        if a.type not in ARG_TYPES:
            return "function %s: argument %s has unknown type %r" % (d.name, a.name, a.type)
    if d.cost not in COST_CLASSES:
        return "function %s: cost class %r is not one of %s" % (d.name, d.cost, COST_CLASSES)
    if d.result not in RESULT_TYPES:
        return "function %s: result type %r is not one of %s" % (d.name, d.result, RESULT_TYPES)
    if not callable(d.create):
        return "function %s: create is not callable" % d.name
    return None


def parse_options(what, options, allowed):
    """Check a device's options (the keywords of create_flow / create_offline_device) against
    `allowed` {name: (type, default)}: type bool, int (non-negative) or a tuple of the allowed
    values.  Returns {name: value} with every default filled in; raises MapiError(EBADARG)
    naming `what` and the option."""
    options = dict(options or {})
    out = {}
    for name, (typ, default) in allowed.items():
        v = options.pop(name, default)
        if typ is bool:
            v = bool(v)
        elif typ is int:
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise MapiError(EBADARG, "%s: option %s must be a non-negative integer, got %r"
                                % (what, name, v), argument=name)
        elif isinstance(typ, tuple):
            if v not in typ:
                raise MapiError(EBADARG, "%s: option %s must be one of %s, got %r"
                                % (what, name, ", ".join(map(repr, typ)), v), argument=name)
        out[name] = v
    if options:
        raise MapiError(EBADARG, "%s: unknown option(s) %s; known: %s"
                        % (what, ", ".join(sorted(options)), ", ".join(sorted(allowed))),
                        argument=sorted(options)[0])
    return out
