"""Soak: a long-lived process that opens and closes devices and flows must not grow.

Each run happens in a fresh interpreter (this file run as a script) so that the figures are
the lifecycle's alone: after a warm-up, N cycles, then resident and virtual size are compared
(gc.collect and malloc_trim first, so only memory something still holds counts).  The bounds
are on memory, never on time.  Before the fix, one offline device lifecycle with a connected
flow kept ~1 MB of RSS and ~10 MB of VmSize: 1,000 cycles were +1 GB and +10 GB.

    python tests/test_soak.py offline TRACE CYCLES   # device lifecycles, prints JSON
    python tests/test_soak.py flows TRACE CYCLES     # flow create/connect/close on one device
    python tests/test_soak.py live DEVICE CYCLES     # live open/close (inside a namespace)
"""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BOUND_KB = 20 * 1024            # the "small constant": 20 MB over the whole run


# --- the measuring side (run as a script) --------------------------------------------------
def _memory_kb():
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmSize"):
                out[key] = int(value.split()[0])
    return out["VmRSS"], out["VmSize"]


def _settle():
    import ctypes
    import gc
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)


def _offline_cycle(trace, expect):
    import mapi
    dev = mapi.create_offline_device(trace)
    fd = mapi.create_flow(dev)
    cnt = mapi.apply_function(fd, "PKT_COUNTER")
    mapi.connect(fd)
    mapi.start_offline_device(dev)
    mapi.wait_offline_device(dev)
    got = mapi.read_results(fd, cnt).value
    mapi.close_flow(fd)
    mapi.delete_offline_device(dev)
    return got == expect


def _flow_cycle(dev, expr):
    import mapi
    fd = mapi.create_flow(dev)
    mapi.apply_function(fd, "BPF_FILTER", expr)
    mapi.apply_function(fd, "PKT_COUNTER")
    mapi.apply_function(fd, "TO_BUFFER")
    mapi.connect(fd)
    mapi.close_flow(fd)
    return True


def _live_cycle(name):
    import mapi
    fd = mapi.create_flow(name)
    mapi.apply_function(fd, "PKT_COUNTER")
    mapi.connect(fd)                      # the device opens (socket, ring) and captures
    ok = mapi.get_device_info(name)["state"] == "running"
    mapi.close_flow(fd)                   # the last flow: the device closes
    return ok and name not in mapi.devices()


def soak(mode, target, cycles):
    """Warm up, then `cycles` cycles; returns the figures as a dict."""
    import gc
    import mapi
    if mode == "offline":
        dev = mapi.create_offline_device(target)
        mapi.start_offline_device(dev)
        mapi.wait_offline_device(dev)
        expect = mapi.get_device_info(dev)["packets"]
        mapi.delete_offline_device(dev)
        step = lambda: _offline_cycle(target, expect)
    elif mode == "flows":
        dev = mapi.create_offline_device(target)
        exprs = ["tcp port 80", "udp", "not tcp"]
        state = {"i": 0}

        def step():
            state["i"] += 1
            return _flow_cycle(dev, exprs[state["i"] % len(exprs)])
    else:
        from mapi.registry import get_registry
        import importlib
        reg = get_registry()
        backend = target.split(":", 1)[0]
        if backend not in reg.backends:
            module = importlib.import_module("scampi.backends." + backend)
            reg.register(module, name="backend-" + backend)
        step = lambda: _live_cycle(target)
    warmup = max(20, cycles // 20)
    failures = sum(not step() for _ in range(warmup))
    _settle()
    rss0, vm0 = _memory_kb()
    objects0 = len(gc.get_objects())
    failures += sum(not step() for _ in range(cycles))
    _settle()
    rss1, vm1 = _memory_kb()
    objects1 = len(gc.get_objects())
    import threading
    return dict(mode=mode, cycles=cycles, warmup=warmup, failures=failures,
                threads=threading.active_count(),
                rss_kb=[rss0, rss1], vmsize_kb=[vm0, vm1], objects=[objects0, objects1],
                rss_per_cycle_kb=(rss1 - rss0) / cycles, vmsize_per_cycle_kb=(vm1 - vm0) / cycles)


# --- the tests -----------------------------------------------------------------------------
def run_soak(mode, target, cycles, prefix=(), timeout=600):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    p = subprocess.run(list(prefix) + [sys.executable, os.path.abspath(__file__), mode, target,
                                       str(cycles)],
                       capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


def check_bounded(r):
    print(json.dumps(r))                 # the figures, for the record (pytest -s shows them)
    assert r["failures"] == 0, r
    assert r["rss_kb"][1] - r["rss_kb"][0] <= BOUND_KB, r
    assert r["vmsize_kb"][1] - r["vmsize_kb"][0] <= BOUND_KB, r
    # what stays alive is Python objects first: a handful in all, not ~100 per cycle
    assert r["objects"][1] - r["objects"][0] <= 200, r
    assert r["threads"] <= 4, r          # the main thread and idle workers, reused


@pytest.fixture(scope="module")
def trace(tmp_path_factory):
    sys.path.insert(0, ROOT)
    from tools.gentrace import write_trace
    path = str(tmp_path_factory.mktemp("soak") / "soak.pcap")
    write_trace(path, 2000, seed=11)
    return path


def test_a_thousand_offline_device_lifecycles_do_not_grow(trace):
    check_bounded(run_soak("offline", trace, 1000))


def test_ten_thousand_flow_cycles_on_one_device_do_not_grow(trace):
    check_bounded(run_soak("flows", trace, 10000))


@pytest.mark.parametrize("backend", ["ring", "nic"])
def test_live_device_open_close_cycles_on_a_veth_do_not_grow(backend):
    sys.path.insert(0, ROOT)
    from tools import netns
    from helpers import need_netns
    need_netns("live soak")
    with netns.VethPair() as net:
        r = run_soak("live", "%s:%s" % (backend, net.rx_if), 300,
                     prefix=["ip", "netns", "exec", net.ns_rx])
    check_bounded(r)


if __name__ == "__main__":
    mode, target, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    print(json.dumps(soak(mode, target, n)))
