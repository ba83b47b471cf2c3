"""The control round trip of tools/bench_server.py: a flow made and connected while packets
flow, in the shapes the issue names, with its floor of bare exchanges beside it; and the
percentile the bench prints."""
import time

import mapi


def waited_ns():
    """Nanoseconds the calling thread has spent runnable but waiting for a core (the kernel's
    schedstat run_delay), or None where the kernel does not keep it."""
    try:
        with open("/proc/thread-self/schedstat") as f:
            return int(f.read().split()[1])
    except (OSError, IndexError, ValueError):
        return None


# the control round trip: the (create_flow + apply + connect, the apply a PKT_COUNTER),
# the usual shape of a flow (a filter, then a counter), and the as one request
# (create_flow_with), in turn: (applies, as one request)
SHAPES = ((1, False), (2, False), (1, True))


def trip_name(shape):
    applies, together = shape
    if together:
        return "create_flow_with(PKT_COUNTER), one request"
    return "create_flow + %s + connect" % ("apply" if applies == 1 else "%d apply" % applies)


def trip_calls(shape):
    """The round trips a trip makes: create_flow, its applies, connect; or the one request."""
    applies, together = shape
    return 1 if together else applies + 2


def control_round_trips(pick, pause=0.001, floor=None):
    """A flow made and connected on the device pick() names (None: stop), in each shape of
    SHAPES in turn, and closed afterwards (not timed).  {(device, shape): [ms]}, closes under
    ("close", device).  The shapes take turns every two trips (pick alternates two devices):
    one apply is a PKT_COUNTER, two a BPF_FILTER and a PKT_COUNTER; as one request the
    PKT_COUNTER's create_flow_with.  Trips follow each other `pause` apart for as long as the
    replay runs: a few hundred per row, so that the p99 printed is not simply the slowest
    trip.  floor (tools.floors.Echo): as many bare exchanges as the trip had round trips are
    timed after it, under ("echo", round trips).  The time the calling thread waited for a core
    during each trip goes under ("waited", key), in the order of the trips."""
    out = {}
    i = 0
    while True:
        dev = pick()
        if dev is None:
            return out
        shape = SHAPES[(i // 2) % len(SHAPES)]
        applies, together = shape
        w = waited_ns()
        t = time.perf_counter()
        if together:
            fd, _ = mapi.create_flow_with(dev, ["PKT_COUNTER"])
        else:
            fd = mapi.create_flow(dev)
            if applies > 1:
                mapi.apply_function(fd, "BPF_FILTER", "udp port %d" % (1000 + i % 4))
            mapi.apply_function(fd, "PKT_COUNTER")
            mapi.connect(fd)
        out.setdefault((dev, shape), []).append((time.perf_counter() - t) * 1000)
        if w is not None:
            out.setdefault(("waited", (dev, shape)), []).append((waited_ns() - w) / 1e6)
        t = time.perf_counter()
        mapi.close_flow(fd)                     # timed apart: no part of the trip
        out.setdefault(("close", dev), []).append((time.perf_counter() - t) * 1000)
        if floor is not None:
            t = time.perf_counter()
            floor.trip(trip_calls(shape))
            out.setdefault(("echo", trip_calls(shape)), []).append(
                (time.perf_counter() - t) * 1000)
        i += 1
        time.sleep(pause)


def waits(trips, waited, share=0.01):
    """What the calling thread's waits for a core make of the trips: (mean ms of the slowest
    `share`, mean ms of it waiting, p99 ms of each trip less its waiting), or None."""
    if not trips or len(waited) != len(trips):
        return None
    # a wait is at most its trip (the kernel's clock may count a stolen vCPU's time into it)
    waited = [min(w, t) for t, w in zip(trips, waited)]
    slow = sorted(zip(trips, waited), reverse=True)[:max(1, int(len(trips) * share))]
    return (sum(t for t, _ in slow) / len(slow), sum(w for _, w in slow) / len(slow),
            pct([t - w for t, w in zip(trips, waited)], 99))


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))] if xs else float("nan")
