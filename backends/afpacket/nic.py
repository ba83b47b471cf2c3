"""``nic`` backend: a commodity NIC through a Linux AF_PACKET socket.

    fd = mapi.create_flow("nic:eth0", snaplen=1514, promisc=True, direction="inout",
                          buffer=32 << 20, kernel_filter=True)

Promiscuous by default; packets are read in batches with recvmmsg straight into the engine's
batch arrays, timestamped in nanoseconds by the kernel (SO_TIMESTAMPNS).  BPF_FILTERs the module
mapper places "in the kernel" are attached as one socket filter (see backends/afpacket).
Options: snaplen (1..262144), promisc, direction ("inout", "in", "out"), buffer (socket receive
buffer bytes), kernel_filter (offer the socket filter to the mapper).
"""
from mapi import hookimpl
from mapi.descriptor import parse_options

from . import DIRECTIONS, LiveSource, backend_descriptor, lib

OPTIONS = {
    "snaplen": (int, 262144),
    "promisc": (bool, True),
    "direction": (tuple(DIRECTIONS), "inout"),
    "buffer": (int, 32 << 20),
    "kernel_filter": (bool, True),
}


def open_live(ifname, options=None):
    opts = parse_options("nic:%s" % ifname, options, OPTIONS)
    return LiveSource("nic", ifname, lib.MAPI_LIVE_MMSG, **opts)


@hookimpl
def scampi_backends():
    return [backend_descriptor(
        "nic", "Linux network interfaces through AF_PACKET sockets (recvmmsg batches, kernel BPF)",
        open_live)]
