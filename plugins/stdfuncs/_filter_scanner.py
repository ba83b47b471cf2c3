"""The words and values of RECORD_FILTER's language (nfdump's filter syntax): tokens with their
offsets for error messages, numbers with k/m/g scaling, addresses and prefixes (nfdump's short
10/8 forms and dotted masks), address lists, MAC addresses, protocol names, TCP flag letters."""
import ipaddress
import re

from mapi._engine import lib
from mapi.errors import MapiError, EFILTER

from ._names import _protocols

CMP = {"=": lib.MAPI_RF_EQ, "==": lib.MAPI_RF_EQ, "eq": lib.MAPI_RF_EQ, "!=": lib.MAPI_RF_NE,
       "<": lib.MAPI_RF_LT, "lt": lib.MAPI_RF_LT, "<=": lib.MAPI_RF_LE, "le": lib.MAPI_RF_LE,
       ">": lib.MAPI_RF_GT, "gt": lib.MAPI_RF_GT, ">=": lib.MAPI_RF_GE, "ge": lib.MAPI_RF_GE,
       "&": lib.MAPI_RF_ANY}
SCALE = {"k": 1000, "m": 1000 ** 2, "g": 1000 ** 3}
FLAG_BITS = {"F": 1, "S": 2, "R": 4, "P": 8, "A": 16, "U": 32, "E": 64, "C": 128, "X": 63}
PROTO_ALIASES = {"icmp6": 58, "ipv6-icmp": 58, "icmpv6": 58, "ipip": 4}
TOKEN = re.compile(r"\s*(?:(?P<op>==|!=|<=|>=|&&|\|\||=|<|>|&|!)|(?P<paren>[()\[\],])|"
                   r"(?P<word>[^\s()\[\],=!<>&|]+))")


class Scanner:
    def __init__(self, expr):
        self.expr = expr
        self.toks = self._tokens(expr)
        self.i = 0

    # --- tokens ---------------------------------------------------------------------------------
    def _tokens(self, expr):
        text = re.sub(r"#[^\n]*", lambda m: " " * len(m.group(0)), expr)     # nfdump's comments
        pos, out = 0, []
        while text[pos:].strip():
            m = TOKEN.match(text, pos)
            if not m or m.end() == pos:
                raise self.error(pos, "unexpected character %r" % text[pos])
            kind = m.lastgroup
            out.append((kind, m.group(kind), m.start(kind)))
            pos = m.end()
        return out

    def error(self, pos, why):
        return MapiError(EFILTER, "RECORD_FILTER: %s at offset %d of %r" % (why, pos, self.expr),
                         argument="expr")

    def peek(self, k=0):
        j = self.i + k
        return self.toks[j] if j < len(self.toks) else (None, None, len(self.expr))

    def word(self, k=0):
        t = self.peek(k)
        return t[1].lower() if t[1] is not None and t[0] == "word" else t[1]

    def take(self):
        t = self.peek()
        self.i += 1
        return t

    def expect(self, *words):
        kind, text, pos = self.take()
        if text is None or text.lower() not in words:
            raise self.error(pos, "expected %s, found %s" % (" or ".join(repr(w) for w in words),
                                                            repr(text) if text else "the end"))

    # --- values -----------------------------------------------------------------------------------
    def comparator(self, default=lib.MAPI_RF_EQ):
        w = self.word()
        if w in CMP:
            self.take()
            return CMP[w]
        return default

    def number(self, what):
        kind, text, pos = self.take()
        m = re.fullmatch(r"(0x[0-9a-f]+|\d+)([kmg]?)", (text or "").lower()) if kind == "word" else None
        if not m:
            raise self.error(pos, "expected a number after %s, found %s" % (what, repr(text) if text else "the end"))
        v = int(m.group(1), 0) * SCALE.get(m.group(2), 1)
        if v >= 1 << 64:
            raise self.error(pos, "%s is out of range" % text)
        return v

    def network(self, what, prefix_ok=True):
        """An address or prefix -> (family, packed, plen); `net A MASK` takes a dotted mask."""
        kind, text, pos = self.take()
        if kind != "word":
            raise self.error(pos, "expected an address after %s" % what)
        addr, slash, bits = text.partition("/")
        if re.fullmatch(r"\d+(\.\d+){0,2}", addr) and (slash or what == "net"):
            addr = ".".join(addr.split(".") + ["0"] * (3 - addr.count(".")))   # nfdump's 10/8
        if not slash and what == "net" and re.fullmatch(r"\d+\.\d+\.\d+\.\d+", self.word() or ""):
            slash, bits = "/", self.take()[1]                            # net 10.0.0.0 255.0.0.0
        text = addr + slash + bits
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise self.error(pos, "%r is not an address or prefix" % text)
        if not prefix_ok and net.num_addresses != 1:
            raise self.error(pos, "%r: %s takes an address; use net for a prefix" % (text, what))
        return net.version, net.network_address.packed, net.prefixlen

    def bracket_list(self):
        self.expect("[")
        items = []
        while self.word() != "]":
            if self.word() is None:
                raise self.error(self.peek()[2], "the list has no closing ']'")
            if self.word() == ",":
                self.take()
                continue
            items.append(self.i)
            self.take()
        self.take()
        return items

    def tcp_flags(self):
        kind, text, pos = self.take()
        bits = 0
        for ch in (text or "").upper() if kind == "word" else "?":
            if ch not in FLAG_BITS:
                raise self.error(pos, "expected TCP flags after 'flags' (A S F R P U C E, X for all)")
            bits |= FLAG_BITS[ch]
        return bits

    def mac(self, what):
        kind, text, pos = self.take()
        parts = re.split(r"[:-]", text or "")
        if len(parts) != 6 or not all(re.fullmatch(r"[0-9a-fA-F]{1,2}", p) for p in parts):
            raise self.error(pos, "expected a MAC address after %s, found %r" % (what, text))
        return bytes(int(p, 16) for p in parts)

    def protocol(self):
        kind, text, pos = self.take()
        if kind != "word":
            raise self.error(pos, "expected a protocol (tcp, udp, 6...), found %s"
                             % (repr(text) if text else "the end"))
        t = text.lower()
        if t.isdigit() and int(t) < 256:
            return int(t)
        names = {v: k for k, v in _protocols().items()}
        names.update(PROTO_ALIASES)
        if t not in names:
            raise self.error(pos, "unknown protocol %r" % text)
        return names[t]

    def _bytes_value(self, text, pos):
        t = (text or "").strip("'\"")
        if re.fullmatch(r"[0-9a-fA-F]{1,2}([:-][0-9a-fA-F]{1,2}){1,15}", t):
            return bytes(int(p, 16) for p in re.split(r"[:-]", t))
        if re.fullmatch(r"0x([0-9a-fA-F]{2}){1,16}", t):
            return bytes.fromhex(t[2:])
        if 0 < len(t.encode()) <= 16:
            return t.encode()
        raise self.error(pos, "expected a byte string (00:11:22..., 0x..., or text up to 16 bytes)")
