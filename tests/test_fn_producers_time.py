"""The producers (DEFRAG, COOKING, FLOW_REPORT) under the engine's own plan, batch by batch: on a
live device an idle link still makes the engine call them, with a batch that holds no packet and
carries the device clock (mapi_batch.clock_ns); what they hold must be released by its timeouts
then, as packets would have made it.  Also: the memory of a batch is the source's again once the
call returns (the rig overwrites it), so whatever waits must have been copied."""
import dpkt

from helpers.pktbuild import Conversation, ether, udp4
from helpers.plans import ProducerRig, instance
from scampi.plugins.stdfuncs.cooking import chunk_info

T0 = 1_700_000_000 * 10 ** 9
MS = 10 ** 6
S = 10 ** 9


def timed(frames, start=T0, step=MS):
    return [(start + k * step, f) for k, f in enumerate(frames)]


def test_cooking_releases_waiting_bytes_on_an_idle_tick():
    rig = ProducerRig(instance("COOKING", release="conversation", flush_timeout="1s",
                               idle_timeout="10s"))
    conv = Conversation().handshake()
    conv.send(0, b"GET / HTTP/1.1\r\n")
    conv.send(0, b"\r\n")                          # waits for the server, who never answers
    assert rig.run(timed(conv.frames)) == []
    assert rig.run([], clock_ns=T0 + 500 * MS) == []                # not yet a second
    made = rig.run([], clock_ns=T0 + 2 * S)
    assert [(ts, chunk_info(b).data) for ts, b in made] == [(T0 + 2 * S, b"GET / HTTP/1.1\r\n\r\n")]
    st = rig.inst.result()[0]
    assert st["active"] == 1 and st["held_bytes"] > 0 and st["idle_expired"] == 0
    assert rig.run([], clock_ns=T0 + 11 * S) == []                   # idle: forgotten
    st = rig.inst.result()[0]
    assert st["active"] == 0 and st["idle_expired"] == 1 and st["held_bytes"] == 0
    assert rig.drain() == []


def test_cooking_copies_what_waits_before_the_batch_goes_back():
    """One direction's bytes wait over many batches (conversation order, the other side
    silent); each batch's memory is overwritten after its call; the chunk holds the bytes."""
    rig = ProducerRig(instance("COOKING", release="conversation", flush_timeout="1h"))
    conv = Conversation().handshake()
    rig.run(timed(conv.frames))
    sent = b""
    for k in range(20):
        part = bytes([65 + k]) * (100 + 37 * k)
        sent += part
        conv.send(0, part)
        assert rig.run(timed([conv.frames[-1]], start=T0 + (k + 1) * S)) == []
    conv.send(1, b"ok")                            # the server speaks: the request is released
    made = rig.run(timed([conv.frames[-1]], start=T0 + 30 * S))
    assert [chunk_info(b).data for _, b in made] == [sent]
    assert [chunk_info(b).data for _, b in rig.drain()] == [b"ok"]


def test_cooking_segment_release_needs_no_tick():
    rig = ProducerRig(instance("COOKING"))
    conv = Conversation().handshake()
    conv.send(0, b"hello")
    made = rig.run(timed(conv.frames))
    assert [chunk_info(b).data for _, b in made] == [b"hello"]
    assert rig.run([], clock_ns=T0 + 100 * S) == [] and rig.inst.result()[0]["active"] == 0


def fragment(payload, off, more, ident=5):
    ip = dpkt.ip.IP(src=b"\x0a\0\0\x01", dst=b"\x0a\0\0\x02", p=17, id=ident, ttl=64, data=payload)
    ip.offset, ip.mf = off // 8, int(more)
    ip.len = 20 + len(payload)
    return ether(bytes(ip))


def test_defrag_gives_up_on_an_idle_tick():
    rig = ProducerRig(instance("DEFRAG", timeout="30s"))
    assert rig.run(timed([fragment(b"a" * 32, 0, True)])) == []
    assert rig.run([], clock_ns=T0 + 20 * S) == []
    assert rig.inst.result()[0]["held_datagrams"] == 1
    rig.run([], clock_ns=T0 + 46 * S)              # past the timeout and its next check (t/2)
    st = rig.inst.result()[0]
    assert st["timeouts"] == 1 and st["held_datagrams"] == 0 and st["given_up_fragments"] == 1
    # a datagram that completes passes; the clock does not make it wait
    made = rig.run(timed([fragment(b"b" * 16, 0, True, 6), fragment(b"c" * 8, 16, False, 6)],
                         start=T0 + 50 * S))
    assert len(made) == 1 and made[0][1].endswith(b"b" * 16 + b"c" * 8)


def test_flow_report_ends_idle_flows_on_an_idle_tick():
    rig = ProducerRig(instance("FLOW_REPORT", idle_timeout="15s", active_timeout="1h"))
    u = ether(udp4("10.0.0.1", "10.0.0.2", 1000, 53, b"q"))
    assert rig.run(timed([u, u])) == []
    assert rig.run([], clock_ns=T0 + 10 * S) == []
    made = rig.run([], clock_ns=T0 + 16 * S)
    assert len(made) == 1 and made[0][0] == T0 + 16 * S
    st = rig.inst.result()[0]
    assert st["idle"] == 1 and st["active"] == 0 and st["records"] == 1
    assert rig.drain() == []


def test_the_clock_reaches_a_producer_after_a_producer():
    """DEFRAG hands COOKING its (empty) batch with the clock: COOKING's timeouts run too."""
    cook = instance("COOKING", release="conversation")
    rig = ProducerRig(instance("DEFRAG"), cook)
    conv = Conversation().handshake()
    conv.send(0, b"waiting")
    assert rig.run(timed(conv.frames)) == []
    assert cook.result()[0]["held_bytes"] > 0
    made = rig.run([], clock_ns=T0 + 5 * S)
    assert [chunk_info(b).data for _, b in made] == [b"waiting"]
