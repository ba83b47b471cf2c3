"""A producer function (DEFRAG, COOKING, FLOW_REPORT) run by a one-node engine plan over batches
the test builds: the engine's own mapi_plan_run and mapi_plan_drain, with packet memory that is
overwritten after every call (as a source that reuses its buffers), and batches without packets
that carry a live device's clock (mapi_batch.clock_ns), as the engine hands them on an idle
link."""
from mapi._engine import ffi, lib
from mapi.arguments import bind_args


def instance(name, *args, **kwargs):
    """A function instance made as apply_function + connect make it (arguments checked)."""
    from mapi.registry import get_registry
    desc = get_registry().function(name)
    values = bind_args(desc, args, dict(kwargs))
    if desc.check is not None:
        values = desc.check(None, values)
    return desc.create(None, values)


class ProducerRig:
    """Producers in a chain (each reads the batch the one before made), as one plan."""

    def __init__(self, *instances, linktype=1):
        self.insts = instances
        n = len(instances)
        self.plan = ffi.gc(lib.mapi_plan_new(n, n + 1, 65536), lib.mapi_plan_free)
        for k, inst in enumerate(instances):
            node = self.plan.nodes[k]
            node.fn = inst.kernel
            node.state = inst.state
            node.in_slot, node.out_slot = k, k + 1
            node.made = inst.made
            node.drain = inst.made_drain if inst.made_drain is not None else ffi.NULL
            node.in_batch, node.out_batch, node.subtree_end = k, k + 1, n
        self.inst = instances[-1]
        self.batch = ffi.gc(lib.mapi_batch_new(65536), lib.mapi_batch_free)
        self.batch.linktype = linktype
        self.seq = 0

    def run(self, packets=(), clock_ns=0):
        """Run one batch of [(ts_ns, frame bytes)] (none: an idle tick at clock_ns); returns what
        the last producer made: [(ts_ns, bytes)].  The batch's bytes are overwritten afterwards."""
        b = self.batch
        data = b"".join(f for _, f in packets)
        mem = ffi.new("uint8_t[]", max(len(data), 1))
        ffi.memmove(mem, data, len(data))
        pos = 0
        for i, (ts, frame) in enumerate(packets):
            b.off[i], b.caplen[i], b.wirelen[i], b.ts[i], b.ifindex[i] = pos, len(frame), len(frame), ts, 0
            pos += len(frame)
        b.base = mem
        b.n = len(packets)
        b.first_seq = self.seq
        b.clock_ns = clock_ns
        self.seq += len(packets)
        n = len(self.insts)
        assert lib.mapi_plan_begin(self.plan, b) == 0
        assert lib.mapi_plan_run(self.plan, b, 0, n) == n
        made = self.made()
        ffi.memmove(mem, b"\xee" * len(data), len(data))       # the source reuses its buffer
        return made

    def drain(self):
        """The end of the stream: everything the last producer still holds (a single one)."""
        assert len(self.insts) == 1
        out = []
        while lib.mapi_plan_drain(self.plan, 0) > 0:
            out += self.made()
        return out

    def made(self):
        m = self.inst.made
        base = int(ffi.cast("uintptr_t", m.base))
        at = lambda k: ffi.cast("uint8_t *", (base + m.off[k]) & (2 ** 64 - 1))   # off wraps
        return [(m.ts[k], bytes(ffi.buffer(at(k), m.caplen[k]))) for k in range(m.n)]
