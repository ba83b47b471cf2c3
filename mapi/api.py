"""The MAPI calls (local, in-process).

Besides the calls, two lookups form the core's internal interface for its other rooms
(explain, events) and for in-process clients that work with a function's state directly
(the libpcap shim, the CLI): find_device(name) and find_node(fd, fid).
"""
import itertools
import os
import threading
from collections import namedtuple

from .arguments import bind_args, check_text
from .descriptor import FunctionContext
from .device import Device
from .derived_view import device_for
from .errors import (MapiError, ENOFLOW, ENOFUNC, ENODEV, EBADARG, ECONNECTED, ENOTCONNECTED,
                     ECLOSED, ENOPKTS)
from .packet import Packet
from .registry import get_registry

Result = namedtuple("Result", "value ts")

_lock = threading.RLock()
_devices = {}
_flows = {}
_fd_counter = itertools.count(1)
_last_fd = 0                     # descriptors 1.._last_fd were issued; closed ones leave _flows
_dev_counter = itertools.count(0)


class FlowEntry:
    """The flow table's entry for one flow descriptor: its device, the functions applied and,
    once connected, their nodes in the device's graph.  (mapi.Flow is the Pythonic handle.)"""

    def __init__(self, fd, device):
        self.fd = fd
        self.device = device
        self.functions = []          # (fid, desc, args)
        self.nodes = {}              # fid -> organizer Node, after connect
        self.state = "open"

    def info(self):
        return dict(fd=self.fd, device=self.device.name, status=self.state, drops=self.drops(),
                    functions=[dict(fid=fid, name=d.name, args=list(a)) for fid, d, a in self.functions])

    def drops(self):
        """Packets this flow's own buffers dropped (Device.flow_drops, for this flow's nodes
        only: no walk over the whole graph)."""
        total = 0
        for node in self.nodes.values():
            if node.desc.result == "packets":
                value = node.instance.result()[0]
                if isinstance(value, dict) and "dropped" in value:
                    total += value["dropped"]
        return total


# --- devices ----------------------------------------------------------------------------------
def create_offline_device(path, fmt=None, backend=None, **options):
    """Open a trace file as a device; returns the device name for create_flow()."""
    reg = get_registry()
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise MapiError(EBADARG, "create_offline_device: path must be a file name, not %r" % (path,),
                        argument="path")
    path = check_text(os.fspath(path), "path", "create_offline_device", path=True)
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


def find_device(dev):
    """The Device object of a device name (internal interface: explain, events, the shim)."""
    with _lock:
        d = _devices.get(dev)
    if d is None:
        raise MapiError(ENODEV, "no device %r (devices: %s)" % (dev, ", ".join(sorted(_devices)) or "none"),
                        argument="dev")
    return d


def open_live_device(name, **options):
    """Open (or reuse) a live device by name; flows created on it share it."""
    name = check_text(name, "dev", "open_live_device")
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
    find_device(dev).start()
    return 0


def wait_offline_device(dev, timeout=None):
    find_device(dev).wait(timeout)
    return 0


def stop_device(dev):
    """End the device's packet stream now (an operator's Ctrl-C, a packet count reached): the
    engine finishes the batch it is running, every function sees the end of the stream, and the
    results stay readable until the device is deleted."""
    find_device(dev).stop()
    return 0


def delete_offline_device(dev):
    d = find_device(dev)
    for fd in list(d.flows):
        close_flow(fd)
    d.settle()
    d.close()
    with _lock:
        _devices.pop(dev, None)
    return 0


def get_device_info(dev):
    return find_device(dev).info()


def stats(dev):
    return find_device(dev).stats()


def devices():
    with _lock:
        return sorted(_devices)


# --- flows ------------------------------------------------------------------------------------
def create_flow(dev, **options):
    """A new flow on `dev`: an offline device's name, or a live device ("eth0", "ring:eth0")."""
    if not isinstance(dev, str):
        raise MapiError(EBADARG, "create_flow: device must be a name, not %r" % (dev,), argument="dev")
    check_text(dev, "dev", "create_flow")
    with _lock:
        d = _devices.get(dev)
    if d is None:
        d = open_live_device(dev, **options)
    global _last_fd
    with _lock:
        fd = _last_fd = next(_fd_counter)
        flow = FlowEntry(fd, d)
        _flows[fd] = flow
        d.flows[fd] = flow
    return fd


def _no_flow(fd):
    """A descriptor not in _flows: closed (issued earlier; the flow is forgotten so that it
    keeps nothing alive) or never issued."""
    if isinstance(fd, int) and not isinstance(fd, bool) and 0 < fd <= _last_fd:
        raise MapiError(ECLOSED, "flow %d is closed" % fd, argument="fd")
    raise MapiError(ENOFLOW, "no flow with descriptor %r" % (fd,), argument="fd")


def _flow(fd, want=None):
    with _lock:
        f = _flows.get(fd)
    if f is None:
        _no_flow(fd)
    if f.state == "closed":
        raise MapiError(ECLOSED, "flow %d is closed" % fd, argument="fd")
    if want == "open" and f.state != "open":
        raise MapiError(ECONNECTED, "flow %d is already connected: apply every function before "
                        "mapi.connect()" % fd, argument="fd")
    if want == "connected" and f.state != "connected":
        raise MapiError(ENOTCONNECTED, "flow %d is not connected yet: call mapi.connect(%d) "
                        "before reading it" % (fd, fd), argument="fd")
    return f


def apply_function(fd, name, *args, **kwargs):
    """Add a function to a flow that is not yet connected; returns its function id."""
    flow = _flow(fd, "open")
    if not isinstance(name, str):
        raise MapiError(EBADARG, "function name must be a string, not %r" % (name,), argument="name")
    desc = get_registry().function(check_text(name, "name", "apply_function"))
    values = bind_args(desc, args, dict(kwargs))
    fid = len(flow.functions) + 1
    ctx = FunctionContext(device=device_for(flow.device, [(d, a) for _, d, a in flow.functions]),
                          fd=fd, fid=fid, resolve=_resolve)
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
        ctx = FunctionContext(device=device_for(dev, [(d, a) for _, d, a in flow.functions[:fid - 1]]),
                              fd=fd, fid=fid, resolve=_resolve)
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
    try:
        flow.nodes = dev.graph.attach(fd, chain, running=dev.running)
    except BaseException:
        # a function refused to start (a file it cannot write...): undo the half-built chain,
        # the flow stays open and owns nothing in the graph
        for node in dev.graph.detach(fd):
            dev.forget(node.instance)       # its id may be reused by a later instance
            node.instance.close()
        raise
    flow.state = "connected"
    dev.replan(wait=False)              # installed between batches; no wait for the batch under way
    if not dev.offline and dev.state == "created":
        dev.start()                     # a live device captures once someone listens
    return 0


def create_flow_with(dev, functions=(), connect=True, **options):
    """create_flow(dev, **options), apply_function for each item of `functions` and connect
    (unless connect=False) as one call: returns (fd, [fid of each function]).  A step that
    fails closes the flow and raises its error naming the step (mapi.flow_with)."""
    from . import flow_with
    fd, fids, _ = flow_with.run(
        dev, flow_with.steps_of(functions), connect, options,
        lambda d, o: create_flow(d, **o),
        lambda f, name, args, kwargs: apply_function(f, name, *args, **kwargs),
        globals()["connect"], close_flow)
    return fd, fids


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


def find_node(fd, fid):
    """(FlowEntry, graph Node) of function fid of a connected flow fd (internal interface:
    explain, events, the shim); MapiError naming what is wrong otherwise."""
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
    _, node = find_node(fd, fid)
    return node.instance


def read_results(fd, fid):
    flow, node = find_node(fd, fid)
    value, ts = flow.device.result(node)
    return Result(value, ts)


def get_next_pkt(fd, fid, timeout=None):
    _, node = find_node(fd, fid)
    nxt = getattr(node.instance, "next_packet", None)
    if nxt is None:
        raise MapiError(ENOPKTS, "function %d of flow %d is %s, which keeps no packets; apply "
                        "TO_BUFFER and pass its id" % (fid, fd, node.name), argument="fid")
    return nxt(timeout)


def loop(fd, fid, cnt, callback):
    """Call callback(packet) for the next cnt packets (cnt <= 0: until the end)."""
    _, node = find_node(fd, fid)
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
        removed = dev.graph.detach(fd, flow.nodes.values())
        dev.retire(removed)             # closed now, or by the engine once its plan lacks them
    flow.state = "closed"
    with _lock:
        _flows.pop(fd, None)
        dev.flows.pop(fd, None)
        last = not dev.flows
        if last and not dev.offline:
            _devices.pop(dev.name, None)
    if last and not dev.offline:
        dev.close()
    return 0


def get_flow_info(fd):
    """fd, device, status ("open", "connected"), drops and functions of a flow; a closed flow
    is only {"fd": fd, "status": "closed"} (nothing of it is kept)."""
    with _lock:
        f = _flows.get(fd)
    if f is None:
        try:
            _no_flow(fd)
        except MapiError as exc:
            if exc.code != ECLOSED:
                raise
        return dict(fd=fd, status="closed")
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
