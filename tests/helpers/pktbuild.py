"""Hand-built packets and traces for the tests of COOKING, DEFRAG, FLOW_REPORT and ANONYMIZE
(dpkt builds them, so checksums and lengths are dpkt's, not ours)."""
import socket

import dpkt
import pytest

MAC_A = b"\x02\x00\x00\x00\x00\x01"
MAC_B = b"\x02\x00\x00\x00\x00\x02"


def ip4(a):
    return socket.inet_pton(socket.AF_INET, a)


def ip6(a):
    return socket.inet_pton(socket.AF_INET6, a)


def ether(ip_pkt, v6=False, src=MAC_A, dst=MAC_B):
    return bytes(dpkt.ethernet.Ethernet(src=src, dst=dst, data=ip_pkt,
                                        type=dpkt.ethernet.ETH_TYPE_IP6 if v6 else dpkt.ethernet.ETH_TYPE_IP))


def tcp4(src, dst, sport, dport, seq, flags, data=b"", ack=0, ident=1):
    t = dpkt.tcp.TCP(sport=sport, dport=dport, seq=seq & 0xFFFFFFFF, ack=ack, flags=flags,
                     data=data, win=65535)
    ip = dpkt.ip.IP(src=ip4(src), dst=ip4(dst), p=6, data=t, id=ident, ttl=64)
    ip.len = 20 + len(bytes(t))
    return bytes(ip)


def tcp6(src, dst, sport, dport, seq, flags, data=b"", ack=0):
    t = dpkt.tcp.TCP(sport=sport, dport=dport, seq=seq & 0xFFFFFFFF, ack=ack, flags=flags,
                     data=data, win=65535)
    ip = dpkt.ip6.IP6(src=ip6(src), dst=ip6(dst), nxt=6, hlim=64, data=t)
    ip.plen = len(bytes(t))
    return bytes(ip)


def udp4(src, dst, sport, dport, data=b"", ident=1):
    u = dpkt.udp.UDP(sport=sport, dport=dport, data=data)
    u.ulen = 8 + len(data)
    ip = dpkt.ip.IP(src=ip4(src), dst=ip4(dst), p=17, data=u, id=ident, ttl=64)
    ip.len = 20 + len(bytes(u))
    return bytes(ip)


def write_pcap(path, frames, linktype=dpkt.pcap.DLT_EN10MB, t0=1700000000.0, step=0.001):
    """frames: [bytes] (one per `step` seconds) or [(ts, bytes)]."""
    with open(path, "wb") as f:
        w = dpkt.pcap.Writer(f, linktype=linktype, snaplen=262144)
        for i, fr in enumerate(frames):
            ts, data = fr if isinstance(fr, tuple) else (t0 + i * step, fr)
            w.writepkt(data, ts=ts)
    return path


class Conversation:
    """A TCP connection between a client and a server, built packet by packet (IPv4 or IPv6,
    in Ethernet frames); seq numbers follow the bytes sent unless given."""

    def __init__(self, client=("10.0.0.1", 40000), server=("10.0.0.2", 80), isn=(1000, 5000),
                 v6=False):
        self.c, self.s, self.v6 = client, server, v6
        self.next = [isn[0], isn[1]]
        self.frames = []

    def send(self, side, data=b"", flags=dpkt.tcp.TH_ACK | dpkt.tcp.TH_PUSH, seq=None, advance=True):
        a, b = (self.c, self.s) if side == 0 else (self.s, self.c)
        s = self.next[side] if seq is None else seq
        build = tcp6 if self.v6 else tcp4
        pkt = build(a[0], b[0], a[1], b[1], s, flags, data, ack=self.next[1 - side] & 0xFFFFFFFF)
        self.frames.append(ether(pkt, self.v6))
        if advance and seq is None:
            self.next[side] += len(data) + (1 if flags & (dpkt.tcp.TH_SYN | dpkt.tcp.TH_FIN) else 0)
        return pkt

    def handshake(self):
        self.send(0, flags=dpkt.tcp.TH_SYN)
        self.send(1, flags=dpkt.tcp.TH_SYN | dpkt.tcp.TH_ACK)
        self.send(0, flags=dpkt.tcp.TH_ACK)
        return self

    def close(self):
        self.send(0, flags=dpkt.tcp.TH_FIN | dpkt.tcp.TH_ACK)
        self.send(1, flags=dpkt.tcp.TH_FIN | dpkt.tcp.TH_ACK)
        self.send(0, flags=dpkt.tcp.TH_ACK)
        return self


def assert_rejected(trace, function, cases):
    """Applying `function` with each (args, kwargs, pattern) on a flow of `trace` raises a
    MapiError whose message matches pattern (the argument it names)."""
    import mapi
    if not trace.exists():
        pytest.skip("corpus %s absent" % trace)
    dev = mapi.create_offline_device(str(trace))
    try:
        fd = mapi.create_flow(dev)
        for args, kwargs, pattern in cases:
            with pytest.raises(mapi.MapiError, match=pattern):
                mapi.apply_function(fd, function, *args, **kwargs)
    finally:
        mapi.delete_offline_device(dev)
