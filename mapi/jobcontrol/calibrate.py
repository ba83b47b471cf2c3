"""Calibration of the organizer's cost classes: nanoseconds per packet of one representative
function of each class, measured at mapid's start on a generated batch.

The classes (FunctionDescriptor.cost) say how expensive a function is per packet: "free"
(PKT_COUNTER), "low" (BPF_FILTER), "high" (STR_SEARCH).  Admission control multiplies a node's
class cost by the packets that reach it per second; this run gives the classes numbers on this
machine: the engine's own plan runs each function's kernel over one batch of a generated trace
(mapi.tracegen), a few times, and the fastest run minus the plan's own overhead counts."""
import logging
import os
import tempfile
import time

from mapi import api
from mapi.batch import Batch
from mapi._engine import lib

log = logging.getLogger("mapid.jobs.calibrate")
REPRESENTATIVES = {
    "free": ("PKT_COUNTER", ()),
    "low": ("BPF_FILTER", ("tcp port 80",)),
    "high": ("STR_SEARCH", ("attack-sig-XYZ",)),
}
PACKETS = 20000
REPEAT = 7


def _fastest(fn, repeat):
    best = None
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        dt = time.perf_counter() - t
        best = dt if best is None or dt < best else best
    return best


def calibrate(packets=PACKETS, repeat=REPEAT, seed=1):
    """{cost class: ns per packet}, {cost class: the function measured}."""
    from mapi.tracegen import write_trace
    tmp = tempfile.mkdtemp(prefix="mapid-calibrate-")
    path = os.path.join(tmp, "calibrate.pcap")
    write_trace(path, packets=packets, seed=seed)
    dev = api.create_offline_device(path)
    try:
        nodes = {}
        for cls, (name, args) in REPRESENTATIVES.items():
            fd = api.create_flow(dev)
            fid = api.apply_function(fd, name, *args)
            api.connect(fd)
            nodes[cls] = api.find_node(fd, fid)[1]
        device = api.find_device(dev)
        plan = device.plan
        batch = Batch(None)
        try:
            device.source.next_batch_into(batch)
            c = batch.c
            for node in nodes.values():
                node.instance.on_linktype(c.linktype)
                wait = getattr(node.instance, "wait_native", None)
                if wait is not None:
                    wait(5)             # the BPF kernel runs natively once compiled
            base = _fastest(lambda: lib.mapi_plan_begin(plan.c, c), repeat)
            costs = {}
            for cls, node in nodes.items():
                i = plan.first[id(node)]

                def run(i=i):
                    lib.mapi_plan_begin(plan.c, c)
                    lib.mapi_plan_run(plan.c, c, i, i + 1)
                costs[cls] = max(0.1, (_fastest(run, repeat) - base) * 1e9 / c.n)
        finally:
            batch.release()
    finally:
        api.delete_offline_device(dev)
        try:
            os.unlink(path)
            os.rmdir(tmp)
        except OSError:
            pass
    functions = {cls: "%s(%s)" % (n, ", ".join(repr(a) for a in args))
                 for cls, (n, args) in REPRESENTATIVES.items()}
    log.info("cost classes on this machine: %s", ", ".join("%s %.1f ns/packet (%s)" % (
        c, costs[c], functions[c]) for c in costs))
    return costs, functions
