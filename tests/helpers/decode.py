"""Decoding captured frames with dpkt, independently of the engine: the reference side of the
tests that check header fields (TOP's keys, HASHSAMP's 5-tuples)."""
import struct

import dpkt


def ip_layer(linktype, frame):
    """The outermost IP header of a frame as a dpkt IP or IP6 object (PPPoE unwrapped), or None
    for a frame that does not decode or is not IP on Ethernet, Linux cooked, null/loopback
    or raw IP links."""
    try:
        if linktype == 1:
            ip = dpkt.ethernet.Ethernet(frame).data
            if isinstance(ip, dpkt.pppoe.PPPoE):
                ip = ip.data.data
        elif linktype == 113:               # Linux cooked: protocol at 14, IP at 16
            proto = struct.unpack("!H", frame[14:16])[0]
            ip = {0x0800: dpkt.ip.IP, 0x86DD: dpkt.ip6.IP6}.get(proto, bytes)(frame[16:])
        elif linktype in (0, 108):          # 4-byte address family, IP after it
            fam = min(struct.unpack("<I", frame[:4])[0], struct.unpack(">I", frame[:4])[0])
            ip = dpkt.ip.IP(frame[4:]) if fam == 2 else \
                dpkt.ip6.IP6(frame[4:]) if fam in (10, 24, 28, 30) else None
        elif linktype in (101, 228, 229):
            ip = dpkt.ip.IP(frame) if frame[0] >> 4 == 4 else dpkt.ip6.IP6(frame)
        else:
            return None
    except (dpkt.UnpackError, IndexError, struct.error):
        return None
    return ip if isinstance(ip, (dpkt.ip.IP, dpkt.ip6.IP6)) else None
