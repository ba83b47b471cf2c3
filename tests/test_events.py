"""The events API: callback, blocking read and async iterator deliver the same events - the
ones computed by hand from tcpdump's record list - and the queue is bounded with a count of
what it dropped."""
import asyncio
import threading
import time

import pytest

import mapi
from mapi.events import EventQueue
from helpers import CORPUS, generated, inputs, replay
from helpers.intervals import S, interval_sums, packet_intervals, selected

PCAP = CORPUS / "pcap"
HTTP = generated("slow.pcap")            # ~15 minutes of sparse traffic, some of it on port 80


def threshold_flows(dev, specs):
    fa = mapi.create_flow(dev)
    mapi.apply_function(fa, "BPF_FILTER", "tcp port 80")
    cnt = mapi.apply_function(fa, "PKT_COUNTER")
    mapi.connect(fa)
    fd = mapi.create_flow(dev)
    ids = [mapi.apply_function(fd, "THRESHOLD", kind, (fa, cnt), *rest) for kind, *rest in specs]
    mapi.connect(fd)
    return fd, ids


SPECS = [(mapi.GREATER, 99), (mapi.GREATER, 5, "60s"), (mapi.LESS, 20, "60s")]


def reference():
    """SPECS on the tcp port 80 packets: the 100th; the 6th of each 60 s interval with more
    than 5; the end of each complete 60 s interval with fewer than 20."""
    sel = selected(HTTP, "tcp port 80")
    sums, n, t0 = interval_sums(HTTP, 60 * S, "tcp port 80")
    first = [(sel[99][1], 100, sel[99][0])]
    ks = {}
    kk, _ = packet_intervals(HTTP, 60 * S)
    for i, ts, _ in sel:
        ks.setdefault(kk[i], []).append((i, ts))
    above = [(ks[k][5][1], 6, ks[k][5][0]) for k in sorted(ks) if len(ks[k]) > 5]
    below = [(t0 + (k + 1) * 60 * S, sums.get(k, 0), None) for k in range(n - 1)
             if sums.get(k, 0) < 20]
    return [first, above, below]


def as_tuples(events):
    return [(e.ts, e.value, e.seq) for e in events]


def test_callback_blocking_and_async_deliver_the_same_events():
    want = reference()
    assert all(want)

    # callback: set before the replay, called from the engine's thread
    seen, threads = [[] for _ in SPECS], set()
    dev = mapi.create_offline_device(str(HTTP))
    fd, ids = threshold_flows(dev, SPECS)
    def keeper(out):
        def keep(ev):
            out.append(ev)
            threads.add(threading.current_thread().name)
        return keep
    for out, fid in zip(seen, ids):
        mapi.set_event_callback(fd, fid, keeper(out))
    mapi.start_offline_device(dev)
    mapi.wait_offline_device(dev, timeout=60)
    by_callback = [as_tuples(s) for s in seen]
    first = seen[0][0]
    assert isinstance(first, mapi.Event) and (first.fd, first.fid) == (fd, ids[0])
    assert all(t.startswith("mapi-engine") for t in threads)
    assert [mapi.get_next_event(fd, fid) for fid in ids] == [None] * len(ids)
    mapi.delete_offline_device(dev)

    # blocking reads, from a thread that reads while the replay runs
    dev = mapi.create_offline_device(str(HTTP))
    fd, ids = threshold_flows(dev, SPECS)
    blocking = [[] for _ in SPECS]

    def reader(fid, out):
        while True:
            ev = mapi.get_next_event(fd, fid)
            if ev is None:
                return
            out.append(ev)
    readers = [threading.Thread(target=reader, args=(fid, out)) for fid, out in zip(ids, blocking)]
    for t in readers:
        t.start()
    mapi.start_offline_device(dev)
    for t in readers:
        t.join(60)
        assert not t.is_alive()
    by_blocking = [as_tuples(b) for b in blocking]
    mapi.delete_offline_device(dev)

    # async iterators, all three at once
    dev = mapi.create_offline_device(str(HTTP))
    fd, ids = threshold_flows(dev, SPECS)

    async def collect(fid):
        return [ev async for ev in mapi.events(fd, fid)]

    async def main():
        tasks = [asyncio.ensure_future(collect(fid)) for fid in ids]
        await asyncio.sleep(0)
        mapi.start_offline_device(dev)
        return await asyncio.wait_for(asyncio.gather(*tasks), 60)
    by_async = [as_tuples(a) for a in asyncio.run(main())]
    mapi.delete_offline_device(dev)

    assert by_callback == by_blocking == by_async == want


def test_events_queued_before_a_callback_is_set_go_to_it_first():
    dev = mapi.create_offline_device(str(HTTP))
    fd, ids = threshold_flows(dev, [(mapi.GREATER, 5, "60s")])
    mapi.start_offline_device(dev)
    mapi.wait_offline_device(dev, timeout=60)       # all events are queued by now
    got = []
    mapi.set_event_callback(fd, ids[0], got.append)  # nothing calls it any more: the stream ended
    assert got == []
    assert as_tuples([mapi.get_next_event(fd, ids[0])]) == reference()[1][:1]
    mapi.delete_offline_device(dev)


def test_a_failing_callback_is_counted_and_the_engine_goes_on():
    dev = mapi.create_offline_device(str(HTTP))
    fd, ids = threshold_flows(dev, [(mapi.GREATER, 5, "60s"), (mapi.GREATER, 99)])
    calls = []

    def broken(ev):
        calls.append(ev)
        raise RuntimeError("callback bug")
    mapi.set_event_callback(fd, ids[0], broken)
    mapi.start_offline_device(dev)
    mapi.wait_offline_device(dev, timeout=60)
    want = reference()
    assert as_tuples(calls) == want[1]
    assert mapi.get_function_info(fd, ids[0])["callback_errors"] == len(want[1])
    assert as_tuples([mapi.get_next_event(fd, ids[1])]) == want[0]      # the other one unharmed
    mapi.delete_offline_device(dev)


@pytest.mark.parametrize("name", inputs([generated("years.pcap"), "zeek__ssh__ssh.pcap"], base="pcap"))
def test_queue_is_bounded_and_counts_what_it_dropped(name):
    # LESS 1 per second over three years of ssh.pcap: ~97 million empty seconds, each an event
    path = PCAP / name
    sums, n, t0 = interval_sums(path, S)
    complete = n - 1
    firing = complete - sum(1 for k, v in sums.items() if k < complete and v >= 1)

    def setup(dev):
        fa = mapi.create_flow(dev)
        cnt = mapi.apply_function(fa, "PKT_COUNTER")
        mapi.connect(fa)
        fd = mapi.create_flow(dev)
        fid = mapi.apply_function(fd, "THRESHOLD", mapi.LESS, (fa, cnt), 1, "1s")
        mapi.connect(fd)
        return fd, fid
    dev, (fd, fid) = replay(path, setup)
    info = mapi.get_function_info(fd, fid)
    assert info["events_pending"] == EventQueue.CAPACITY
    assert info["events_pending"] + info["events_dropped"] == firing
    first = mapi.get_next_event(fd, fid)
    empty = next(k for k in range(complete) if sums.get(k, 0) == 0)
    assert (first.ts, first.value) == (t0 + (empty + 1) * S, 0)
    mapi.delete_offline_device(dev)


def test_timeouts_end_of_stream_and_closing_wake_readers():
    dev = mapi.create_offline_device(str(HTTP))
    fd, ids = threshold_flows(dev, [(mapi.GREATER, 10 ** 6)])      # never fires
    with pytest.raises(mapi.MapiError) as e:
        mapi.get_next_event(fd, ids[0], timeout=0.01)               # not started: nothing comes
    assert e.value.code == 1016
    result = []
    t = threading.Thread(target=lambda: result.append(mapi.get_next_event(fd, ids[0])))
    t.start()
    queue = mapi.events._queue_of(fd, ids[0])
    for _ in range(60000):                   # until the reader waits (CPython's Condition keeps
        if queue._cv._waiters:               # its waiters in _waiters)
            break
        time.sleep(0.001)
    assert queue._cv._waiters
    mapi.close_flow(fd)                                              # wakes the blocked reader
    t.join(60)
    assert not t.is_alive() and result == [None]
    with pytest.raises(mapi.MapiError) as e:
        mapi.get_next_event(fd, ids[0])
    assert e.value.code == 1008
    mapi.delete_offline_device(dev)


def test_event_api_errors():
    dev = mapi.create_offline_device(str(HTTP))
    try:
        fa = mapi.create_flow(dev)
        cnt = mapi.apply_function(fa, "PKT_COUNTER")
        with pytest.raises(mapi.MapiError) as e:
            mapi.get_next_event(fa, cnt)
        assert e.value.code == 1007                                  # not connected yet
        mapi.connect(fa)
        for call in (lambda: mapi.get_next_event(fa, cnt), lambda: mapi.events(fa, cnt),
                     lambda: mapi.set_event_callback(fa, cnt, print)):
            with pytest.raises(mapi.MapiError) as e:
                call()
            assert e.value.code == 1020 and "THRESHOLD" in str(e.value)
        with pytest.raises(mapi.MapiError) as e:
            mapi.get_next_event(fa, 42)
        assert e.value.code == 1002
        fd, ids = threshold_flows(dev, [(mapi.GREATER, 1)])
        with pytest.raises(mapi.MapiError) as e:
            mapi.set_event_callback(fd, ids[0], "print")
        assert e.value.code == 1005 and e.value.where["argument"] == "fn"
        with pytest.raises(mapi.MapiError) as e:
            mapi.get_next_event(fd, ids[0], timeout=-1)
        assert e.value.code == 1005
    finally:
        mapi.delete_offline_device(dev)


def test_mapi_events_is_both_the_module_and_the_iterator_factory():
    import mapi.events as module
    assert module is mapi.events and mapi.events.Event is mapi.Event
    assert callable(mapi.events)
