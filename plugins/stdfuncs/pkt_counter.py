"""PKT_COUNTER: the number of packets that reached this point of the flow."""
from mapi._engine import ffi, lib
from mapi.descriptor import FunctionDescriptor, FunctionInstance


class Counter(FunctionInstance):
    def __init__(self, kernel):
        self.kernel = kernel
        self.c = ffi.new("mapi_counter *")
        self.state = self.c

    def result(self):
        return self.c.value, self.c.last_ts

    def reset(self):
        self.c.value = 0


DESCRIPTOR = FunctionDescriptor(
    name="PKT_COUNTER", args=(), doc=__doc__,
    create=lambda ctx, args: Counter(lib.mapi_pkt_counter_kernel),
    result="u64", cost="free", shareable=True, stateful=True,
)
