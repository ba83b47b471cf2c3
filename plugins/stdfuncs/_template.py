"""TEMPLATE_BAND(lo, hi=65535): keep the packets whose wire length lies in [lo, hi]; the result
is dict(packets, bytes, seen) of the packets kept (bytes: their wire lengths).

The template of a standard function: copy this file to plugins/stdfuncs/NAME.py and
mapi/csrc/fn/_template.[ch] to mapi/csrc/fn/NAME.[ch], rename TEMPLATE_BAND / template_band,
and `make engine`.  Nothing else is edited: the engine build takes every fn/*.c and fn/*.h, and
this package registers every module not starting with "_" (which is why this one is not a
function of the library).  docs/plugins.md walks through it; tests/test_templates.py loads it.

The module's docstring is the function's documentation (`mapi functions TEMPLATE_BAND`).
"""
from mapi._engine import ffi, lib
from mapi.descriptor import Arg, FunctionDescriptor, FunctionInstance
from mapi.errors import MapiError, EBADARG

MAX_LENGTH = 262144


class Band(FunctionInstance):
    """One applied TEMPLATE_BAND.  The engine runs `kernel(state, batch, ...)` in C for every
    batch; every method below runs in Python once per batch, tick or event -- never per packet.
    All of them are optional (FunctionInstance has do-nothing defaults)."""

    kernel = lib.mapi_template_band_kernel       # cffi mapi_kernel_fn; None: process() instead

    def __init__(self, lo, hi):
        self.c = ffi.new("mapi_template_band *", {"lo": lo, "hi": hi})   # kept alive by self
        self.state = self.c                       # the kernel's first argument

    # tick_ns = 0   # > 0: on_tick(t) is called whenever packet time crosses k * tick_ns

    def on_linktype(self, linktype):
        """The next batches carry this LINKTYPE_ (called before the first batch too).  A kernel
        that parses headers gets the link type from each batch (b->linktype); here nothing to do."""

    def after_batch(self, batch):
        """After each batch went through the whole plan: flush buffers, raise events."""

    def result(self):
        """(value, ts_ns) for mapi.read_results: a snapshot of the C state."""
        c = self.c
        return dict(packets=c.packets, bytes=c.bytes, seen=c.seen), c.last_ts

    def reset(self):
        """Start counting afresh (a reader asked for it); the band stays."""
        self.c.packets = self.c.bytes = self.c.seen = 0

    def end(self):
        """The device's packet stream ended (an offline replay finished): close files, flush."""

    def unblock(self):
        """The owning flow is closing: never block the engine again (a function that waits for
        a reader must stop waiting).  close() follows once the engine no longer runs it."""

    def close(self):
        """Free resources; the instance is not used afterwards (the gc frees self.c)."""

    def info(self):
        """Extra fields for get_function_info()."""
        return dict(lo=self.c.lo, hi=self.c.hi)


def check(ctx, args):
    """At apply time, before the flow connects: validate and normalise the arguments (already
    converted to the declared types); raise MapiError naming the bad argument.  ctx.device says
    what the device is (linktype, snaplen, offline)."""
    lo, hi = args
    if not 0 <= lo <= hi <= MAX_LENGTH:
        raise MapiError(EBADARG, "TEMPLATE_BAND: need 0 <= lo <= hi <= %d, got lo=%r, hi=%r"
                        % (MAX_LENGTH, lo, hi), argument="lo" if not 0 <= lo <= MAX_LENGTH else "hi")
    return lo, hi


DESCRIPTOR = FunctionDescriptor(
    name="TEMPLATE_BAND",
    args=(Arg("lo", "i", doc="shortest wire length kept"),
          Arg("hi", "i", 65535, doc="longest wire length kept")),
    create=lambda ctx, args: Band(*args),      # at connect time, with checked arguments
    check=check,
    doc=__doc__,
    filters=True,          # may drop packets: its kernel writes `out`
    modifies=False,        # never changes packet bytes
    result="struct",       # one of mapi.descriptor.RESULT_TYPES
    cost="free",           # per-packet cost class: free, low, high (orders commuting filters)
    shareable=True,        # identical instances (same args, same prefix) may be shared by flows
    stateful=True,         # it counts: a barrier when the organizer reorders filters
)
