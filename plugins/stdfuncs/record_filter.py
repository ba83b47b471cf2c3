"""RECORD_FILTER(expr): keep the flow records (of a netflow collector device) whose fields match.

    RECORD_FILTER("proto=6 and dport=443")
    RECORD_FILTER("src in 10.0.0.0/8 and not (port=53 or proto=icmp)")
    RECORD_FILTER("bytes > 1000000 or tcp_flags & 0x04")

Grammar: EXPR := TERM {or TERM};  TERM := FACTOR {and FACTOR};  FACTOR := not FACTOR | ( EXPR )
| FIELD OP VALUE | ADDRFIELD in PREFIX | true.  OP: = == != < <= > >= & (any of these bits).
Numeric fields: proto, sport, dport, port (sport or dport), packets, bytes, out_packets,
out_bytes, tos, tcp_flags, input, output, src_as, dst_as, src_mask, dst_mask, vlan, direction,
version, domain, template, sampling, family, duration (ms), icmp_type, icmp_code.  Address
fields: src, dst, host (src or dst), nexthop, exporter; compared with = / != to an address or
with `in` to a prefix (10.0.0.0/8, 2001:db8::/32).  proto accepts tcp, udp, icmp, icmp6, gre,
esp, sctp.  The expression compiles to a small stack program that a C kernel runs over each
batch of records; packets that are not flow records never match."""
import ipaddress
import re

from mapi._engine import ffi, lib
from mapi.descriptor import Arg, FunctionDescriptor, FunctionInstance
from mapi.errors import MapiError, EFILTER

NUMERIC = {
    "proto": lib.MAPI_RF_PROTO, "sport": lib.MAPI_RF_SPORT, "dport": lib.MAPI_RF_DPORT,
    "packets": lib.MAPI_RF_PACKETS, "bytes": lib.MAPI_RF_BYTES,
    "out_packets": lib.MAPI_RF_OUT_PACKETS, "out_bytes": lib.MAPI_RF_OUT_BYTES,
    "tos": lib.MAPI_RF_TOS, "tcp_flags": lib.MAPI_RF_TCP_FLAGS, "input": lib.MAPI_RF_INPUT,
    "output": lib.MAPI_RF_OUTPUT, "src_as": lib.MAPI_RF_SRC_AS, "dst_as": lib.MAPI_RF_DST_AS,
    "src_mask": lib.MAPI_RF_SRC_MASK, "dst_mask": lib.MAPI_RF_DST_MASK, "vlan": lib.MAPI_RF_VLAN,
    "direction": lib.MAPI_RF_DIRECTION, "version": lib.MAPI_RF_VERSION,
    "domain": lib.MAPI_RF_DOMAIN, "template": lib.MAPI_RF_TEMPLATE,
    "sampling": lib.MAPI_RF_SAMPLING, "family": lib.MAPI_RF_FAMILY,
    "duration": lib.MAPI_RF_DURATION, "icmp_type": lib.MAPI_RF_ICMP_TYPE,
    "icmp_code": lib.MAPI_RF_ICMP_CODE,
}
ADDRESS = {"src": lib.MAPI_RF_SRC, "dst": lib.MAPI_RF_DST, "nexthop": lib.MAPI_RF_NEXTHOP,
           "exporter": lib.MAPI_RF_EXPORTER}
EITHER = {"port": ("sport", "dport"), "host": ("src", "dst")}
PROTOCOLS = {"icmp": 1, "igmp": 2, "tcp": 6, "udp": 17, "gre": 47, "esp": 50, "ah": 51,
             "icmp6": 58, "sctp": 132}
OPS = {"=": lib.MAPI_RF_EQ, "==": lib.MAPI_RF_EQ, "!=": lib.MAPI_RF_NE, "<": lib.MAPI_RF_LT,
       "<=": lib.MAPI_RF_LE, ">": lib.MAPI_RF_GT, ">=": lib.MAPI_RF_GE, "&": lib.MAPI_RF_ANY}
TOKEN = re.compile(r"\s*(?:(?P<op>==|!=|<=|>=|=|<|>|&)|(?P<paren>[()])|(?P<word>[^\s()=!<>&]+))")


def _tokens(expr):
    pos, out = 0, []
    while pos < len(expr):
        if expr[pos:].strip() == "":
            break
        m = TOKEN.match(expr, pos)
        if not m or m.end() == pos:
            raise _error(expr, pos, "unexpected character %r" % expr[pos])
        kind = m.lastgroup
        out.append((kind, m.group(kind), m.start(kind)))
        pos = m.end()
    return out


def _error(expr, pos, why):
    return MapiError(EFILTER, "RECORD_FILTER: %s at offset %d of %r" % (why, pos, expr),
                     argument="expr")


class _Parser:
    def __init__(self, expr):
        self.expr = expr
        self.toks = _tokens(expr)
        self.i = 0
        self.code = []           # (op, field, cmp, value, family, addr, plen)

    def peek(self):
        return self.toks[self.i] if self.i < len(self.toks) else (None, None, len(self.expr))

    def take(self):
        t = self.peek()
        self.i += 1
        return t

    def parse(self):
        if not self.toks:
            raise _error(self.expr, 0, "empty expression")
        self.expr_()
        if self.i < len(self.toks):
            raise _error(self.expr, self.peek()[2], "unexpected %r" % self.peek()[1])
        return self.code

    def expr_(self):
        self.term()
        while self.peek()[1] in ("or", "||"):
            self.take()
            self.term()
            self.code.append((lib.MAPI_RF_OR,))

    def term(self):
        self.factor()
        while self.peek()[1] in ("and", "&&"):
            self.take()
            self.factor()
            self.code.append((lib.MAPI_RF_AND,))

    def factor(self):
        kind, text, pos = self.take()
        if text in ("not", "!"):
            self.factor()
            self.code.append((lib.MAPI_RF_NOT,))
        elif text == "(":
            self.expr_()
            kind, text, pos = self.take()
            if text != ")":
                raise _error(self.expr, pos, "expected ')'")
        elif text == "true":
            self.code.append((lib.MAPI_RF_TRUE,))
        elif kind == "word":
            self.comparison(text.lower(), pos)
        else:
            raise _error(self.expr, pos, "expected a field name, 'not' or '('" if text else
                         "the expression ends too early")

    def comparison(self, field, pos):
        names = EITHER.get(field, (field,))
        for name in names:
            if name not in NUMERIC and name not in ADDRESS:
                raise _error(self.expr, pos, "unknown field %r (fields: %s)"
                             % (field, ", ".join(sorted(list(NUMERIC) + list(ADDRESS) + list(EITHER)))))
        kind, op, opos = self.take()
        if op != "in" and op not in OPS:
            raise _error(self.expr, opos, "expected a comparison (= != < <= > >= & in) after %r" % field)
        vkind, value, vpos = self.take()
        if vkind != "word":
            raise _error(self.expr, vpos, "expected a value after %r" % op)
        parts = [self.compare_one(n, op, value, vpos) for n in names]
        for p in parts:
            self.code.extend(p)
        if len(parts) == 2:
            # "port != 53" means neither port is 53; "port = 53" either one
            self.code.append((lib.MAPI_RF_AND,) if op == "!=" else (lib.MAPI_RF_OR,))

    def compare_one(self, name, op, value, pos):
        if name in ADDRESS:
            try:
                net = ipaddress.ip_network(value, strict=False)
            except ValueError:
                raise _error(self.expr, pos, "%r is not an address or prefix" % value)
            cmp = (lib.MAPI_RF_CMP, ADDRESS[name], lib.MAPI_RF_IN, 0, net.version,
                   net.network_address.packed, net.prefixlen)
            if op == "in" or op in ("=", "=="):
                return [cmp]
            if op == "!=":
                return [cmp, (lib.MAPI_RF_NOT,)]
            raise _error(self.expr, pos, "addresses compare with =, != or in, not %r" % op)
        if op == "in":
            raise _error(self.expr, pos, "'in' takes an address field")
        v = PROTOCOLS.get(value.lower()) if name == "proto" else None
        if v is None:
            try:
                v = int(value, 0)
            except ValueError:
                raise _error(self.expr, pos, "%r is not a number" % value)
        if not 0 <= v < 1 << 64:
            raise _error(self.expr, pos, "%r is out of range" % value)
        return [(lib.MAPI_RF_CMP, NUMERIC[name], OPS[op], v, 0, b"", 0)]


def compile_expr(expr):
    """A cffi mapi_rf_insn array (and its length) for `expr`, or MapiError naming the place."""
    code = _Parser(expr).parse()
    depth = peak = 0
    for c in code:
        depth += 1 if c[0] in (lib.MAPI_RF_CMP, lib.MAPI_RF_TRUE) else (
            -1 if c[0] in (lib.MAPI_RF_AND, lib.MAPI_RF_OR) else 0)
        peak = max(peak, depth)
    if peak > lib.MAPI_RF_MAX_STACK:
        raise MapiError(EFILTER, "RECORD_FILTER: %r nests deeper than %d" % (expr, lib.MAPI_RF_MAX_STACK),
                        argument="expr")
    arr = ffi.new("mapi_rf_insn[]", max(1, len(code)))
    for i, c in enumerate(code):
        arr[i].op = c[0]
        if c[0] == lib.MAPI_RF_CMP:
            _, field, cmp, value, family, addr, plen = c
            arr[i].field, arr[i].cmp, arr[i].value = field, cmp, value
            arr[i].family, arr[i].plen = family, plen
            ffi.memmove(arr[i].addr, addr, len(addr))
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
    return args


DESCRIPTOR = FunctionDescriptor(
    name="RECORD_FILTER",
    args=(Arg("expr", "s", doc="condition on flow record fields, e.g. 'proto=6 and dport=443'"),),
    create=lambda ctx, args: RecordFilter(*args),
    check=check,
    doc=__doc__,
    filters=True,
    result="none",
    cost="low",
    shareable=True,
)
