"""What the payload matchers (REGEXP, STR_SEARCH) share: their C state keeps counts (seen,
matched, the last match's time...) read into a struct, and the result is (matched, last_ts)."""
from mapi._engine import ffi
from mapi.descriptor import FunctionInstance


class MatchCounts(FunctionInstance):
    """A matcher whose C state (self.state) fills a `counts_type` struct through `get_counts`."""

    counts_type = None          # e.g. "mapi_regexp_counts *"
    get_counts = None           # staticmethod(lib.mapi_regexp_get_counts)

    def _counts(self):
        c = ffi.new(self.counts_type)
        self.get_counts(self.state, c)
        return c

    def result(self):
        c = self._counts()
        return c.matched, c.last_ts
