"""A device graph's walks are made once per version: nodes() is one tuple until a flow comes
or goes; selectivity() (what order_chain ranks commuting filters by) is each node's measured
packets out / packets in, and sees a flow attached since; closing a flow walks its own nodes
and removes those nobody else owns."""
import time

import mapi
from mapi import api


def test_walks_follow_the_graph(tmp_path):
    from tools.gentrace import write_trace
    path = str(tmp_path / "t.pcap")
    write_trace(path, 2000, seed=7)
    dev = mapi.create_offline_device(path)
    a = mapi.create_flow(dev)
    mapi.apply_function(a, "BPF_FILTER", "udp")
    ca = mapi.apply_function(a, "PKT_COUNTER")
    mapi.connect(a)
    graph = api.find_device(dev).graph
    first = graph.nodes()
    assert graph.nodes() is first and len(first) == 2
    mapi.start_offline_device(dev)
    mapi.wait_offline_device(dev)
    udp = mapi.read_results(a, ca).value
    assert 0 < udp < 2000
    b = mapi.create_flow(dev)
    mapi.apply_function(b, "BPF_FILTER", "tcp")
    mapi.connect(b)
    after = graph.nodes()
    assert after is not first and len(after) == 3
    measured = graph.selectivity()
    bpf_udp = next(n for n in after if n.args == ("udp",))
    # the replay's counts reached the node when its plan was replaced (harvest)
    assert bpf_udp.hits_in == 2000 and bpf_udp.hits_out == udp
    assert measured[bpf_udp.key] == udp / 2000
    c = mapi.create_flow(dev)                   # shares the "udp" node with a
    mapi.apply_function(c, "BPF_FILTER", "udp")
    mapi.apply_function(c, "BYTE_COUNTER")
    mapi.connect(c)
    assert len(graph.nodes()) == 4
    mapi.close_flow(a)
    # a's counter goes; the filter stays for c, which now owns it alone
    left = graph.nodes()
    assert sorted(n.desc.name for n in left) == ["BPF_FILTER", "BPF_FILTER", "BYTE_COUNTER"]
    assert bpf_udp in left and {o[0] for o in bpf_udp.owners} == {c}
    mapi.close_flow(c)
    assert [n.args for n in graph.nodes()] == [("tcp",)]
    mapi.close_flow(b)
    assert graph.nodes() == ()
    mapi.delete_offline_device(dev)


def test_a_flow_closed_during_a_replay_has_its_functions_closed(tmp_path):
    """Closing a flow while its replay runs leaves the new plan to the planner; the closed
    flow's functions are closed once a plan without them is installed, also when the replay
    ends first."""
    from mapi._engine import ffi
    from tools.gentrace import write_trace
    path = str(tmp_path / "t.pcap")
    write_trace(path, 30000, seed=8)
    dev = mapi.create_offline_device(path)
    a = mapi.create_flow(dev)
    abuf = mapi.apply_function(a, "TO_BUFFER", mapi.WAIT, 1 << 20)    # holds the replay back
    mapi.connect(a)
    b = mapi.create_flow(dev)
    mapi.apply_function(b, "BPF_FILTER", "udp")
    bbuf = mapi.apply_function(b, "TO_BUFFER", mapi.NOWAIT, 1 << 20)
    mapi.connect(b)
    gone = api.function_instance(b, bbuf)
    mapi.start_offline_device(dev)
    assert mapi.get_next_pkt(a, abuf) is not None
    assert api.find_device(dev).state == "running"
    mapi.close_flow(b)
    n, _ = api.function_instance(a, abuf).drain_all()
    mapi.wait_offline_device(dev)
    assert 1 + n == 30000
    deadline = time.monotonic() + 10          # the planner's install may come after the end
    while gone.ring != ffi.NULL:                # TO_BUFFER.close() ran
        assert time.monotonic() < deadline, "the closed flow's TO_BUFFER was never closed"
        time.sleep(0.01)
    assert all(b not in {o[0] for o in node.owners} for node in api.find_device(dev).graph.nodes())
    mapi.close_flow(a)
    mapi.delete_offline_device(dev)


def test_deleting_a_device_leaves_no_plan_work_behind(tmp_path):
    """Deleting a replaying device closes its flows (their new plans left to the planner) and
    returns only once no build of its plan is queued or running and every closed flow's
    functions are closed."""
    from mapi._engine import ffi
    from mapi.planslot import PLANNER
    from tools.gentrace import write_trace
    path = str(tmp_path / "t.pcap")
    write_trace(path, 30000, seed=9)
    for _ in range(3):
        dev = mapi.create_offline_device(path)
        fds, buffers = [], []
        for i in range(4):
            fd = mapi.create_flow(dev)
            mapi.apply_function(fd, "BPF_FILTER", "udp" if i % 2 else "tcp")
            buf = mapi.apply_function(fd, "TO_BUFFER", mapi.WAIT, 1 << 20)   # nobody reads
            mapi.connect(fd)
            fds.append(fd)
            buffers.append(api.function_instance(fd, buf))
        d = api.find_device(dev)
        mapi.start_offline_device(dev)
        time.sleep(0.01)
        # the planner busy with another device's build: the close's own build waits queued
        other = object()
        PLANNER.request(other, lambda: time.sleep(0.2))
        mapi.close_flow(fds[0])                         # while the replay runs
        mapi.delete_offline_device(dev)
        assert all(inst.ring == ffi.NULL for inst in buffers)
        assert PLANNER._building is not d and d not in PLANNER._queue
        PLANNER.settle(other)                          # the planner idle again
