"""A connect waits for no batch: the new plan is built by the caller and the engine installs it
between two batches.  Shown where the batch under way cannot end: a lossless buffer nobody reads
holds the engine inside its first batch, and a flow connected meanwhile (in-process and through
mapid) returns at once and sees exactly the packets from the next batch on."""
import threading
import time

import pytest

import mapi
from helpers import tcpdump_records
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


def test_connects_that_come_together_all_join(tracefile, where):
    """Several flows connected at once while the engine is held: their plan is built off the
    calling thread (one build may cover several connects); each flow still sees exactly the
    packets from one batch boundary on, and its counter agrees with its buffer."""
    dev = mapi.create_offline_device(str(tracefile))
    try:
        held = mapi.create_flow(dev)
        hbuf = mapi.apply_function(held, "TO_BUFFER", mapi.WAIT, 1 << 20)
        mapi.connect(held)
        mapi.start_offline_device(dev)
        while mapi.read_results(held, hbuf).value["written"] == 0:
            time.sleep(0.01)
        late = []
        for i in range(8):
            fd = mapi.create_flow(dev)
            late.append((fd, mapi.apply_function(fd, "BPF_FILTER", "ip or not ip"),
                         mapi.apply_function(fd, "PKT_COUNTER"),
                         mapi.apply_function(fd, "TO_BUFFER", mapi.WAIT, 64 << 20)))
        threads = [threading.Thread(target=mapi.connect, args=(fd,)) for fd, *_ in late]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        seqs = {fd: [] for fd, *_ in late}
        readers = [threading.Thread(target=lambda fd=fd, buf=buf: mapi.loop(
            fd, buf, 0, lambda p: seqs[fd].append(p.seq))) for fd, _, _, buf in late]
        for r in readers:
            r.start()
        mapi.loop(held, hbuf, 0, lambda p: None)
        for r in readers:
            r.join(60)
        mapi.wait_offline_device(dev)
        for fd, _, count, _ in late:
            got = seqs[fd]
            assert got and got == list(range(got[0], PACKETS)), fd
            assert mapi.read_results(fd, count).value == len(got)
    finally:
        mapi.delete_offline_device(dev)


def test_close_waits_for_no_batch_unless_it_writes_a_file(tracefile, where, tmp_path):
    """Closing a flow while the engine is held inside a batch returns at once (what the flow
    used is freed once the engine runs a plan without it); the flows that stay count every
    packet.  A flow that writes a file is different: its close returns once the file is
    complete, which here is after the held batch was let go."""
    dev = mapi.create_offline_device(str(tracefile))
    try:
        held = mapi.create_flow(dev)
        hbuf = mapi.apply_function(held, "TO_BUFFER", mapi.WAIT, 1 << 20)
        mapi.connect(held)
        stays = mapi.create_flow(dev)
        mapi.apply_function(stays, "BPF_FILTER", "ip or not ip")
        count = mapi.apply_function(stays, "PKT_COUNTER")
        mapi.connect(stays)
        goes = mapi.create_flow(dev)
        mapi.apply_function(goes, "BPF_FILTER", "udp")
        mapi.apply_function(goes, "PKT_COUNTER")
        mapi.apply_function(goes, "TO_BUFFER", mapi.NOWAIT, 1 << 20)
        mapi.connect(goes)
        path = str(tmp_path / "written.pcap")
        writes = mapi.create_flow(dev)
        mapi.apply_function(writes, "TO_FILE", mapi.MFF_PCAP, path)
        mapi.connect(writes)
        mapi.start_offline_device(dev)
        while mapi.read_results(held, hbuf).value["written"] == 0:
            time.sleep(0.01)                    # the engine is inside its first batch now
        closed = threading.Event()
        t = threading.Thread(target=lambda: (mapi.close_flow(goes), closed.set()))
        t.start()
        # not a timing bound: before the change this close waited until `held` was read
        assert closed.wait(60), "close_flow waited for the batch under way"
        assert mapi.read_results(held, hbuf).value["delivered"] == 0     # still held
        file_closed = threading.Event()
        w = threading.Thread(target=lambda: (mapi.close_flow(writes), file_closed.set()))
        w.start()
        held_seqs = []
        mapi.loop(held, hbuf, 0, lambda p: held_seqs.append(p.seq))
        w.join(60)
        t.join(60)
        assert file_closed.is_set()
        mapi.wait_offline_device(dev)
        assert held_seqs == list(range(PACKETS))
        assert mapi.read_results(stays, count).value == PACKETS
        # the file was complete when close_flow returned: the trace's first packets, whole
        got, err = tcpdump_records(path)
        assert got and "truncated" not in err
        assert got == tcpdump_records(str(tracefile))[0][:len(got)]
        with pytest.raises(mapi.MapiError):
            mapi.read_results(goes, 1)
    finally:
        mapi.delete_offline_device(dev)
