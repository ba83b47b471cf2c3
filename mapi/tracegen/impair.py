"""Impairments for generated traces: what real captures hold and reassembly must undo.

    from mapi.tracegen.impair import impair_file
    counts = impair_file("in.pcap", "out.pcap", seed=1, retransmit=0.03, reorder=0.03)

impair_file reads a classic pcap of Ethernet frames (as the generator writes them, microsecond or
nanosecond) and writes another in which, each with its probability per eligible packet:

  retransmit  a TCP segment with payload is sent again, the same bytes, 1-3 packets later;
  reorder     a TCP segment with payload (no SYN, FIN or RST) is held back and sent right after
              the next packet of its connection and direction;
  overlap     before a TCP segment whose bytes continue its direction's previous segment, a
              segment is sent that repeats the second half of the previous one and the first
              half of this one (the same bytes: a repacketised retransmission);
  fragment    an IPv4 or IPv6 packet is sent as 2-4 fragments (8-byte multiples; IPv6 with a
              fragment header), in order or, for half of them, last first.

Packets moved later take the time of the packet they now follow, so time never goes backwards.
The bytes of every stream and datagram stay what the input carried: an independent reassembler
(tshark, tcpflow) gives the input's streams back.  The same input, seed and probabilities give a
byte-identical file.  (The generator's own output, mapi.tracegen.write_trace without `impair`,
is not touched by this module.)
"""
import hashlib
import os
import random
import struct

KINDS = ("retransmit", "reorder", "overlap", "fragment")
MAGIC_US, MAGIC_NS = 0xA1B2C3D4, 0xA1B23C4D


def version():
    """8 hex digits that change whenever this module's output could."""
    with open(os.path.abspath(__file__), "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()[:8]


def checksum(data):
    """RFC 1071 Internet checksum of bytes."""
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


class Packet:
    """One Ethernet frame, with what the impairments need to know of it."""
    __slots__ = ("ts", "frame", "v", "l3", "ip_end", "proto", "l4", "key", "seq", "flags", "payload")

    def __init__(self, ts, frame):
        self.ts, self.frame = ts, frame
        self.v = self.proto = self.l4 = self.key = self.seq = self.flags = None
        self.payload = b""
        etype = struct.unpack_from("!H", frame, 12)[0] if len(frame) >= 14 else 0
        if etype == 0x0800 and len(frame) >= 34 and frame[14] >> 4 == 4:
            ihl = (frame[14] & 15) * 4
            self.v, self.l3, self.proto = 4, 14, frame[23]
            self.ip_end = 14 + struct.unpack_from("!H", frame, 16)[0]
            if struct.unpack_from("!H", frame, 20)[0] & 0x3FFF:
                self.proto = None                      # already a fragment: left alone
            self.l4, src, dst = 14 + ihl, frame[26:30], frame[30:34]
        elif etype == 0x86DD and len(frame) >= 54 and frame[20] in (6, 17, 58):
            self.v, self.l3, self.proto = 6, 14, frame[20]
            self.ip_end = 54 + struct.unpack_from("!H", frame, 18)[0]
            self.l4, src, dst = 54, frame[22:38], frame[38:54]
        else:
            return
        if self.proto == 6 and len(frame) >= self.l4 + 20:
            t = self.l4
            sport, dport, self.seq = struct.unpack_from("!HHI", frame, t)
            self.flags = frame[t + 13]
            self.payload = frame[t + (frame[t + 12] >> 4) * 4:self.ip_end]
            self.key = (src, sport, dst, dport)

    def data_segment(self):
        return self.key is not None and len(self.payload) > 0


def tcp_segment(like, seq, payload):
    """A segment of `like`'s direction (its headers, options dropped) carrying payload at seq."""
    f, l3, t = like.frame, like.l3, like.l4
    sport, dport, _, ack = struct.unpack_from("!HHII", f, t)
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack, 5 << 4, 0x18,
                      struct.unpack_from("!H", f, t + 14)[0], 0, 0) + payload
    if like.v == 4:
        src, dst = f[l3 + 12:l3 + 16], f[l3 + 16:l3 + 20]
        pseudo = src + dst + struct.pack("!BBH", 0, 6, len(tcp))
        ip = bytearray(f[l3:l3 + 20])
        ip[0] = 0x45
        struct.pack_into("!H", ip, 2, 20 + len(tcp))
        struct.pack_into("!H", ip, 10, 0)
        struct.pack_into("!H", ip, 10, checksum(bytes(ip)))
    else:
        src, dst = f[l3 + 8:l3 + 24], f[l3 + 24:l3 + 40]
        pseudo = src + dst + struct.pack("!IxxxB", len(tcp), 6)
        ip = bytearray(f[l3:l3 + 40])
        ip[6] = 6
        struct.pack_into("!H", ip, 4, len(tcp))
    tcp = bytearray(tcp)
    struct.pack_into("!H", tcp, 16, checksum(pseudo + bytes(tcp)))
    return pad(f[:l3] + bytes(ip) + bytes(tcp))


def pad(frame):
    return frame + bytes(max(0, 60 - len(frame)))


def fragments(p, rng):
    """The frames of p's IP packet cut into 2-4 fragments (None when it is too small to cut)."""
    f, l3 = p.frame, p.l3
    head = f[:l3]
    if p.v == 4:
        ihl = (f[l3] & 15) * 4
        iph, body = f[l3:l3 + ihl], f[l3 + ihl:p.ip_end]
    else:
        iph, body = f[l3:l3 + 40], f[l3 + 40:p.ip_end]
    units = len(body) // 8
    if units < 2:
        return None
    n = min(rng.randint(2, 4), units)
    cuts = sorted(rng.sample(range(1, units), n - 1))
    bounds = [0] + [c * 8 for c in cuts] + [len(body)]
    ident = rng.getrandbits(32)
    out = []
    for a, b in zip(bounds, bounds[1:]):
        more = b < len(body)
        if p.v == 4:
            h = bytearray(iph)
            struct.pack_into("!HHH", h, 2, len(iph) + b - a, struct.unpack_from("!H", h, 4)[0],
                             (a // 8) | (0x2000 if more else 0))
            struct.pack_into("!H", h, 10, 0)
            struct.pack_into("!H", h, 10, checksum(bytes(h)))
            out.append(pad(head + bytes(h) + body[a:b]))
        else:
            h = bytearray(iph)
            nxt = h[6]
            h[6] = 44
            struct.pack_into("!H", h, 4, 8 + b - a)
            frag = struct.pack("!BBHI", nxt, 0, a | (1 if more else 0), ident)
            out.append(pad(head + bytes(h) + frag + body[a:b]))
    if rng.random() < 0.5:
        out.reverse()
    return out


def read_pcap(path):
    with open(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack_from("<I", data, 0)
    if magic not in (MAGIC_US, MAGIC_NS) or struct.unpack_from("<I", data, 20)[0] != 1:
        raise ValueError("%s: impairments need a little-endian classic pcap of Ethernet frames" % path)
    pos, recs = 24, []
    while pos + 16 <= len(data):
        sec, frac, incl, _ = struct.unpack_from("<IIII", data, pos)
        recs.append(((sec, frac), data[pos + 16:pos + 16 + incl]))
        pos += 16 + incl
    return data[:24], recs


def impair_file(src, dst, seed=1, **chances):
    """Write src's packets with impairments to dst; returns {kind: how many}."""
    unknown = set(chances) - set(KINDS)
    if unknown or any(not 0 <= v <= 1 for v in chances.values()):
        raise ValueError("impairments are %s, each a probability 0..1; got %r" % (", ".join(KINDS), chances))
    rng = random.Random(seed)
    chance = lambda kind: chances.get(kind, 0) and rng.random() < chances[kind]
    header, recs = read_pcap(src)
    counts = dict.fromkeys(KINDS, 0)
    out, later, held, prev = [], [], {}, {}

    def send(ts, frame, p=None):
        if p is not None and p.proto is not None and chance("fragment"):
            frames = fragments(p, rng)
            if frames:
                counts["fragment"] += 1
                out.extend((ts, fr) for fr in frames)
                return
        out.append((ts, frame))
        for item in list(later):                      # retransmissions due after this packet
            item[0] -= 1
            if item[0] == 0:
                later.remove(item)
                out.append((ts, item[1]))

    for ts, frame in recs:
        p = Packet(ts, frame)
        if p.data_segment():
            last = prev.get(p.key)
            if last is not None and chance("overlap") and len(last.payload) >= 2 and len(p.payload) >= 2 \
                    and (last.seq + len(last.payload)) & 0xFFFFFFFF == p.seq:
                h0, h1 = len(last.payload) // 2, len(p.payload) // 2
                send(ts, tcp_segment(p, last.seq + h0, last.payload[h0:] + p.payload[:h1]))
                counts["overlap"] += 1
            prev[p.key] = p
        if p.data_segment() and not p.flags & 0x07 and p.key not in held and chance("reorder"):
            held[p.key] = p
            counts["reorder"] += 1
        else:
            send(ts, frame, p)
            if p.key in held:                          # the held one now comes after it
                h = held.pop(p.key)
                send(ts, h.frame, h)
        if p.data_segment() and chance("retransmit"):
            later.append([rng.randint(1, 3), frame])
            counts["retransmit"] += 1
    last_ts = recs[-1][0] if recs else (0, 0)
    for h in held.values():
        send(last_ts, h.frame, h)
    for _, frame in later:
        out.append((last_ts, frame))
    tmp = "%s.%d.part" % (dst, os.getpid())
    with open(tmp, "wb") as f:
        f.write(header)
        for (sec, frac), frame in out:
            f.write(struct.pack("<IIII", sec, frac, len(frame), len(frame)))
            f.write(frame)
    os.replace(tmp, dst)
    return counts
