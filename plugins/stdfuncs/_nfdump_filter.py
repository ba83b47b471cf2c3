"""nfdump's filter syntax for flow records -> RECORD_FILTER's stack program.

    proto tcp and dst port 443          src net 10.0.0.0/8          bytes > 10k
    not (port 53 or proto icmp)         flags S and not flags AFRPU as 65000
    ip in [10.0.0.1 192.168.0.0/16]     in src mac 00:11:22:33:44:55  mpls label1 20005

Primitives (nfdump 1.7's names): any, ipv4/inet, ipv6/inet6, proto P, [src|dst] ip|host A,
[src|dst] ip in [list], [src|dst] net N/bits (or N MASK), [src|dst] port [cmp] n,
[src|dst] port in [list], [src|dst|prev|next] as [cmp] n (and `as in [list]`), [in|out] if n,
[src|dst] mask n, [src|dst] vlan n, [src|dst] tos n (tos alone: the source's), flags FLAGS (all of
A S F R P U C E, X: all; "not flags FLAGS": none of them, as nfdump),
icmp-type n, icmp-code n, engine-type n, engine-id n, next ip A, bgpnext ip A, router ip A,
[in|out] [src|dst] mac M, mpls labelN/expN [cmp] n (N = 1; deeper labels by element name),
[in|out] packets|bytes [cmp] n[k|m|g], duration|pps|bps|bpp [cmp] n, flowdir ingress|egress,
nat event n, [src|dst] nip|xip A, [src|dst] nport|xport n, ingress vrf n, egress vrf n,
observation domain id n.  A qualifier may be "src or dst" / "src and dst".  Comparators: = == >
< >= <= and EQ GT LT GE LE; none means ==.  Operators: and && or || not ! ( ).

Beyond nfdump: FIELD OP VALUE on any field of the vocabulary (_record_vocab: packet names such as
addr.src, every IPFIX element name, the short names), OP one of = == != < <= > >= & (any of these
bits) and `in` (an address in a prefix): `sourceMacAddress = 00:1b:21:3c:9d:f8`,
`ingressVRFID > 0`, `tcp_flags & 0x04`, `src in 10.0.0.0/8`.
"""
import re

from mapi._engine import lib
from mapi.errors import MapiError
from mapi.ipfix_ie import BY_NAME

from . import _record_vocab as vocab
from ._filter_scanner import CMP, Scanner

# qualifier -> (src field, dst field) for the primitives that take one
PAIRS = {"ip": ("src", "dst"), "host": ("src", "dst"), "net": ("src", "dst"),
         "port": ("sport", "dport"), "as": ("src_as", "dst_as"), "mask": ("src_mask", "dst_mask"),
         "vlan": ("vlan", "dst_vlan"), "tos": ("tos", "dst_tos"), "nip": ("nat_src", "nat_dst"),
         "xip": ("nat_src", "nat_dst"), "nport": ("nat_sport", "nat_dport"),
         "xport": ("nat_sport", "nat_dport"), "mac": ("src_mac", "dst_mac")}
NUMBER_KEYWORDS = {"duration": "duration", "pps": "pps", "bps": "bps", "bpp": "bpp",
                   "icmp-type": "icmp_type", "icmp-code": "icmp_code",
                   "engine-type": "engine_type", "engine-id": "engine_id"}


class Program:
    """Postfix code: ("cmp", Field, cmp, value) / ("and",) / ("or",) / ("not",) / ("true",)."""

    def __init__(self):
        self.code = []

    def cmp(self, f, cmp, value):
        self.code.append(("cmp", f, cmp, value))

    def op(self, name, count=1):
        self.code.extend([(name,)] * count)


class Parser(Scanner):
    def __init__(self, expr):
        Scanner.__init__(self, expr)
        self.prog = Program()

    # --- expressions ------------------------------------------------------------------------------
    def parse(self):
        if not self.toks:
            raise self.error(0, "empty expression")
        self.expr_()
        if self.i < len(self.toks):
            raise self.error(self.peek()[2], "unexpected %r" % self.peek()[1])
        return self.prog.code

    def _chain(self, operand, words, op):
        """operand {WORD operand}, each pair combined with op."""
        operand()
        while self.word() in words:
            self.take()
            operand()
            self.prog.op(op)

    def expr_(self):
        self._chain(self.term, ("or", "||"), "or")

    def term(self):
        self._chain(self.factor, ("and", "&&"), "and")

    def factor(self):
        w = self.word()
        if w in ("not", "!"):
            self.take()
            if self.word() == "flags":             # nfdump: "not flags X" is "none of X"
                self.take()
                self.prog.cmp(vocab.SHORT["tcp_flags"], lib.MAPI_RF_ANY, self.tcp_flags())
            else:
                self.factor()
            self.prog.op("not")
        elif w == "(":
            self.take()
            self.expr_()
            self.expect(")")
        elif w is None:
            raise self.error(self.peek()[2], "the expression ends too early")
        elif self.peek()[0] != "word":
            raise self.error(self.peek()[2], "expected a filter primitive, 'not' or '('")
        else:
            self.primitive()

    # --- comparisons on fields -------------------------------------------------------------------
    def either(self, names, qual, emit):
        """emit(Field) for the field(s) a qualifier names: src, dst, either (or), both (and)."""
        chosen = {"src": names[:1], "dst": names[1:], "and": names, "or": names, None: names}[qual]
        for n in chosen:
            emit(vocab.SHORT[n])
        if len(chosen) == 2:
            self.prog.op("and" if qual == "and" else "or")

    def addr_cmp(self, f, net):
        family, packed, plen = net
        self.prog.cmp(f._replace(family=family), lib.MAPI_RF_IN, (packed, plen))

    def num_cmp(self, names, qual, what):
        cmp = self.comparator()
        v = self.number(what)
        self.either(names, qual, lambda f: self.prog.cmp(f, cmp, v))

    def in_list(self, names, qual, what, address):
        idx = self.bracket_list()
        if not idx:
            raise self.error(self.peek()[2], "%s in []: the list is empty" % what)
        save = self.i
        for k, j in enumerate(idx):
            self.i = j
            if address:
                net = self.network(what)
                self.either(names, qual, lambda f: self.addr_cmp(f, net))
            else:
                v = self.number(what)
                self.either(names, qual, lambda f: self.prog.cmp(f, lib.MAPI_RF_EQ, v))
            if k:
                self.prog.op("or")
        self.i = save

    # --- primitives --------------------------------------------------------------------------------
    def qualifier(self):
        w = self.word()
        if w in ("src", "dst"):
            if self.word(1) in ("or", "and") and self.word(2) == ("dst" if w == "src" else "src"):
                qual = self.word(1)
                self.i += 3
                return qual
            self.take()
            return w
        return None

    def primitive(self):
        kind, text, pos = self.peek()
        w = self.word()
        if w in ("any", "true"):
            self.take()
            self.prog.op("true")
            return
        if w in ("ipv4", "inet", "ipv6", "inet6"):
            self.take()
            self.prog.cmp(vocab.SHORT["family"], lib.MAPI_RF_EQ, 4 if w in ("ipv4", "inet") else 6)
            return
        if w == "proto":
            self.take()
            self.comparator()
            self.prog.cmp(vocab.SHORT["proto"], lib.MAPI_RF_EQ, self.protocol())
            return
        if w in ("in", "out") and self.word(1) in ("if", "packets", "bytes", "mac", "src", "dst"):
            return self.directional(w)
        if self.field_comparison():
            return
        qual = self.qualifier()
        w = self.word()
        if w in ("ip", "host", "nip", "xip") or (qual and w == "in"):
            return self.address_primitive(qual, w)
        if w == "net":
            self.take()
            net = self.network("net")
            self.either(PAIRS["net"], qual, lambda f: self.addr_cmp(f, net))
            return
        if w in ("port", "as", "mask", "vlan", "tos", "nport", "xport"):
            self.take()
            if w == "tos" and qual is None:
                qual = "src"                            # nfdump: tos is the source's
            if self.word() == "in":
                self.take()
                return self.in_list(PAIRS[w], qual, w, address=False)
            return self.num_cmp(PAIRS[w], qual, w)
        if w in ("prev", "next", "bgpnext", "router") or qual is not None:
            return self.hop(qual, w)
        if w == "mac":
            return self.keyword(w, pos)
        return self.keyword(w, pos)

    def address_primitive(self, qual, w):
        self.take()
        names = PAIRS["nip" if w in ("nip", "xip") else "ip"]
        if w == "in" or self.word() == "in":
            if w != "in":
                self.take()
            if self.word() != "[":                      # the old "src in 10.0.0.0/8"
                net = self.network("in")
                return self.either(names, qual, lambda f: self.addr_cmp(f, net))
            return self.in_list(names, qual, w, address=True)
        if self.comparator(None) not in (None, lib.MAPI_RF_EQ):
            raise self.error(self.toks[self.i - 1][2], "%s compares with = only (use not)" % w)
        net = self.network(w)
        self.either(names, qual, lambda f: self.addr_cmp(f, net))

    def hop(self, qual, w):
        pos = self.peek()[2]
        if qual is not None:
            raise self.error(pos, "after %r expected ip, host, net, port, as, mask, vlan, tos or "
                             "mac, found %r" % (qual, self.peek()[1]))
        self.take()
        if w in ("prev", "next") and self.word() == "as":
            self.take()
            f = vocab.field("bgpPrevAdjacentAsNumber" if w == "prev" else "bgpNextAdjacentAsNumber",
                            "RECORD_FILTER")
            cmp = self.comparator()
            self.prog.cmp(f, cmp, self.number(w + " as"))
            return
        self.expect("ip", "host")
        net = self.network(w + " ip")
        self.addr_cmp(vocab.SHORT[{"next": "nexthop", "bgpnext": "bgp_nexthop", "router": "exporter"}[w]], net)

    def directional(self, d):
        self.take()
        w = self.word()
        if w == "if":
            self.take()
            return self.num_cmp(("input",) if d == "in" else ("output",), None, d + " if")
        if w in ("packets", "bytes"):
            self.take()
            name = w if d == "in" else "out_" + w
            return self.num_cmp((name,), None, d + " " + w)
        sd = self.qualifier()
        self.expect("mac")
        m = self.mac(d + " mac")
        fields = {("in", "src"): [vocab.SHORT["src_mac"]], ("in", "dst"): [vocab.SHORT["dst_mac"]],
                  ("out", "src"): [vocab.field("postSourceMacAddress", "RECORD_FILTER")],
                  ("out", "dst"): [vocab.field("postDestinationMacAddress", "RECORD_FILTER")]}
        chosen = fields[(d, sd)] if sd in ("src", "dst") else fields[(d, "src")] + fields[(d, "dst")]
        for f in chosen:
            self.prog.cmp(f, lib.MAPI_RF_BYTES_EQ, m)
        self.prog.op("or", len(chosen) - 1)

    def keyword(self, w, pos):
        self.take()
        if w in ("packets", "bytes"):
            return self.num_cmp((w,), None, w)
        if w in NUMBER_KEYWORDS:
            self.num_cmp((NUMBER_KEYWORDS[w],), None, w)
            if w.startswith("icmp-"):                 # implies proto icmp (either family)
                self.prog.cmp(vocab.SHORT["proto"], lib.MAPI_RF_EQ, 1)
                self.prog.cmp(vocab.SHORT["proto"], lib.MAPI_RF_EQ, 58)
                self.prog.op("or")
                self.prog.op("and")
            return
        if w == "if":
            return self.num_cmp(("input", "output"), None, "if")
        if w == "mac":
            m = self.mac("mac")
            fields = [vocab.SHORT["src_mac"], vocab.SHORT["dst_mac"],
                      vocab.field("postSourceMacAddress", "RECORD_FILTER"),
                      vocab.field("postDestinationMacAddress", "RECORD_FILTER")]
            for f in fields:
                self.prog.cmp(f, lib.MAPI_RF_BYTES_EQ, m)
            return self.prog.op("or", 3)
        if w == "flags":                          # all of them
            return self.prog.cmp(vocab.SHORT["tcp_flags"], lib.MAPI_RF_ALL, self.tcp_flags())
        if w == "mpls":
            kind, text, mpos = self.take()
            m = re.fullmatch(r"(label|exp)(\d+)", (text or "").lower())
            if not m or m.group(2) != "1":
                raise self.error(mpos, "mpls takes label1 or exp1 (deeper labels: "
                                 "mplsLabelStackSection2... by element name)")
            return self.num_cmp(("mpls_%s1" % m.group(1),), None, "mpls " + text)
        if w == "flowdir":
            kind, text, dpos = self.take()
            d = {"ingress": 0, "egress": 1, "0": 0, "1": 1}.get((text or "").lower())
            if d is None:
                raise self.error(dpos, "flowdir takes ingress or egress")
            return self.prog.cmp(vocab.SHORT["direction"], lib.MAPI_RF_EQ, d)
        if w == "nat":
            self.expect("event")
            return self.num_cmp(("nat_event",), None, "nat event")
        if w in ("ingress", "egress"):
            self.expect("vrf")
            return self.num_cmp(("%s_vrf" % w,), None, w + " vrf")
        if w == "observation":
            self.expect("domain")
            self.expect("id")
            return self.num_cmp(("domain",), None, "observation domain id")
        raise self.error(pos, "unknown filter primitive %r" % self.toks[self.i - 1][1])

    def field_comparison(self):
        """FIELD OP VALUE on the vocabulary; False when the word is not followed by an operator
        or is not a field (then it is one of nfdump's primitives)."""
        kind, text, pos = self.peek()
        op = self.peek(1)[1]
        if op not in CMP and not (op == "in" and self.peek(2)[1] != "["):
            return False
        low = text.lower()
        if low in PAIRS_LEGACY:
            self.i += 2
            return self.legacy_either(low, op, pos)
        if text in BY_NAME or text.startswith("reverse."):
            try:
                f = vocab.field(text, "RECORD_FILTER")
            except MapiError as exc:                        # IANA names: their own errors
                raise self.error(pos, str(exc).split(": ", 1)[1]) from None
        else:
            try:
                f = vocab.field(low, "RECORD_FILTER")
            except MapiError:
                return False
        self.i += 2
        return self.compare_value(f, op, pos)

    def legacy_either(self, name, op, pos):
        names = PAIRS_LEGACY[name]
        if name == "host":
            net = self.network(name)
            for n in names:
                self.addr_cmp(vocab.SHORT[n], net)
                if op == "!=":
                    self.prog.op("not")
            self.prog.op("and" if op == "!=" else "or")
            return True
        v = self.number(name)
        for n in names:
            self.prog.cmp(vocab.SHORT[n], CMP[op], v)
        self.prog.op("and" if op == "!=" else "or")
        return True

    def compare_value(self, f, op, pos):
        vpos = self.peek()[2]
        if f.kind == "address":
            net = self.network(op)
            self.addr_cmp(f, net)
            if op == "!=":
                self.prog.op("not")
            elif op not in ("=", "==", "in"):
                raise self.error(vpos, "addresses compare with =, != or in, not %r" % op)
            return True
        if op == "in":
            raise self.error(vpos, "'in' takes an address field")
        if f.kind == "bytes":
            kind, text, _ = self.take()
            raw = self._bytes_value(text, vpos)
            if op not in ("=", "==", "!="):
                raise self.error(vpos, "byte strings compare with = or !=, not %r" % op)
            self.prog.cmp(f, lib.MAPI_RF_BYTES_EQ, raw)
            if op == "!=":
                self.prog.op("not")
            return True
        if f.code == lib.MAPI_RF_PROTO and self.peek()[0] == "word" and not self.peek()[1][0].isdigit():
            self.prog.cmp(f, CMP[op], self.protocol())
            return True
        self.prog.cmp(f, CMP[op], self.number(op))
        return True



# the old RECORD_FILTER names for "either field": port = 53, host != 10.0.0.1
PAIRS_LEGACY = {"port": ("sport", "dport"), "host": ("src", "dst")}


def compile_filter(expr):
    """Postfix code for `expr`; MapiError (EFILTER) naming the offset of a problem."""
    return Parser(expr).parse()
