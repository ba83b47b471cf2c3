"""RECORD_FILTER(expr): keep the flow records (of a netflow collector device, a file of records,
or FLOW_REPORT's output) that match a filter in nfdump's syntax.

    RECORD_FILTER("proto tcp and dst port 443")
    RECORD_FILTER("src net 10.0.0.0/8 and not (port 53 or proto icmp)")
    RECORD_FILTER("bytes > 1m or flags R")
    RECORD_FILTER("as 65000 and in src mac 00:1b:21:3c:9d:f8")
    RECORD_FILTER("postNATSourceIPv4Address in 100.64.0.0/10")     # any IPFIX element by name

The primitives are nfdump 1.7's (nfdump(1), FILTER): proto, [src|dst] ip|host|net, ip in
[list], [src|dst] port [cmp] n, port in [list], [src|dst] as, [in|out] if, [src|dst] mask, vlan,
tos, flags, icmp-type/-code, engine-type/-id, next ip, bgpnext ip, router ip, [in|out] [src|dst]
mac, mpls label1/exp1, [in|out] packets|bytes (k/m/g scaling), duration, pps, bps, bpp, flowdir,
nat event, [src|dst] nip/nport, ingress/egress vrf, observation domain id, ipv4/ipv6, any;
comparators = == < > <= >= EQ LT GT LE GE; and/&&, or/||, not/!, ( ).  Beyond nfdump,
FIELD OP VALUE works on every field name of RECORD_TOP's vocabulary (addr.src, tcp.dport, the
short names packets, tcp_flags..., every IPFIX element name: the record keeps every element the
exporter sent), with OP = == != < <= > >= & (any of these bits) or in (address in a prefix).

The expression compiles to a small stack program that a C kernel runs over each batch of
records.  Applied to a flow whose packets are not flow records it is an error: read captured
exports with the netflow backend (mapi run --backend netflow, create_offline_device(...,
backend="netflow")) or put FLOW_REPORT before it."""
from mapi._engine import ffi, lib
from mapi.descriptor import Arg, FunctionInstance, filter_descriptor
from mapi.errors import MapiError, EFILTER

from ._nfdump_filter import compile_filter
from ._record_vocab import require_records

OPS = {"cmp": lib.MAPI_RF_CMP, "and": lib.MAPI_RF_AND, "or": lib.MAPI_RF_OR,
       "not": lib.MAPI_RF_NOT, "true": lib.MAPI_RF_TRUE}


def compile_expr(expr):
    """A cffi mapi_rf_insn array (and its length) for `expr`, or MapiError naming the place."""
    code = compile_filter(expr)
    depth = peak = 0
    for c in code:
        depth += {"cmp": 1, "true": 1, "and": -1, "or": -1}.get(c[0], 0)
        peak = max(peak, depth)
    if peak > lib.MAPI_RF_MAX_STACK:
        raise MapiError(EFILTER, "RECORD_FILTER: %r nests deeper than %d" % (expr, lib.MAPI_RF_MAX_STACK),
                        argument="expr")
    arr = ffi.new("mapi_rf_insn[]", max(1, len(code)))
    for i, c in enumerate(code):
        insn = arr[i]
        insn.op = OPS[c[0]]
        if c[0] != "cmp":
            continue
        _, f, cmp, value = c
        insn.field, insn.cmp, insn.ie = f.code, cmp, f.ie
        if cmp == lib.MAPI_RF_IN:
            packed, plen = value
            insn.family, insn.plen = f.family, plen
            ffi.memmove(insn.addr, packed, len(packed))
        elif cmp == lib.MAPI_RF_BYTES_EQ:
            insn.blen = len(value)
            ffi.memmove(insn.addr, value, len(value))
        else:
            insn.value = value
    return arr, len(code)


class RecordFilter(FunctionInstance):
    kernel = lib.mapi_rf_kernel

    def __init__(self, expr):
        self.expr = expr
        self.prog, n = compile_expr(expr)
        self.st = ffi.new("mapi_rf_state *", {"prog": self.prog, "n": n})
        self.state = self.st

    def info(self):
        return dict(expr=self.expr, instructions=self.st.n,
                    not_records=self.st.other_linktype)


def check(ctx, args):
    compile_expr(args[0])
    require_records(ctx, "RECORD_FILTER")
    return args


DESCRIPTOR = filter_descriptor(
    "RECORD_FILTER", __doc__, RecordFilter, check, result="none", cost="low", stateful=False,
    args=(Arg("expr", "s", doc="nfdump filter on flow records, e.g. 'proto tcp and dst port 443'"),))
