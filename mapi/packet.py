"""The packet get_next_pkt() and loop() deliver: a tuple (ts, caplen, wlen, data, ifindex,
linktype, seq) that decodes on request.

    pkt = mapi.get_next_pkt(fd, buf)
    eth = pkt.decode()                  # dpkt.ethernet.Ethernet for an Ethernet device
    print(eth.data.src, eth.data.data.dport)

decode() picks dpkt's class for the packet's link type; dpkt is imported then, not before
(it costs tens of milliseconds and most users never decode)."""
from collections import namedtuple

from .errors import MapiError, EFORMAT, ENOTSUP

# LINKTYPE_* -> (dpkt module, class); raw IP link types pick IPv4 or IPv6 by the version
DECODERS = {
    0: ("loopback", "Loopback"),         # NULL: BSD loopback, 4-byte family in host order
    1: ("ethernet", "Ethernet"),
    9: ("ppp", "PPP"),
    105: ("ieee80211", "IEEE80211"),
    108: ("loopback", "Loopback"),       # LOOP: OpenBSD loopback
    113: ("sll", "SLL"),                 # Linux cooked
    127: ("radiotap", "Radiotap"),
    228: ("ip", "IP"),                   # IPV4
    229: ("ip6", "IP6"),                 # IPV6
    276: ("sll2", "SLL2"),               # Linux cooked v2
}
RAW_IP = (12, 14, 101)                   # DLT_RAW (two values), LINKTYPE_RAW


def decoder(linktype, data=b""):
    """The dpkt class for a packet of `linktype` whose bytes start with `data`, or None."""
    import importlib
    if linktype in RAW_IP:
        version = data[0] >> 4 if data else 4
        module, name = ("ip6", "IP6") if version == 6 else ("ip", "IP")
    elif linktype in DECODERS:
        module, name = DECODERS[linktype]
    else:
        return None
    return getattr(importlib.import_module("dpkt." + module), name)


class Packet(namedtuple("Packet", "ts caplen wlen data ifindex linktype seq")):
    """A delivered packet; a plain tuple with field names, plus decode()."""

    __slots__ = ()

    def decode(self):
        """The packet as a dpkt object of its link type (Ethernet, IP, IP6, SLL, ...).  A packet
        cut short by the snapshot length decodes as far as its bytes go (dpkt leaves what it
        cannot parse as bytes); a link type dpkt has no class for raises MapiError(ENOTSUP)."""
        cls = decoder(self.linktype, self.data)
        if cls is None:
            raise MapiError(ENOTSUP, "packet %s: dpkt has no decoder for link type %d (decoded: "
                            "%s and raw IP)" % (self.seq, self.linktype,
                                                ", ".join(str(k) for k in sorted(DECODERS))),
                            argument="linktype")
        import dpkt
        try:
            return cls(bytes(self.data))
        except (dpkt.UnpackError, dpkt.NeedData) as exc:
            raise MapiError(EFORMAT, "packet %s: cannot decode its %d bytes as %s: %s"
                            % (self.seq, len(self.data), cls.__name__, exc),
                            argument="data") from None
