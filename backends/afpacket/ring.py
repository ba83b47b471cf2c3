"""``ring`` backend: a Linux AF_PACKET memory-mapped ring whose blocks the engine reads in place.

    fd = mapi.create_flow("ring:eth0", block_size=1 << 20, block_count=64, block_timeout_ms=10)
    fd = mapi.create_flow("ring:eth0", immediate=True)      # every packet at once

TPACKET_V3: the kernel fills whole blocks of packets; a batch points into one or more retired
blocks and returns them to the kernel when the engine releases it (no copy).  A block is handed
over when full or after block_timeout_ms.  immediate=True uses a TPACKET_V2 frame ring instead,
each packet readable as soon as the kernel wrote it.  Nanosecond timestamps from the ring
headers; kernel drops and ring freezes from PACKET_STATISTICS (mapi.stats, get_device_info).
Options: snaplen, promisc, direction, block_size (a multiple of the page size), block_count,
block_timeout_ms, immediate, kernel_filter.
"""
from mapi import hookimpl
from mapi.descriptor import parse_options

from . import DIRECTIONS, LiveSource, backend_descriptor, lib

OPTIONS = {
    "snaplen": (int, 262144),
    "promisc": (bool, True),
    "direction": (tuple(DIRECTIONS), "inout"),
    "block_size": (int, 1 << 20),
    "block_count": (int, 64),
    "block_timeout_ms": (int, 10),
    "immediate": (bool, False),
    "kernel_filter": (bool, True),
}


def open_live(ifname, options=None):
    opts = parse_options("ring:%s" % ifname, options, OPTIONS)
    mode = lib.MAPI_LIVE_TPV2 if opts.pop("immediate") else lib.MAPI_LIVE_TPV3
    return LiveSource("ring", ifname, mode, **opts)


@hookimpl
def scampi_backends():
    return [backend_descriptor(
        "ring", "Linux network interfaces through a TPACKET_V3 mmap ring (zero-copy blocks)",
        open_live)]


@hookimpl(trylast=True)
def scampi_claim_live(name):
    """A bare device name is a network interface captured through the ring, as libpcap itself
    does on Linux; asked last, so a name no other backend knows gets the ring's precise error
    (which lists the interfaces there are)."""
    return "ring"
