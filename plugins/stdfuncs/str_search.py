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

After COOKING (TCP stream chunks), STR_SEARCH searches streams: the bytes of each connection
direction are searched as one stream across its chunks, so a pattern split between two chunks
is found, and the chunk it ends in passes.  The chunk headers are not searched.  A chunk whose
seq does not continue its direction (bytes never seen in between) starts the stream afresh; a
direction is followed until its FIN or RST chunk, and at most max_streams at once (then the
least recently continued is forgotten).  With offset or depth, each chunk is searched alone in
that window instead (offsets count from the chunk's IP header).
Result: the number of packets (chunks) that matched; get_function_info() adds per-pattern
counts (per_pattern=True) and, on streams, streams (followed now), streams_evicted and
stream_breaks."""
from mapi._engine import ffi, lib
from mapi.descriptor import Arg, filter_descriptor
from mapi.errors import MapiError, EBADARG, ENOTSUP
from mapi.patterns import parse_pattern, parse_patterns  # noqa: F401 (the function's syntax)

from ._match_counts import MatchCounts

ENGINES = {"auto": lib.MAPI_STRSEARCH_AUTO, "hyperscan": lib.MAPI_STRSEARCH_HYPERSCAN,
           "memmem": lib.MAPI_STRSEARCH_MEMMEM}
ENGINE_NAMES = {v: k for k, v in ENGINES.items()}


def stream_input(ctx):
    """Whether the packets reaching the function are stream chunks: the nearest producer before
    it in its flow declares so (its derives callable has a true `stream_chunks`: COOKING)."""
    if ctx is None or ctx.resolve is None:
        return False
    producer = None
    for fid in range(1, ctx.fid):
        try:
            desc, _ = ctx.resolve(ctx.fd, fid)
        except MapiError:
            continue
        if desc.derives is not None:
            producer = desc
    return producer is not None and bool(getattr(producer.derives, "stream_chunks", False))


class StrSearch(MatchCounts):
    kernel = lib.mapi_strsearch_kernel
    counts_type = "mapi_strsearch_counts *"
    get_counts = staticmethod(lib.mapi_strsearch_get_counts)

    def __init__(self, patterns, offset, depth, engine, per_pattern, max_streams=0):
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
        if max_streams and lib.mapi_strsearch_streams(self.s, max_streams, err, 256) < 0:
            raise MapiError(ENOTSUP, "STR_SEARCH: streams: %s" % ffi.string(err).decode(errors="replace"),
                            argument="pattern")
        self.state = self.s
        self.per_pattern = per_pattern
        self.max_streams = max_streams

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
                 matched=c.matched, scan_errors=c.scan_errors, stream=bool(self.max_streams))
        if self.max_streams:
            d.update(streams=c.streams, streams_evicted=c.streams_evicted,
                     stream_breaks=c.stream_breaks, max_streams=self.max_streams)
        if self.per_pattern:
            d["pattern_counts"] = self.pattern_counts()
        return d


def check(ctx, args):
    patterns, offset, depth, engine, per_pattern, max_streams = args
    parse_patterns(patterns)                       # raises on a malformed pattern
    for name, v, lo in (("offset", offset, 0), ("depth", depth, 0), ("max_streams", max_streams, 1)):
        if not lo <= v < 2 ** 32:
            raise MapiError(EBADARG, "STR_SEARCH: %s must be between %d and 2^32-1, got %r"
                            % (name, lo, v), argument=name)
    return tuple(patterns), offset, depth, engine, bool(per_pattern), max_streams


def create(ctx, patterns, offset, depth, engine, per_pattern, max_streams):
    streams = max_streams if offset == depth == 0 and stream_input(ctx) else 0
    return StrSearch(patterns, offset, depth, engine, per_pattern, streams)


DESCRIPTOR = filter_descriptor(
    "STR_SEARCH", __doc__, create, check, result="u64", cost="high", context=True,
    args=(Arg("pattern", "S", doc="string or list of strings (snort |hex|, || alternatives)"),
          Arg("offset", "i", 0, doc="first byte of the frame searched"),
          Arg("depth", "i", 0, doc="bytes searched from offset; 0 = to the end"),
          Arg("engine", "c", "auto", choices=tuple(ENGINES)),
          Arg("per_pattern", "b", True, doc="count packets per pattern (info)"),
          Arg("max_streams", "i", 1 << 18, doc="after COOKING: directions followed at once")))
