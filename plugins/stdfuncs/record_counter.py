"""RECORD_COUNTER(): exact 64-bit sums of the flow records (of a netflow collector device) that
reach it: records, packets, bytes, out_packets, out_bytes, and scaled_packets / scaled_bytes (in +
out, times each record's announced sampling interval).  A C kernel runs over each batch of
records; applied to packets that are not flow records it is an error (see RECORD_FILTER)."""
from mapi._engine import ffi, lib
from mapi.descriptor import FunctionDescriptor, FunctionInstance

from ._record_vocab import require_records


class RecordCounter(FunctionInstance):
    kernel = lib.mapi_rsum_kernel

    def __init__(self):
        self.st = ffi.new("mapi_rsum_state *")
        self.state = self.st

    def result(self):
        s = self.st
        return dict(records=s.records, packets=s.packets, bytes=s.bytes,
                    out_packets=s.out_packets, out_bytes=s.out_bytes,
                    scaled_packets=s.scaled_packets, scaled_bytes=s.scaled_bytes), s.last_ts

    def reset(self):
        ffi.memmove(self.st, bytes(ffi.sizeof("mapi_rsum_state")), ffi.sizeof("mapi_rsum_state"))


DESCRIPTOR = FunctionDescriptor(
    name="RECORD_COUNTER", args=(), create=lambda ctx, args: RecordCounter(),
    check=lambda ctx, args: (require_records(ctx, "RECORD_COUNTER"), args)[1],
    doc="Exact sums of flow records' counters", result="struct", cost="low",
    shareable=True, stateful=True)
