"""create_flow_with: a flow, its functions and its connect as one call.

    fd, (flt, cnt) = mapi.create_flow_with("eth0", [("BPF_FILTER", "tcp port 80"),
                                                   "PKT_COUNTER"])

The same as create_flow, one apply_function per item and connect (connect=False leaves the flow
open for more), with the same checks, rights and records for each step.  Through mapid it is
one request and one answer instead of one per call (a round trip saved per function and the
connect: what a remote sensor's network delay multiplies).  A step that fails closes the flow
and raises its error, with the step named in the message and in where["step"].

Each item of `functions` is a function name, a tuple or list (name, *args), or a dict
{"name": ..., "args": [...], "kwargs": {...}}.

Lifecycle: the in-process engine runs the steps one call after the other (run() below); the
mapid clients (Unix socket and gRPC) send them in one CreateFlowWith (docs/protocol.md section
4), which mapid runs with run() too, each step through job control as its own call; a
distributed flow sends one to each sensor at once."""
from .errors import MapiError, EBADARG


def steps_of(functions):
    """[(name, args, kwargs)] of create_flow_with's `functions`; EBADARG naming the item that
    is none of the forms above."""
    if isinstance(functions, (str, bytes, dict)) or not hasattr(functions, "__iter__"):
        raise MapiError(EBADARG, "create_flow_with: functions must be a list of functions, not "
                        "%r" % (functions,), argument="functions")
    steps = []
    for i, item in enumerate(functions):
        if isinstance(item, str):
            steps.append((item, (), {}))
        elif isinstance(item, (tuple, list)) and item and isinstance(item[0], str):
            steps.append((item[0], tuple(item[1:]), {}))
        elif isinstance(item, dict) and isinstance(item.get("name"), str) and \
                set(item) <= {"name", "args", "kwargs"} and \
                isinstance(item.get("args", ()), (tuple, list)) and \
                isinstance(item.get("kwargs", {}), dict):
            steps.append((item["name"], tuple(item.get("args", ())), dict(item.get("kwargs", {}))))
        else:
            raise MapiError(EBADARG, "create_flow_with: function %d is %r; give a name, a tuple "
                            "(name, *args) or a dict {name, args, kwargs}" % (i + 1, item),
                            argument="functions")
    return steps


def step_name(i, count, name):
    return "function %d of %d (%s)" % (i + 1, count, name)


def failed(exc, step, closed=True):
    """exc (a MapiError of one step) as create_flow_with's: same code, the step named;
    closed: a flow had been made (and is closed now)."""
    where = dict(exc.where)
    where["step"] = step
    return MapiError(exc.code, "create_flow_with: %s: %s%s" % (
        step, exc, " (the flow was closed)" if closed else ""), **where)


def run(dev, steps, connect, options, create, apply, connect_flow, close):
    """The steps one call after the other: (fd, [fid], what connect_flow returned or None).
    steps: tuples whose first item is the function's name (steps_of's (name, args, kwargs));
    create(dev, options) -> fd; apply(fd, *step) -> fid; connect_flow(fd); close(fd).
    create's own error is raised as it is (there is no flow to close yet)."""
    fd = create(dev, options)
    fids = []
    step = None
    connected = None
    try:
        for i, one in enumerate(steps):
            step = step_name(i, len(steps), one[0])
            fids.append(apply(fd, *one))
        if connect:
            step = "connect"
            connected = connect_flow(fd)
    except MapiError as exc:
        try:
            close(fd)
        except MapiError:
            pass
        raise failed(exc, step) from None
    return fd, fids, connected


def one_by_one(m, dev, functions, connect, options):
    """create_flow_with through the calls of an API object `m` (its create_flow,
    apply_function, connect and close_flow), one after the other: (fd, [fid, ...])."""
    fd, fids, _ = run(dev, steps_of(functions), connect, options,
                      lambda d, o: m.create_flow(d, **o),
                      lambda f, name, args, kwargs: m.apply_function(f, name, *args, **kwargs),
                      m.connect, m.close_flow)
    return fd, fids
