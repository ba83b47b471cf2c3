#!/usr/bin/env python3
"""Cost per packet of the example sandboxed filter (examples/wasm/tcp80.wasm, WASM_TCP80 under
wasmtime with fuel metering, the batch copied into its memory) against the engine's C BPF
kernel for the same `tcp port 80` (interpreted, and natively compiled), over the same batch of
a generated trace, in one run side by side.  `make bench` runs it.

    python tools/bench_wasm.py [--packets 65536] [--repeat 20]
"""
import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mapi import api  # noqa: E402
from mapi._engine import ffi, lib  # noqa: E402
from mapi.batch import Batch  # noqa: E402
from mapi.jobcontrol import load_library  # noqa: E402
from mapi.tracegen import write_trace  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def fastest(fn, repeat):
    best = None
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        dt = time.perf_counter() - t
        best = dt if best is None or dt < best else best
    return best


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--packets", type=int, default=65536)
    p.add_argument("--repeat", type=int, default=20)
    args = p.parse_args(argv)
    wasm = os.path.join(ROOT, "examples", "wasm", "tcp80.wasm")
    if not os.path.exists(wasm):
        from examples.wasm.build import build
        build()
    load_library(wasm)
    tmp = tempfile.mkdtemp(prefix="bench-wasm-")
    path = os.path.join(tmp, "t.pcap")
    write_trace(path, packets=args.packets, seed=1)
    dev = api.create_offline_device(path)
    nodes = {}
    for name, fargs in (("bpf", ("BPF_FILTER", "tcp port 80")), ("wasm", ("WASM_TCP80",))):
        fd = api.create_flow(dev)
        fid = api.apply_function(fd, *fargs)
        api.connect(fd)
        nodes[name] = api.find_node(fd, fid)[1]
    device = api.find_device(dev)
    plan = device.plan
    batch = Batch(None)
    device.source.next_batch_into(batch)
    c = batch.c
    for node in nodes.values():
        node.instance.on_linktype(c.linktype)
    nodes["bpf"].instance.wait_native(10)
    base = fastest(lambda: lib.mapi_plan_begin(plan.c, c), args.repeat)

    def entry(node):
        return plan.first[id(node)]

    i = entry(nodes["bpf"])

    def bpf():
        lib.mapi_plan_begin(plan.c, c)
        lib.mapi_plan_run(plan.c, c, i, i + 1)
    st = nodes["bpf"].instance.st
    native = st.native[0]
    t_native = fastest(bpf, args.repeat) - base
    passed_bpf = plan.c.slot_n[plan.c.nodes[i].out_slot]
    st.native[0] = ffi.NULL                        # the C interpreter
    t_interp = fastest(bpf, args.repeat) - base
    st.native[0] = native
    w = nodes["wasm"].instance
    cn = plan.c.nodes[entry(nodes["wasm"])]
    out = {}

    def run_wasm():
        lib.mapi_plan_begin(plan.c, c)
        out["n"] = w.process(c, plan.c.slots[cn.in_slot], c.n, plan.c.slots[cn.out_slot])
    t_wasm = fastest(run_wasm, args.repeat) - base
    n = c.n
    batch.release()
    api.delete_offline_device(dev)
    os.unlink(path)
    os.rmdir(tmp)
    assert out["n"] == passed_bpf, (out["n"], passed_bpf)
    ns = lambda t: t * 1e9 / n                    # noqa: E731
    print("sandboxed filter (tcp port 80), %d packets per batch, %d passed:" % (n, passed_bpf))
    print("  %-38s %7.2f ns/packet" % ("C BPF kernel, interpreted", ns(t_interp)))
    print("  %-38s %7.2f ns/packet" % ("C BPF kernel, native", ns(t_native)))
    print("  %-38s %7.2f ns/packet  (%.2fx the interpreted kernel, %.2fx native; goal <= 3x)"
          % ("WASM_TCP80 under wasmtime (fuel on)", ns(t_wasm), t_wasm / t_interp,
             t_wasm / t_native))
    return 0


if __name__ == "__main__":
    sys.exit(main())
