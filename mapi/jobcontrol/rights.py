"""What a verified token (or a uid's grant) allows, read from its blocks.

Biscuit itself enforces every check of every block (policy.py runs the authorizer on each
call); this reading serves what the server must *do* on the token's behalf and what it must
*say*: the filter terms it installs in front of every flow (all blocks, ANDed), the limits it
counts usage against (each block's, at that block's level) with the numbers for a refusal, the
earliest expiry, and the authority block's rights for messages.  The block sources are Biscuit's
own canonical printing of signed blocks; only the facts named below are read from them."""
import datetime
import re
from dataclasses import dataclass, field

FACT = re.compile(r'^([a-z_]+)\((.*)\);$')
TERM = re.compile(r'\s*(?:"((?:[^"\\]|\\.)*)"|(-?\d+)(?![\d-])|'
                  r'(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d))|(true|false))\s*(,|$)')
READ = ("principal", "right", "filter_prefix", "limit", "expires")


def _terms(text):
    out, pos = [], 0
    while pos < len(text):
        m = TERM.match(text, pos)
        if m is None:
            return None                     # not a plain fact of ours: ignored
        s, i, d, b = m.group(1), m.group(2), m.group(3), m.group(4)
        if s is not None:
            out.append(re.sub(r'\\(.)', r'\1', s))
        elif i is not None:
            out.append(int(i))
        elif d is not None:
            out.append(datetime.datetime.fromisoformat(d.replace("Z", "+00:00")))
        else:
            out.append(b == "true")
        pos = m.end()
    return out


def block_facts(source):
    """[(name, [terms])] of the facts of one block's source that rights are made of."""
    out = []
    for line in source.splitlines():
        m = FACT.match(line.strip())
        if m and m.group(1) in READ:
            terms = _terms(m.group(2))
            if terms is not None:
                out.append((m.group(1), terms))
    return out


@dataclass
class Rights:
    principal: str
    devices: set = field(default_factory=set)       # "*": every device; "offline": own traces
    functions: set = field(default_factory=set)
    classes: set = field(default_factory=set)       # "*": every class
    load: set = field(default_factory=set)          # code kinds beyond sandboxed: "plain"
    filters: list = field(default_factory=list)     # [(block, expr)]
    limits: dict = field(default_factory=dict)      # quota -> [(block, value)]
    expires: object = None                          # earliest expiry (datetime, UTC) or None
    ids: list = field(default_factory=list)         # revocation id (hex) of each block
    unrestricted: bool = False                      # root without a token / the embedded mode

    @property
    def prefix(self):
        """The filter the server puts in front of every flow ("" for none)."""
        terms = [e for _, e in self.filters]
        if len(terms) <= 1:
            return terms[0] if terms else ""
        return " and ".join("(%s)" % t for t in terms)

    def limit(self, quota):
        """(value, block) of the tightest limit on `quota`, or (None, None)."""
        values = self.limits.get(quota)
        if not values:
            return None, None
        block, value = min(values, key=lambda bv: bv[1])
        return value, block

    def summary(self):
        return dict(principal=self.principal, devices=sorted(self.devices),
                    functions=sorted(self.functions), classes=sorted(self.classes),
                    load=sorted(self.load), filter=self.prefix,
                    limits={q: min(v for _, v in vs) for q, vs in self.limits.items()},
                    expires=self.expires.isoformat() if self.expires else None,
                    blocks=len(self.ids), unrestricted=self.unrestricted)


def rights_of(token):
    """Rights of a verified Biscuit: authority facts, plus every block's filter, limits and
    expiry (those only narrow)."""
    r = None
    for i in range(token.block_count()):
        for name, terms in block_facts(token.block_source(i)):
            if i == 0 and name == "principal" and terms:
                r = r or Rights(str(terms[0]))
            if r is None:
                r = Rights("")
            if i == 0 and name == "right" and len(terms) == 2:
                kind, value = terms
                {"device": r.devices, "function": r.functions, "class": r.classes,
                 "load": r.load}.get(kind, set()).add(value)
            elif name == "filter_prefix" and terms and isinstance(terms[0], str):
                r.filters.append((i, terms[0]))
            elif name == "limit" and len(terms) == 2 and isinstance(terms[1], int):
                r.limits.setdefault(terms[0], []).append((i, terms[1]))
            elif name == "expires" and terms and isinstance(terms[0], datetime.datetime):
                r.expires = terms[0] if r.expires is None else min(r.expires, terms[0])
    r = r or Rights("")
    r.ids = list(token.revocation_ids)
    return r
