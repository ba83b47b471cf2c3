"""GAP: the time between the last two packets that reached it, in ns of packet time
(negative if the trace goes back in time).  Result: that gap, or None before the second packet;
its ts is the last packet's time."""
from mapi._engine import ffi, lib
from mapi.descriptor import FunctionDescriptor, FunctionInstance


class Gap(FunctionInstance):
    kernel = lib.mapi_gap_kernel

    def __init__(self):
        self.st = ffi.new("mapi_gap_state *")
        self.state = self.st

    def result(self):
        if self.st.packets < 2:
            return None, self.st.last_ts
        return self.st.gap, self.st.last_ts

    def reset(self):
        # the next packet's gap is still measured from the last one seen
        self.st.packets = min(self.st.packets, 1)

    def info(self):
        return dict(packets=self.st.packets)


DESCRIPTOR = FunctionDescriptor(
    name="GAP", args=(), doc=__doc__,
    create=lambda ctx, args: Gap(),
    result="u64", cost="free", shareable=True, stateful=True,
)
