"""REGEXP(pcre): keep the packets whose captured bytes (the whole frame) match a Perl-compatible
regular expression, PCRE2 with its JIT.

The subject is bytes, not text: no UTF mode, "." is any byte but newline; options go inline,
e.g. "(?i)host: (?s).*". A str pattern stands for its latin-1 bytes (bytes patterns are taken as
they are).  A match that exceeds PCRE2's effort limits (pathological backtracking) drops the
packet and is counted (info: match_errors).  Result: the number of packets that matched."""
from mapi._engine import ffi, lib
from mapi.descriptor import Arg, filter_descriptor
from mapi.errors import MapiError, EBADARG, ENOTSUP

from ._match_counts import MatchCounts


def compile_regexp(pattern):
    raw = pattern.encode("latin-1", errors="strict") if isinstance(pattern, str) else bytes(pattern)
    if not lib.mapi_regexp_available():
        raise MapiError(ENOTSUP, "REGEXP: this engine was built without PCRE2; install "
                        "libpcre2-dev and rebuild (make engine)", argument="pcre")
    err = ffi.new("char[256]")
    where = ffi.new("int64_t *")
    r = lib.mapi_regexp_new(raw, len(raw), 0, err, 256, where)
    if r == ffi.NULL:
        at = " at byte %d" % where[0] if where[0] >= 0 else ""
        raise MapiError(EBADARG, "REGEXP: invalid pattern %r%s: %s"
                        % (pattern, at, ffi.string(err).decode(errors="replace")), argument="pcre",
                        offset=where[0])
    return ffi.gc(r, lib.mapi_regexp_free)


class Regexp(MatchCounts):
    kernel = lib.mapi_regexp_kernel
    counts_type = "mapi_regexp_counts *"
    get_counts = staticmethod(lib.mapi_regexp_get_counts)

    def __init__(self, pattern):
        self.pattern = pattern
        self.r = compile_regexp(pattern)
        self.state = self.r

    def reset(self):
        lib.mapi_regexp_reset(self.r)

    def info(self):
        c = self._counts()
        return dict(pattern=self.pattern, jit=bool(c.jit), seen=c.seen, matched=c.matched,
                    match_errors=c.match_errors)


def check(ctx, args):
    (pattern,) = args
    try:
        pattern.encode("latin-1")
    except UnicodeEncodeError as exc:
        raise MapiError(EBADARG, "REGEXP: the pattern is matched against bytes; character %r at "
                        "position %d is not a byte (use \\xHH escapes)" % (pattern[exc.start], exc.start),
                        argument="pcre") from None
    compile_regexp(pattern)
    return args


DESCRIPTOR = filter_descriptor(
    "REGEXP", __doc__, Regexp, check, result="u64", cost="high",
    args=(Arg("pcre", "s", doc="PCRE2 pattern over the frame's bytes"),))
