"""BPF_FILTER(expr): keep the packets tcpdump's filter `expr` accepts.

Compiled by the system libpcap's own pcap_compile (so programs equal tcpdump -d's), once per link
type met in the stream; run by the engine's C interpreter over each batch."""

from mapi import bpf_jit
from mapi.bpf import compile_filter
from mapi._engine import ffi, lib
from mapi.descriptor import Arg, FunctionInstance, filter_descriptor
from mapi.errors import MapiError, EFILTER
from mapi.lazylog import getLogger

log = getLogger("mapi.BPF_FILTER")


class BpfFilter(FunctionInstance):
    kernel = lib.mapi_bpf_kernel

    def __init__(self, ctx, expr):
        self.expr = expr
        self.snaplen = ctx.device.snaplen
        self.swapped = _swapped(ctx.device)
        self.st = ffi.new("mapi_bpf_state *")
        self.state = self.st
        self.programs = {}           # linktype -> (cdata, length) kept alive here
        self.errors = {}
        self.native = {}             # linktype -> True once native code runs
        self.jit_threads = []

    def on_linktype(self, linktype):
        if linktype in self.programs or linktype in self.errors:
            return
        if self.st.nprog >= lib.MAPI_BPF_MAX_LINKTYPES:
            log.error("BPF_FILTER %r: more than %d link types; packets of link type %d are dropped",
                      self.expr, lib.MAPI_BPF_MAX_LINKTYPES, linktype)
            self.errors[linktype] = "too many link types"
            return
        try:
            prog, n = compile_filter(self.expr, linktype, self.snaplen, self.swapped)
            self.programs[linktype] = (prog, n)
        except MapiError as exc:
            n = 0
            # libpcap refuses the expression for this link type: it matches none of its packets
            log.warning("%s (link type %d): its packets do not match", exc, linktype)
            self.errors[linktype] = str(exc)
            prog = ffi.NULL
        i = self.st.nprog
        self.st.linktype[i] = linktype
        self.st.prog[i] = prog
        self.st.native[i] = ffi.NULL
        self.st.nprog = i + 1
        if prog != ffi.NULL:
            self.jit_threads.append(bpf_jit.compile_async_compiled(
                prog, n, lambda addr, i=i: self._install(i, addr)))

    def _install(self, i, addr):
        # one aligned pointer store; the kernel picks it up at its next batch
        self.st.native[i] = ffi.cast("mapi_bpf_native_fn", addr)
        self.native[self.st.linktype[i]] = True

    def wait_native(self, timeout=None):
        """Block until background native compilation finished (tests, benchmarks)."""
        for t in self.jit_threads:
            if t is not None:
                t.join(timeout)

    def info(self):
        return dict(expr=self.expr, linktypes=sorted(self.programs),
                    instructions={lt: n for lt, (_, n) in self.programs.items()},
                    native=sorted(self.native), errors=self.errors)


def _swapped(device):
    """Byte order of the device's savefile (libpcap compiles DLT_NULL tests in it)."""
    reader = getattr(getattr(device, "source", None), "reader", None)
    try:
        return bool(reader.swapped) if reader is not None else False
    except AttributeError:
        return False


def check(ctx, args):
    (expr,) = args
    compile_filter(expr, ctx.device.linktype, ctx.device.snaplen, _swapped(ctx.device))
    return args


DESCRIPTOR = filter_descriptor(
    "BPF_FILTER", __doc__, BpfFilter, check, result="none", cost="low", stateful=False,
    context=True,                      # BpfFilter(ctx, expr): the device's link type and snaplen
    args=(Arg("expr", "s", doc="pcap-filter(7) expression"),))
