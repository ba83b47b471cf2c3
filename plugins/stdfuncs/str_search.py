"""STR_SEARCH(pattern, offset=0, depth=0): keep the packets whose captured bytes contain a
pattern, searched from byte `offset` of the frame for `depth` bytes (0: to the end of the
captured bytes); a match must lie wholly inside that window.

`pattern` is a string or a list of strings; a packet passes if any of them occurs.  In each
string, snort-style |hex| blocks give bytes by value ("ab|63 64|" == "abcd"), a backslash takes
the next character literally ("\\|" is a pipe), and "||" outside a hex block separates
alternatives, as in MAPI ("abcd|||65 66|||ij" is abcd, ef or ij).  Characters up to U+00FF stand
for one byte each (latin-1); others for their UTF-8 bytes.

Hundreds of patterns cost about what one does: with Hyperscan they form one literal database
scanned once per packet; without it, each pattern is looked for in turn (memmem).
Result: the number of packets that matched; get_function_info() adds per-pattern packet
counts (per_pattern=True)."""
from mapi._engine import ffi, lib
from mapi.descriptor import Arg, FunctionDescriptor, FunctionInstance
from mapi.errors import MapiError, EBADARG, ENOTSUP
from mapi.patterns import parse_pattern, parse_patterns  # noqa: F401 (the function's syntax)

ENGINES = {"auto": lib.MAPI_STRSEARCH_AUTO, "hyperscan": lib.MAPI_STRSEARCH_HYPERSCAN,
           "memmem": lib.MAPI_STRSEARCH_MEMMEM}
ENGINE_NAMES = {v: k for k, v in ENGINES.items()}


class StrSearch(FunctionInstance):
    kernel = lib.mapi_strsearch_kernel

    def __init__(self, patterns, offset, depth, engine, per_pattern):
        self.patterns = parse_patterns(patterns)
        self.offset, self.depth = offset, depth
        keep = [ffi.new("uint8_t[]", p) for p in self.patterns]
        ptrs = ffi.new("uint8_t *[]", keep)
        lens = ffi.new("uint32_t[]", [len(p) for p in self.patterns])
        err = ffi.new("char[256]")
        s = lib.mapi_strsearch_new(ptrs, lens, len(self.patterns), offset, depth, ENGINES[engine],
                                   int(per_pattern), err, 256)
        if s == ffi.NULL:
            raise MapiError(ENOTSUP if engine == "hyperscan" else EBADARG,
                            "STR_SEARCH: %s" % ffi.string(err).decode(errors="replace"),
                            argument="pattern")
        self.s = ffi.gc(s, lib.mapi_strsearch_free)
        self.state = self.s
        self.per_pattern = per_pattern

    def _counts(self):
        c = ffi.new("mapi_strsearch_counts *")
        lib.mapi_strsearch_get_counts(self.s, c)
        return c

    def result(self):
        c = self._counts()
        return c.matched, c.last_ts

    def pattern_counts(self):
        n = len(self.patterns)
        buf = ffi.new("uint64_t[]", n)
        lib.mapi_strsearch_pattern_counts(self.s, buf, n)
        return list(buf)

    def reset(self):
        lib.mapi_strsearch_reset(self.s)

    def info(self):
        c = self._counts()
        d = dict(patterns=len(self.patterns), offset=self.offset, depth=self.depth,
                 engine=ENGINE_NAMES[lib.mapi_strsearch_engine(self.s)], seen=c.seen,
                 matched=c.matched, scan_errors=c.scan_errors)
        if self.per_pattern:
            d["pattern_counts"] = self.pattern_counts()
        return d


def check(ctx, args):
    patterns, offset, depth, engine, per_pattern = args
    parse_patterns(patterns)                       # raises on a malformed pattern
    for name, v in (("offset", offset), ("depth", depth)):
        if not 0 <= v < 2 ** 32:
            raise MapiError(EBADARG, "STR_SEARCH: %s must be between 0 and 2^32-1, got %r"
                            % (name, v), argument=name)
    return tuple(patterns), offset, depth, engine, bool(per_pattern)


DESCRIPTOR = FunctionDescriptor(
    name="STR_SEARCH",
    args=(Arg("pattern", "S", doc="string or list of strings (snort |hex|, || alternatives)"),
          Arg("offset", "i", 0, doc="first byte of the frame searched"),
          Arg("depth", "i", 0, doc="bytes searched from offset; 0 = to the end"),
          Arg("engine", "c", "auto", choices=tuple(ENGINES)),
          Arg("per_pattern", "b", True, doc="count packets per pattern (info)")),
    create=lambda ctx, args: StrSearch(*args),
    check=check,
    doc=__doc__,
    filters=True,
    result="u64",
    cost="high",
    shareable=True,
    stateful=True,
)
