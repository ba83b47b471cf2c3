"""A connect waits for no batch: the new plan is built by the caller and the engine installs it
between two batches.  Shown where the batch under way cannot end: a lossless buffer nobody reads
holds the engine inside its first batch, and a flow connected meanwhile (in-process and through
mapid) returns at once and sees exactly the packets from the next batch on."""
import threading
import time

import pytest

import mapi
from helpers.server import Mapid, open_dir, trace

PACKETS = 200000


@pytest.fixture(scope="module")
def tracefile():
    return trace(open_dir("scampi-server-replan-"), PACKETS, seed=31)


@pytest.fixture(params=["in-process", "mapid"])
def where(request, tmp_path):
    if request.param == "in-process":
        yield
        return
    with Mapid(tmp_path) as m:
        mapi.use_server(m.url)
        try:
            yield
        finally:
            mapi.use_server(None)


def test_connect_while_a_batch_is_held(tracefile, where):
    dev = mapi.create_offline_device(str(tracefile))
    try:
        held = mapi.create_flow(dev)            # 1 MiB, lossless, unread: the first batch stops
        hbuf = mapi.apply_function(held, "TO_BUFFER", mapi.WAIT, 1 << 20)
        mapi.connect(held)
        mapi.start_offline_device(dev)
        while mapi.read_results(held, hbuf).value["written"] == 0:
            time.sleep(0.01)                    # the engine is inside its first batch now
        late = mapi.create_flow(dev)
        count = mapi.apply_function(late, "PKT_COUNTER")
        buf = mapi.apply_function(late, "TO_BUFFER", mapi.WAIT, 64 << 20)
        done = threading.Event()
        t = threading.Thread(target=lambda: (mapi.connect(late), done.set()))
        t.start()
        # not a timing bound: before the change this connect waited until `held` was read
        assert done.wait(60), "connect waited for the batch under way"
        assert mapi.read_results(held, hbuf).value["delivered"] == 0     # still held
        seqs = []
        reader = threading.Thread(target=lambda: mapi.loop(late, buf, 0, lambda p: seqs.append(p.seq)))
        reader.start()
        held_seqs = []
        mapi.loop(held, hbuf, 0, lambda p: held_seqs.append(p.seq))
        reader.join(60)
        mapi.wait_offline_device(dev)
        t.join()
        assert held_seqs == list(range(PACKETS))
        first = seqs[0]
        # every packet from a batch boundary on, none before it, none twice
        assert first > 0 and seqs == list(range(first, PACKETS))
        assert mapi.read_results(late, count).value == PACKETS - first
    finally:
        mapi.delete_offline_device(dev)
