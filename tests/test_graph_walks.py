"""A device graph's walks are made once per version: nodes() is one tuple until a flow comes
or goes; selectivity() (what order_chain ranks commuting filters by) is each node's measured
packets out / packets in, and sees a flow attached since; closing a flow walks its own nodes
and removes those nobody else owns."""
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
