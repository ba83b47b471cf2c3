"""Watch time-driven results on a live device while traffic comes and after it stops.

    python tests/helpers/timewatch.py SPEC_JSON        (run inside the capturing namespace)

SPEC: dev, interval (ns), idle_timeout (ns), quiet_s (seconds to keep watching once packets
stopped), timeout_s, filter (a BPF expression, "" for all).  The flows:
  0  [BPF_FILTER] PKT_COUNTER, PKT_RATE(interval), BIT_RATE(interval)
  1  BUCKET(flow 0's counter, interval, reset=True)
  2  THRESHOLD(LESS, flow 0's counter, 1, interval): an event for every interval without packets
  3  [BPF_FILTER] FLOW_REPORT("ipfix", udp to a socket of this process, idle_timeout)
Prints READY once connected, then every 50 ms an observation of every result (with the wall
clock), and at the end one JSON document: {"obs": [...], "events": [[wall_ns, ts], ...],
"received": datagrams the FLOW_REPORT socket got, "info": device info}.
"""
import json
import socket
import sys
import threading
import time

import mapi


def flows(spec, dest):
    dev = spec["dev"]
    expr = spec.get("filter", "")
    f0 = mapi.create_flow(dev)
    if expr:
        mapi.apply_function(f0, "BPF_FILTER", expr)
    count = mapi.apply_function(f0, "PKT_COUNTER")
    rate = mapi.apply_function(f0, "PKT_RATE", spec["interval"])
    bits = mapi.apply_function(f0, "BIT_RATE", spec["interval"])
    mapi.connect(f0)
    f1 = mapi.create_flow(dev)
    bucket = mapi.apply_function(f1, "BUCKET", (f0, count), spec["interval"], True)
    mapi.connect(f1)
    f2 = mapi.create_flow(dev)
    th = mapi.apply_function(f2, "THRESHOLD", mapi.LESS, (f0, count), 1, spec["interval"])
    mapi.connect(f2)
    f3 = mapi.create_flow(dev)
    if expr:
        mapi.apply_function(f3, "BPF_FILTER", expr)
    rep = mapi.apply_function(f3, "FLOW_REPORT", "ipfix", dest, idle_timeout=spec["idle_timeout"],
                              tcp_end_timeout=spec["idle_timeout"], active_timeout="10m")
    mapi.connect(f3)
    return dict(count=(f0, count), rate=(f0, rate), bits=(f0, bits), bucket=(f1, bucket),
                threshold=(f2, th), report=(f3, rep))


def observe(refs):
    out = dict(t=time.time_ns())
    for name, (fd, fid) in refs.items():
        r = mapi.read_results(fd, fid)
        v = r.value
        if name == "bucket":
            v = [list(e) for e in v]
        elif isinstance(v, float):
            v = float(v)
        out[name] = [v, r.ts]
    return out


def main(spec, on_ready=None):
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sink.settimeout(0.2)
    received = []

    def listen():
        while not done.is_set():
            try:
                received.append(len(sink.recv(65536)))
            except socket.timeout:
                pass
    done = threading.Event()
    threading.Thread(target=listen, daemon=True).start()
    refs = flows(spec, "udp:127.0.0.1:%d" % sink.getsockname()[1])
    events = []
    mapi.set_event_callback(*refs["threshold"], lambda ev: events.append([time.time_ns(), ev.ts]))
    if on_ready is None:
        print("READY", flush=True)
    else:
        on_ready()
    obs = []
    deadline = time.time() + spec.get("timeout_s", 60)
    quiet_since = None
    last = 0
    while time.time() < deadline:
        o = observe(refs)
        obs.append(o)
        if o["count"][0] != last:
            last, quiet_since = o["count"][0], time.time()
        elif last and time.time() - quiet_since >= spec["quiet_s"]:
            break
        time.sleep(0.05)
    info = mapi.get_device_info(spec["dev"])
    for fd, _ in refs.values():
        try:
            mapi.close_flow(fd)
        except mapi.MapiError:
            pass
    done.set()
    return dict(obs=obs, events=events, received=received,
                info={k: v for k, v in info.items() if isinstance(v, (int, str, float))})


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))), flush=True)
