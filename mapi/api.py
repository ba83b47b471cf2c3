"""The MAPI calls (local, in-process)."""
import itertools
import os
import threading
from collections import namedtuple

from .descriptor import REQUIRED, FunctionContext
from .device import Device
from .errors import (MapiError, ENOFLOW, ENOFUNC, ENODEV, EBADARG, ECONNECTED, ENOTCONNECTED,
                     ECLOSED, ENOPKTS, EBUSY)
from .registry import get_registry

Result = namedtuple("Result", "value ts")
Packet = namedtuple("Packet", "ts caplen wlen data ifindex linktype seq")

_lock = threading.RLock()
_devices = {}
_flows = {}
_fd_counter = itertools.count(1)
_dev_counter = itertools.count(0)


class Flow:
    def __init__(self, fd, device):
        self.fd = fd
        self.device = device
        self.functions = []          # (fid, desc, args)
        self.nodes = {}              # fid -> organizer Node, after connect
        self.state = "open"

    def info(self):
        return dict(fd=self.fd, device=self.device.name, status=self.state,
                    drops=self.device.flow_drops().get(self.fd, 0),
                    functions=[dict(fid=fid, name=d.name, args=list(a)) for fid, d, a in self.functions])


# --- devices ----------------------------------------------------------------------------------
def create_offline_device(path, fmt=None, backend=None, **options):
    """Open a trace file as a device; returns the device name for create_flow()."""
    reg = get_registry()
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise MapiError(EBADARG, "create_offline_device: path must be a file name, not %r" % (path,),
                        argument="path")
    path = os.fspath(path)
    if isinstance(path, bytes):
        path = path.decode()
    if backend is None:
        desc = reg.offline_backend(path)
    else:
        desc = reg.backend(backend)
        if desc.open_offline is None:
            raise MapiError(ENODEV, "backend %s cannot replay files" % backend, argument="backend")
    source = desc.open_offline(path, fmt, options)
    with _lock:
        name = "offline%d" % next(_dev_counter)
        _devices[name] = Device(name, source, desc.name, offline=True)
    return name


def _device(dev):
    with _lock:
        d = _devices.get(dev)
    if d is None:
        raise MapiError(ENODEV, "no device %r (devices: %s)" % (dev, ", ".join(sorted(_devices)) or "none"),
                        argument="dev")
    return d


def open_live_device(name, **options):
    """Open (or reuse) a live device by name; flows created on it share it."""
    with _lock:
        d = _devices.get(name)
        if d is not None:
            return d
    reg = get_registry()
    desc, ifname = reg.live_backend(name)
    source = desc.open_live(ifname, options)
    with _lock:
        d = _devices.get(name)
        if d is None:
            d = Device(name, source, desc.name, offline=False)
            _devices[name] = d
    return d


def start_offline_device(dev):
    _device(dev).start()
    return 0


def wait_offline_device(dev, timeout=None):
    _device(dev).wait(timeout)
    return 0


def delete_offline_device(dev):
    d = _device(dev)
    for fd in list(d.flows):
        close_flow(fd)
    d.stop()
    d.source.close()
    with _lock:
        _devices.pop(dev, None)
    return 0


def get_device_info(dev):
    return _device(dev).info()


def stats(dev):
    return _device(dev).stats()


def devices():
    with _lock:
        return sorted(_devices)


# --- flows ------------------------------------------------------------------------------------
def create_flow(dev, **options):
    """A new flow on `dev`: an offline device's name, or a live device ("eth0", "ring:eth0")."""
    if not isinstance(dev, str):
        raise MapiError(EBADARG, "create_flow: device must be a name, not %r" % (dev,), argument="dev")
    with _lock:
        d = _devices.get(dev)
    if d is None:
        d = open_live_device(dev, **options)
    with _lock:
        fd = next(_fd_counter)
        flow = Flow(fd, d)
        _flows[fd] = flow
        d.flows[fd] = flow
    return fd


def _flow(fd, want=None):
    with _lock:
        f = _flows.get(fd)
    if f is None:
        raise MapiError(ENOFLOW, "no flow with descriptor %r" % (fd,), argument="fd")
    if f.state == "closed":
        raise MapiError(ECLOSED, "flow %d is closed" % fd, argument="fd")
    if want == "open" and f.state != "open":
        raise MapiError(ECONNECTED, "flow %d is already connected: apply every function before "
                        "mapi.connect()" % fd, argument="fd")
    if want == "connected" and f.state != "connected":
        raise MapiError(ENOTCONNECTED, "flow %d is not connected yet: call mapi.connect(%d) "
                        "before reading it" % (fd, fd), argument="fd")
    return f


def bind_args(desc, args, kwargs):
    """Match positional/keyword arguments to the descriptor; check their types."""
    params = desc.args
    if len(args) > len(params):
        raise MapiError(EBADARG, "%s takes at most %d arguments (%s), got %d"
                        % (desc.name, len(params), desc.signature(), len(args)), argument=desc.name)
    values = list(args)
    for p in params[len(args):]:
        if p.name in kwargs:
            values.append(kwargs.pop(p.name))
        elif p.default is REQUIRED:
            raise MapiError(EBADARG, "%s: missing argument %r; usage: %s"
                            % (desc.name, p.name, desc.signature()), argument=p.name)
        else:
            values.append(p.default)
    if kwargs:
        raise MapiError(EBADARG, "%s: unknown argument(s) %s; usage: %s"
                        % (desc.name, ", ".join(kwargs), desc.signature()), argument=next(iter(kwargs)))
    return tuple(_coerce(desc, p, v) for p, v in zip(params, values))


def _coerce(desc, p, v):
    def bad(what):
        raise MapiError(EBADARG, "%s: argument %r must be %s, got %r; usage: %s"
                        % (desc.name, p.name, what, v, desc.signature()), argument=p.name)
    t = p.type
    if t in ("s", "w"):
        if isinstance(v, bytes):
            v = v.decode("latin-1")
        if not isinstance(v, str):
            bad("a string")
    elif t == "S":
        if isinstance(v, (str, bytes)):
            v = (v,)
        try:
            v = tuple(x.decode("latin-1") if isinstance(x, bytes) else x for x in v)
        except TypeError:
            bad("a string or a list of strings")
        if not v or not all(isinstance(x, str) for x in v):
            bad("a string or a non-empty list of strings")
    elif t in ("i", "l"):
        if isinstance(v, bool) or not isinstance(v, int):
            bad("an integer")
        if t == "l" and not 0 <= v < 2 ** 64:
            bad("an unsigned 64-bit integer")
    elif t == "n":
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            bad("a number")
    elif t == "b":
        v = bool(v)
    elif t == "F":
        if not (isinstance(v, (tuple, list)) and len(v) == 2 and all(isinstance(x, int) for x in v)):
            bad("a (fd, fid) pair")
        v = tuple(v)
    elif t == "t":
        if isinstance(v, bool) or not isinstance(v, (int, str)) or (isinstance(v, int) and v < 0):
            bad("a duration: integer nanoseconds or a string like \"1s\" or \"100ms\"")
    elif t == "c":
        if p.choices and v not in p.choices:
            bad("one of %s" % (", ".join(map(repr, p.choices))))
    return v


def apply_function(fd, name, *args, **kwargs):
    """Add a function to a flow that is not yet connected; returns its function id."""
    flow = _flow(fd, "open")
    if not isinstance(name, str):
        raise MapiError(EBADARG, "function name must be a string, not %r" % (name,), argument="name")
    desc = get_registry().function(name)
    values = bind_args(desc, args, dict(kwargs))
    fid = len(flow.functions) + 1
    ctx = FunctionContext(device=flow.device, fd=fd, fid=fid, resolve=_resolve)
    if desc.check is not None:
        values = desc.check(ctx, values)
    flow.functions.append((fid, desc, values))
    return fid


def _resolve(fd, fid):
    """(descriptor, node) of function fid of flow fd, for functions that read other results."""
    flow = _flow(fd)
    for f, desc, _ in flow.functions:
        if f == fid:
            return desc, flow.nodes.get(fid)
    raise MapiError(ENOFUNC, "flow %d has no function %r" % (fd, fid), argument="fid")


def connect(fd):
    flow = _flow(fd, "open")
    dev = flow.device
    chain = []
    for fid, desc, args in flow.functions:
        ctx = FunctionContext(device=dev, fd=fd, fid=fid, resolve=_resolve)
        anchor = None
        if desc.anchor:
            ref = args[[a.name for a in desc.args].index(desc.anchor)]
            if ref[0] == fd:
                if not any(f == ref[1] for f, _, _ in flow.functions[:fid - 1]):
                    raise MapiError(EBADARG, "%s (function %d) refers to function %d of its own "
                                    "flow, which does not come before it" % (desc.name, fid, ref[1]),
                                    argument=desc.anchor)
                anchor = ("own", ref[1])        # resolved by the graph as the chain is built
            else:
                anchor = _anchor_node(desc, ref, dev)
        chain.append((fid, desc, args, (lambda d=desc, c=ctx, a=args: d.create(c, a)), anchor))
    from .organizer import order_chain
    chain = order_chain(chain, dev.graph)
    flow.nodes = dev.graph.attach(fd, chain, running=dev.running)
    flow.state = "connected"
    dev.replan()
    if not dev.offline and dev.state == "created":
        dev.start()                     # a live device captures once someone listens
    return 0


def _anchor_node(desc, ref, dev):
    tfd, tfid = ref
    tflow = _flow(tfd)
    if tflow.state != "connected":
        raise MapiError(ENOTCONNECTED, "%s refers to function %d of flow %d, which is not connected "
                        "yet: connect flow %d first" % (desc.name, tfid, tfd, tfd), argument=desc.anchor)
    if tflow.device is not dev:
        raise MapiError(EBADARG, "%s refers to flow %d on device %s, but this flow is on %s"
                        % (desc.name, tfd, tflow.device.name, dev.name), argument=desc.anchor)
    node = tflow.nodes.get(tfid)
    if node is None:
        raise MapiError(ENOFUNC, "flow %d has no function %r" % (tfd, tfid), argument=desc.anchor)
    return node


def _node(fd, fid):
    flow = _flow(fd, "connected")
    node = flow.nodes.get(fid)
    if node is None:
        raise MapiError(ENOFUNC, "flow %d has no function %r (its functions: %s)"
                        % (fd, fid, ", ".join("%d=%s" % (f, d.name) for f, d, _ in flow.functions)),
                        argument="fid")
    return flow, node


def function_instance(fd, fid):
    """The FunctionInstance behind function fid of flow fd (for code that works with an
    instance's C state directly, like the libpcap shim reading a TO_BUFFER ring in C)."""
    _, node = _node(fd, fid)
    return node.instance


def read_results(fd, fid):
    flow, node = _node(fd, fid)
    value, ts = flow.device.result(node)
    return Result(value, ts)


def get_next_pkt(fd, fid, timeout=None):
    _, node = _node(fd, fid)
    nxt = getattr(node.instance, "next_packet", None)
    if nxt is None:
        raise MapiError(ENOPKTS, "function %d of flow %d is %s, which keeps no packets; apply "
                        "TO_BUFFER and pass its id" % (fid, fd, node.name), argument="fid")
    return nxt(timeout)


def loop(fd, fid, cnt, callback):
    """Call callback(packet) for the next cnt packets (cnt <= 0: until the end)."""
    _, node = _node(fd, fid)
    nxt = getattr(node.instance, "next_packet", None)
    if nxt is None:
        raise MapiError(ENOPKTS, "function %d of flow %d keeps no packets (use TO_BUFFER)"
                        % (fid, fd), argument="fid")
    done = 0
    while cnt <= 0 or done < cnt:
        pkt = nxt(None)
        if pkt is None:
            break
        callback(pkt)
        done += 1
    return done


def close_flow(fd):
    flow = _flow(fd)
    dev = flow.device
    if flow.state == "connected":
        # let the engine go first: nothing of this flow may block it any more
        mine = [n for n in flow.nodes.values() if {o[0] for o in n.owners} == {fd}]
        for node in mine:
            node.instance.unblock()
        removed = dev.graph.detach(fd)
        dev.replan()
        for node in removed:
            dev.forget(node.instance)
            node.instance.close()
    flow.state = "closed"
    with _lock:
        dev.flows.pop(fd, None)
        last = not dev.flows
        if last and not dev.offline:
            _devices.pop(dev.name, None)
    if last and not dev.offline:
        dev.stop()
        dev.source.close()
    return 0


def get_flow_info(fd):
    with _lock:
        f = _flows.get(fd)
    if f is None:
        raise MapiError(ENOFLOW, "no flow with descriptor %r" % (fd,), argument="fd")
    return f.info()


def get_function_info(fd, fid):
    flow = _flow(fd)
    for f, desc, args in flow.functions:
        if f == fid:
            info = dict(fid=fid, name=desc.name, args=list(args), plugin=desc.plugin,
                        filters=desc.filters, modifies=desc.modifies, result=desc.result,
                        cost=desc.cost, shareable=desc.shareable)
            node = flow.nodes.get(fid)
            if node is not None:
                plan = flow.device.plan
                pin, pout = plan.hits(node) if plan else (node.hits_in, node.hits_out)
                info.update(pkts_in=pin, pkts_out=pout, placement=node.placement,
                            hw_id=node.hw_id, hw_exact=node.hw_exact, hw_note=node.hw_note,
                            shared_with=sorted({o[0] for o in node.owners} - {fd}))
                info.update(node.instance.info())
            return info
    raise MapiError(ENOFUNC, "flow %d has no function %r" % (fd, fid), argument="fid")
