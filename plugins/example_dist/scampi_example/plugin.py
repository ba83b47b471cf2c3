"""LEN_RANGE(lo, hi): keep packets whose wire length is within [lo, hi] (a C kernel of this
plugin's own).  Backend "pcapdir": every pcap file of a directory, in name order, as one device."""
import os

from mapi import hookimpl, MapiError
from mapi._engine import ffi as engine_ffi
from mapi.descriptor import Arg, BackendDescriptor, FunctionDescriptor, FunctionInstance, PacketSource
from scampi.backends.savefile import SavefileSource

from ._kernel import ffi, lib


class LenRange(FunctionInstance):
    def __init__(self, lo, hi):
        self.c = ffi.new("len_range *", {"lo": lo, "hi": hi})
        # the engine calls our kernel through a plain function pointer
        self.kernel = engine_ffi.cast("mapi_kernel_fn", int(ffi.cast("uintptr_t", lib.len_range_kernel_ptr)))
        self.state = engine_ffi.cast("void *", int(ffi.cast("uintptr_t", self.c)))


def check(ctx, args):
    lo, hi = args
    if not 0 <= lo <= hi:
        raise MapiError(1005, "LEN_RANGE: need 0 <= lo <= hi, got %d, %d" % (lo, hi), argument="lo")
    return args


class PcapDir(PacketSource):
    def __init__(self, path):
        names = sorted(n for n in os.listdir(path) if n.endswith((".pcap", ".pcap.gz")))
        if not names:
            raise MapiError(1010, "pcapdir %s: no .pcap files in it" % path, file=path)
        self.files = [os.path.join(path, n) for n in names]
        self.name = path
        self.current = SavefileSource(self.files[0])
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
            self.current = SavefileSource(self.files[self.index])

    def info(self):
        return dict(path=self.name, files=len(self.files), format="pcapdir", linktype=self.linktype)


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
        probe=lambda path, head: os.path.isdir(path),
        open_offline=lambda path, fmt=None, options=None: PcapDir(path), priority=10)]
