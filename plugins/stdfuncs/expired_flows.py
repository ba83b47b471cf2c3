"""EXPIRED_FLOWS(max_records=65536): the finished flows that reach it, for the client.

Put it after FLOW_REPORT (or on a NetFlow collector device): each read_results() returns the
flow records that arrived since the last read, oldest first, as ExpiredFlow named tuples
(addresses as ipaddress objects, times in ns since the epoch, out_packets/out_bytes the reverse
direction of a biflow).  At most max_records wait; more are dropped and counted
(get_function_info: kept, dropped, waiting).  Packets that are not flow records pass by."""
import ipaddress
from collections import namedtuple

from mapi._engine import ffi, lib
from mapi.descriptor import Arg, FunctionDescriptor, FunctionInstance
from mapi.errors import MapiError, EBADARG

ExpiredFlow = namedtuple("ExpiredFlow", "src dst sport dport proto packets bytes out_packets "
                         "out_bytes first_ns last_ns tcp_flags tos input domain sampling version")
ExpiredFlow.time_fields = ("first_ns", "last_ns")   # ns since the epoch (ISO 8601 in the CLI)
TAKE = 4096


def flow_tuple(r):
    n = 16 if r.family == 6 else 4
    src = ipaddress.ip_address(bytes(ffi.buffer(r.src, n))) if r.family else None
    dst = ipaddress.ip_address(bytes(ffi.buffer(r.dst, n))) if r.family else None
    return ExpiredFlow(src, dst, r.sport, r.dport, r.proto, r.packets, r.bytes, r.out_packets,
                       r.out_bytes, r.first_ns, r.last_ns, r.tcp_flags, r.tos, r.input, r.domain,
                       r.sampling, r.version)


class ExpiredFlows(FunctionInstance):
    kernel = lib.mapi_expired_kernel

    def __init__(self, max_records):
        q = lib.mapi_expired_new(max_records)
        if q == ffi.NULL:
            raise MemoryError("EXPIRED_FLOWS: cannot keep %d records" % max_records)
        self.q = ffi.gc(q, lib.mapi_expired_free)
        self.state = self.q
        self.buf = ffi.new("mapi_flowrec[]", TAKE)
        self.last_ts = 0

    def take(self):
        out = []
        while True:
            n = lib.mapi_expired_take(self.q, self.buf, TAKE)
            out.extend(flow_tuple(self.buf[i]) for i in range(n))
            if n < TAKE:
                break
        if out:
            self.last_ts = out[-1].last_ns
        return out

    def result(self):
        return self.take(), self.last_ts

    def info(self):
        c = ffi.new("uint64_t[3]")
        lib.mapi_expired_counts(self.q, c, c + 1, c + 2)
        return dict(kept=c[0], dropped=c[1], waiting=c[2])


def check(ctx, args):
    if not 1 <= args[0] <= 1 << 26:
        raise MapiError(EBADARG, "EXPIRED_FLOWS: max_records must be 1..%d, got %r"
                        % (1 << 26, args[0]), argument="max_records")
    return args


DESCRIPTOR = FunctionDescriptor(
    name="EXPIRED_FLOWS",
    args=(Arg("max_records", "i", 65536, doc="records kept until read at most"),),
    create=lambda ctx, args: ExpiredFlows(*args),
    check=check, doc=__doc__, result="list", cost="low", shareable=False, stateful=True,
)
