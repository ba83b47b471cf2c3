"""The flow language of `mapi run`: one quoted argument is one flow, a list of steps.

    parse_flow('BPF_FILTER("tcp port 80") web=PKT_COUNTER, TOP(3, "ip.src")')
      -> [Step(label=None, name='BPF_FILTER', args=['tcp port 80'], ...), Step('web', ...), ...]

Pure syntax: names are not looked up here (the job runner checks them against the installed
functions), so parsing needs nothing but `re` and the constant names.  Every mistake is a
SpecError naming the flow and the column.
"""
import re
from collections import namedtuple

from mapi import constants

FLOW_SYNTAX = """\
flow syntax (one quoted argument per flow; its functions run in order, each on the packets
the previous filters let through):

  FLOW   := STEP { [,] STEP }
  STEP   := [LABEL =] NAME [ ( [ARG {, ARG}] ) ]
  ARG    := [PARAM =] VALUE
  VALUE  := "string" | 'string' | number | CONSTANT | LABEL | [VALUE, ...] | true | false

  - NAME is a MAPI function (see `mapi functions`); parentheses may be left out when it takes
    no arguments or only its defaults: PKT_COUNTER, TO_BUFFER.
  - Strings: a backslash escapes only the quote and itself; other sequences (\\d, \\x41) reach
    the function as written.  STR_SEARCH takes snort-style hex: "|0d 0a|Host:".
  - Numbers: 100, -3, 0x1f, 2.5, 1e6.
  - CONSTANT: a MAPI constant such as PERIODIC, PROBABILISTIC, WAIT, NOWAIT, GREATER, LESS,
    EQUAL, ADD, SUB.
  - LABEL = STEP names the step's result; another step, in this flow or another one, passes the
    label where a function expects a result of another flow (fd, fid), e.g. THRESHOLD:
      'BPF_FILTER("udp port 53") q=PKT_COUNTER'  'THRESHOLD(GREATER, q, 100)'
    Labels are lower-case words that are neither constants nor function names.

examples:
  mapi run -r trace.pcap 'BPF_FILTER("tcp port 80") PKT_COUNTER BYTE_COUNTER'
  mapi run -r trace.pcap 'PKT_COUNTER' 'BPF_FILTER("udp") SAMPLE(10, PERIODIC) PKT_COUNTER'
  mapi run -r trace.pcap --json 'STR_SEARCH(["GET /", "|0d 0a|Host:"]) PKT_COUNTER'
"""


class SpecError(Exception):
    """A flow spec that does not parse or does not make sense (exit 2)."""

    def __init__(self, flow, col, message):
        self.flow, self.col = flow, col
        if flow is None:
            super().__init__(message)
            return
        where = "flow %d" % flow if col is None else "flow %d, column %d" % (flow, col)
        super().__init__("%s: %s" % (where, message))


Step = namedtuple("Step", "label name args kwargs col text")   # one function call of a flow
Ref = namedtuple("Ref", "label col")                          # a LABEL used as an argument

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<num>[-+]?(?:0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?))
  | (?P<name>[A-Za-z_]\w*(?::[A-Za-z_]\w*)?(?:!\w+)?)
  | (?P<punct>[()\[\],=])
""", re.X)

_BOOLS = {"true": True, "True": True, "false": False, "False": False}


def _constant_names():
    return {n: getattr(constants, n) for n in dir(constants)
            if n.isupper() and isinstance(getattr(constants, n), (str, int))}


def _tokens(flow, text):
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            ch = text[pos]
            if ch in "\"'":
                raise SpecError(flow, pos + 1, "string starting here has no closing %s" % ch)
            raise SpecError(flow, pos + 1, "unexpected character %r" % ch)
        kind = m.lastgroup
        if kind == "num" and m.end() < len(text) and (text[m.end()].isalnum() or text[m.end()] == "_"):
            raise SpecError(flow, pos + 1, "%r is not a number" % re.match(r"[\w.+-]+", text[pos:]).group())
        if kind != "ws":
            out.append((kind, m.group(), pos + 1))
        pos = m.end()
    out.append(("end", "", len(text) + 1))
    return out


def _unquote(tok):
    quote, body = tok[0], tok[1:-1]
    return re.sub(r"\\([\\%s])" % quote, r"\1", body)


def _number(tok):
    t = tok.lower()
    if "x" in t:
        return int(t, 16)
    if any(c in t for c in ".e"):
        return float(t)
    return int(t)


class _Parser:
    def __init__(self, flow, text):
        self.flow, self.text = flow, text
        self.toks = _tokens(flow, text)
        self.i = 0
        self.constants = _constant_names()

    def peek(self, k=0):
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def take(self):
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def fail(self, tok, what):
        found = "the end of the flow" if tok[0] == "end" else repr(tok[1])
        raise SpecError(self.flow, tok[2], "expected %s, found %s" % (what, found))

    def expect(self, value, what):
        tok = self.take()
        if tok[1] != value or tok[0] not in ("punct",):
            self.fail(tok, what)
        return tok

    def flow_steps(self):
        steps = []
        while self.peek()[0] != "end":
            if steps and self.peek()[1] == ",":
                self.take()
            steps.append(self.step())
        if not steps:
            raise SpecError(self.flow, None, "empty flow: give at least one function, e.g. PKT_COUNTER")
        return steps

    def step(self):
        start = self.peek()
        label = None
        if start[0] == "name" and self.peek(1)[1] == "=":
            label = self.take()[1]
            self.take()
            if not re.fullmatch(r"[a-z_][a-z0-9_]*", label):
                raise SpecError(self.flow, start[2], "label %r must be a lower-case word "
                                "(a-z, 0-9, _), e.g. c=PKT_COUNTER" % label)
            if label in _BOOLS:
                raise SpecError(self.flow, start[2], "%r cannot be a label" % label)
        tok = self.take()
        if tok[0] != "name":
            self.fail(tok, "a function name such as PKT_COUNTER")
        args, kwargs = [], {}
        end = tok[2] + len(tok[1])
        if self.peek()[1] == "(" and self.peek()[0] == "punct":
            self.take()
            while self.peek()[1] != ")":
                if args or kwargs:
                    self.expect(",", "',' or ')' in the arguments of %s" % tok[1])
                    if self.peek()[1] == ")":
                        break
                if self.peek()[0] == "name" and self.peek(1)[1] == "=":
                    key = self.take()
                    self.take()
                    if key[1] in kwargs:
                        raise SpecError(self.flow, key[2], "argument %s given twice" % key[1])
                    kwargs[key[1]] = self.value()
                else:
                    if kwargs:
                        raise SpecError(self.flow, self.peek()[2], "positional argument after "
                                        "a named one in %s" % tok[1])
                    args.append(self.value())
            close = self.expect(")", "')' to close the arguments of %s" % tok[1])
            end = close[2] + 1
        text = self.text[start[2] - 1:end - 1]
        return Step(label, tok[1], args, kwargs, start[2], text)

    def value(self):
        tok = self.take()
        kind, val, col = tok
        if kind == "str":
            return _unquote(val)
        if kind == "num":
            return _number(val)
        if kind == "name":
            if val in _BOOLS:
                return _BOOLS[val]
            if val in self.constants:
                return self.constants[val]
            if re.fullmatch(r"[a-z_][a-z0-9_]*", val):
                return Ref(val, col)
            raise SpecError(self.flow, col, "unknown constant %r (constants: %s; a label is "
                            "a lower-case word)" % (val, ", ".join(sorted(self.constants))))
        if kind == "punct" and val == "[":
            items = []
            while self.peek()[1] != "]":
                if items:
                    self.expect(",", "',' or ']' in the list")
                    if self.peek()[1] == "]":
                        break
                items.append(self.value())
            self.expect("]", "']' to close the list")
            return items
        self.fail(tok, "a value (string, number, constant, label or list)")


def parse_flow(text, flow=1):
    """The steps of one flow spec; SpecError names the flow and column of a mistake."""
    return _Parser(flow, text).flow_steps()


def walk_refs(v):
    """Every Ref in an argument value (a label, or labels inside a list)."""
    if isinstance(v, Ref):
        yield v
    elif isinstance(v, list):
        for x in v:
            yield from walk_refs(x)
