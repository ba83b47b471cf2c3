"""STARTSTOP(start="", stop=""): pass the packets whose time t is in [start, stop).

Times are packet times.  Each bound is "" (none), relative or absolute:
  relative  "+10s", "10s" (MAPI's form), "+1.5ms", "+250us", "+100ns", "+2m", "+1h": from the
            reference time, the timestamp of the first packet of the first batch the function
            sees (the device's first packet for flows connected before replay starts);
  absolute  "@1609829736.5" (seconds since the epoch) or ISO 8601 "2021-01-05T06:56:00Z"
            ("2021-01-05 06:56:00.25+01:00"; no zone means UTC).
Result: the number of packets passed (u64)."""
import re

from mapi._engine import ffi, lib
from mapi.descriptor import Arg, FunctionInstance, filter_descriptor
from mapi.errors import MapiError, EBADARG

UNITS = {"ns": 1, "us": 10 ** 3, "\u00b5s": 10 ** 3, "ms": 10 ** 6, "s": 10 ** 9, "m": 60 * 10 ** 9,
         "min": 60 * 10 ** 9, "h": 3600 * 10 ** 9}
RELATIVE = re.compile(r"^\+?\s*(\d+(?:\.\d*)?|\.\d+)\s*(ns|us|\u00b5s|ms|s|min|m|h)$")


def parse_time(text, name):
    """(kind, ns) for one bound; kind is a MAPI_STARTSTOP_* constant."""
    s = text.strip()
    if not s:
        return lib.MAPI_STARTSTOP_NONE, 0
    m = RELATIVE.match(s)
    if m:
        num, unit = m.groups()
        whole, _, frac = num.partition(".")
        ns = int(whole or 0) * UNITS[unit] + (int(frac) * UNITS[unit] // 10 ** len(frac) if frac else 0)
        return lib.MAPI_STARTSTOP_REL, ns
    if s.startswith("@"):
        try:
            whole, _, frac = s[1:].strip().partition(".")
            ns = int(whole) * 10 ** 9 + (int(frac.ljust(9, "0")[:9]) if frac else 0)
            return lib.MAPI_STARTSTOP_ABS, ns
        except ValueError:
            pass
    else:
        try:
            import datetime
            dt = datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=datetime.timezone.utc)
            epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
            delta = dt - epoch
            ns = (delta.days * 86400 + delta.seconds) * 10 ** 9 + delta.microseconds * 1000
            return lib.MAPI_STARTSTOP_ABS, ns
        except ValueError:
            pass
    raise MapiError(EBADARG, "STARTSTOP: %s %r is not a time: use \"+10s\" (relative: ns, us, ms, "
                    "s, m, h), \"@<epoch seconds>\" or an ISO 8601 date such as "
                    "\"2021-01-05T06:56:00Z\"" % (name, text), argument=name)


class StartStop(FunctionInstance):
    kernel = lib.mapi_startstop_kernel

    def __init__(self, start, stop):
        self.start, self.stop = start, stop
        self.st = ffi.new("mapi_startstop_state *")
        self.st.start_kind, self.st.start = parse_time(start, "start")
        self.st.stop_kind, self.st.stop = parse_time(stop, "stop")
        self.state = self.st

    def after_batch(self, batch):
        # the reference is the first packet of the stream, even if none reached us in it
        if batch.c.n:
            lib.mapi_startstop_set_ref(self.st, batch.c.ts[0])

    def result(self):
        return self.st.passed, self.st.last_ts

    def reset(self):
        self.st.passed = self.st.seen = 0

    def info(self):
        return dict(start=self.start, stop=self.stop, seen=self.st.seen, passed=self.st.passed,
                    reference_ns=self.st.ref if self.st.have_ref else None)


def check(ctx, args):
    start, stop = args
    k1, v1 = parse_time(start, "start")
    k2, v2 = parse_time(stop, "stop")
    if k1 == k2 != lib.MAPI_STARTSTOP_NONE and v1 >= v2:
        raise MapiError(EBADARG, "STARTSTOP: stop %r is not after start %r: no packet would pass"
                        % (stop, start), argument="stop")
    return args


DESCRIPTOR = filter_descriptor(
    "STARTSTOP", __doc__, StartStop, check, result="u64", cost="free",
    args=(Arg("start", "s", "", doc="first time passed (\"+10s\", \"@epoch\", ISO 8601)"),
          Arg("stop", "s", "", doc="first time no longer passed")))
