"""BYTE_COUNTER: the sum of the wire lengths of the packets that reached this point."""
from mapi._engine import lib
from mapi.descriptor import FunctionDescriptor

from .pkt_counter import Counter

DESCRIPTOR = FunctionDescriptor(
    name="BYTE_COUNTER", args=(), doc=__doc__,
    create=lambda ctx, args: Counter(lib.mapi_byte_counter_kernel),
    result="u64", cost="free", shareable=True, stateful=True,
)
