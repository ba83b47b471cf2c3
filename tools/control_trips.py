"""The control round trip of tools/bench_server.py: a flow made and connected while packets
flow, in the shapes the issue names, with its floor of bare exchanges beside it; and the
percentile the bench prints."""
import time

import mapi


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
    timed after it, under ("echo", round trips)."""
    out = {}
    i = 0
    while True:
        dev = pick()
        if dev is None:
            return out
        shape = SHAPES[(i // 2) % len(SHAPES)]
        applies, together = shape
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
        t = time.perf_counter()
        mapi.close_flow(fd)                     # waits for the batch under way: not a trip
        out.setdefault(("close", dev), []).append((time.perf_counter() - t) * 1000)
        if floor is not None:
            t = time.perf_counter()
            floor.trip(trip_calls(shape))
            out.setdefault(("echo", trip_calls(shape)), []).append(
                (time.perf_counter() - t) * 1000)
        i += 1
        time.sleep(pause)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))] if xs else float("nan")
