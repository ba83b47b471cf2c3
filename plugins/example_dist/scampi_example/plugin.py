"""LEN_RANGE(lo, hi): keep packets whose wire length is within [lo, hi] (a C kernel of this
plugin's own).  Backend "pcapdir": every pcap file of a directory, in name order, as one device."""
import os

from mapi import hookimpl, native, MapiError
from mapi.descriptor import Arg, BackendDescriptor, FunctionDescriptor, FunctionInstance, PacketSource
from mapi.errors import EBADARG, EOPEN
from mapi.registry import get_registry

from ._kernel import ffi, lib


class LenRange(FunctionInstance):
    def __init__(self, lo, hi):
        self.c = ffi.new("len_range *", {"lo": lo, "hi": hi})
        # the engine calls our kernel through a plain function pointer
        self.kernel = native.kernel_pointer(ffi, lib, "len_range_kernel")
        self.state = native.state_pointer(ffi, self.c)


def check(ctx, args):
    lo, hi = args
    if not 0 <= lo <= hi:
        raise MapiError(EBADARG, "LEN_RANGE: need 0 <= lo <= hi, got %d, %d" % (lo, hi), argument="lo")
    return args


def open_file(path):
    """One trace file, read by the savefile backend (through the registry, like any backend)."""
    return get_registry().backend("savefile").open_offline(path, None, {})


class PcapDir(PacketSource):
    def __init__(self, path):
        names = sorted(n for n in os.listdir(path) if n.endswith((".pcap", ".pcap.gz")))
        if not names:
            raise MapiError(EOPEN, "pcapdir %s: no .pcap files in it" % path, file=path)
        self.files = [os.path.join(path, n) for n in names]
        self.name = path
        self.current = open_file(self.files[0])
        self.index = 0
        self.linktype, self.snaplen = self.current.linktype, self.current.snaplen
        self.seq = 0

    def next_batch_into(self, batch):
        while True:
            if self.current.next_batch_into(batch):
                batch.c.first_seq = self.seq          # device-wide numbering across files
                self.seq += batch.c.n
                return True
            self.current.close()
            self.index += 1
            if self.index == len(self.files):
                return False
            self.current = open_file(self.files[self.index])

    def info(self):
        return dict(path=self.name, files=len(self.files), format="pcapdir", linktype=self.linktype)

    def close(self):
        self.current.close()


@hookimpl
def scampi_functions():
    return [FunctionDescriptor(
        name="LEN_RANGE", args=(Arg("lo", "i"), Arg("hi", "i")), doc=__doc__,
        create=lambda ctx, args: LenRange(*args), check=check,
        filters=True, cost="free", shareable=True)]


@hookimpl
def scampi_backends():
    return [BackendDescriptor(
        name="pcapdir", doc="every pcap file of a directory as one device",
        open_offline=lambda path, fmt=None, options=None: PcapDir(path))]


@hookimpl
def scampi_probe_offline(path, head):
    return "pcapdir" if os.path.isdir(path) else None
