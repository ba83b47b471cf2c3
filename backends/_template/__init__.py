"""``template`` backend: the template of a backend (copy this directory; docs/plugins.md walks
through it; tests/test_templates.py loads it).  It implements every hook of mapi/hookspecs.py
and every PacketSource op, with C of its own built against the engine's headers.

What it does: a synthetic packet stream of Ethernet/IPv4 frames (every 4th a TCP segment to
port 80, the others UDP datagrams to port 53), written by C straight into batch memory.

    fd = mapi.create_flow("template:1000x128")    # live: 1000 packets of 128 bytes, then idle
    fd = mapi.create_flow("template")             # a bare name the backend claims: 1000x128
    dev = mapi.create_offline_device("gen.tpl")   # a file "#!scampi-template 1000 128"

and the function it brings, TEMPLATE_UDP(): keep the UDP packets, counting them (its kernel
parses headers through the engine API table).

To make it a real backend: rename "template" everywhere, replace the generator with your
source, register the module in setup.cfg's ``scampi`` entry points (the only existing line you
touch), `make engine`.
"""
import os
import re
import threading

from mapi import hookimpl, native
from mapi.batch import BATCH_CAP
from mapi.descriptor import (BackendDescriptor, FunctionDescriptor, FunctionInstance,
                             PacketSource, parse_options)
from mapi.errors import MapiError, EBADARG, EFORMAT, EOPEN

from ._source import ffi, lib

# The C calls the engine through its API table: hand it over once, before any call.
native.bind_engine(ffi, lib, __name__)

NAME = "template"
MAGIC = b"#!scampi-template"
CHUNK = 4096                   # packets per batch: a real source hands over what it has
IDLE_S = 0.05                  # a live source with nothing to give returns this often
DEFAULT = (1000, 128)
OPTIONS = {"t0_ns": (int, 1_000_000_000_000_000_000)}     # time of packet 0


def parse_spec(text, where):
    """ "COUNTxSIZE" -> (count, size); MapiError(EBADARG) naming `where` otherwise."""
    m = re.fullmatch(r"(\d+)x(\d+)", text.strip())
    if not m:
        raise MapiError(EBADARG, "%s: expected COUNTxSIZE (e.g. 1000x128), got %r" % (where, text),
                        argument="dev")
    count, size = int(m.group(1)), int(m.group(2))
    if not lib.TPL_MIN_SIZE <= size <= lib.TPL_MAX_SIZE:
        raise MapiError(EBADARG, "%s: packet size must be %d..%d bytes, got %d"
                        % (where, lib.TPL_MIN_SIZE, lib.TPL_MAX_SIZE, size), argument="dev")
    return count, size


class _Packets:
    """The memory a batch points into, held until the engine releases the batch.  (A real
    source reuses a few buffers: see mapi.batch.Buffer and backends/netflow.)"""
    __slots__ = ("data", "cdata")

    def __init__(self, nbytes):
        self.data = bytearray(nbytes)
        self.cdata = ffi.from_buffer(self.data)

    def release(self):
        self.data = self.cdata = None


class TemplateSource(PacketSource):
    """The PacketSource ops.  The engine calls next_batch_into() from its reader thread and
    everything else from other threads; none of them may block for long."""

    nsec = True                   # timestamps carry nanoseconds

    def __init__(self, name, count, size, offline, options):
        opts = parse_options(name, options, OPTIONS)
        self.name = name                          # shown in get_device_info()
        self.linktype = 1                         # LINKTYPE_ of the packets (Ethernet)
        self.snaplen = size                       # the longest captured length
        self.offline = offline                    # True: a replay that ends; False: live
        self.count, self.size, self.t0 = count, size, opts["t0_ns"]
        self.next = 0                             # next packet of the stream
        self.closed = False
        self._stop = threading.Event()

    def next_batch_into(self, batch):
        """Fill `batch` (mapi.batch.Batch: batch.c is the engine's mapi_batch) with the next
        packets and return True; return False at the end of the stream (offline) or once closed.
        A live source with nothing to give returns True with batch.c.n == 0 after a short wait.
        On bad input raise MapiError naming where, after delivering every good packet before it.
        batch.keep must hold the packet memory until the engine releases the batch."""
        c = batch.c
        c.seq = ffi.NULL                          # packets are numbered first_seq + i
        c.tags = ffi.NULL                         # no hardware ran
        left = self.count - self.next
        if self.closed or (left <= 0 and self.offline):
            c.n = 0
            return False
        if left <= 0:                             # live and done: idle until closed
            c.n = 0
            self._stop.wait(IDLE_S)
            return not self.closed
        n = min(left, CHUNK, c.cap, BATCH_CAP)
        mem = _Packets(n * self.size)
        lib.tpl_generate(native.plugin_pointer(ffi, c), ffi.cast("uint8_t *", mem.cdata),
                         self.next, n, self.size, self.t0)
        batch.keep = mem
        c.first_seq = self.next
        self.next += n
        return True

    def release(self, batch):
        """The engine is done with `batch` (batch.keep is released right after): memory the
        source recycles by hand goes back here.  Nothing to do for this one."""

    def stats(self):
        """Counters for mapi.stats(): ps_recv / ps_drop / ps_ifdrop as pcap_stats() gives them,
        plus anything of the source's own."""
        return dict(ps_recv=self.next, ps_drop=0, ps_ifdrop=0, generated=self.next)

    def info(self):
        """What get_device_info() adds about the source."""
        return dict(backend=NAME, count=self.count, size=self.size, generated=self.next)

    def close(self):
        """Release everything; a reader waiting in next_batch_into() must return soon."""
        self.closed = True
        self._stop.set()


# --- the ops table and the hooks --------------------------------------------------------------
def open_offline(path, fmt=None, options=None):
    """A file "#!scampi-template COUNT SIZE" (fmt: a format name the caller forced, or None)."""
    try:
        with open(path, "rb") as f:
            head = f.read(256)
    except OSError as exc:
        raise MapiError(EOPEN, "cannot open %s: %s" % (path, exc.strerror), file=path) from None
    if not head.startswith(MAGIC):
        raise MapiError(EFORMAT, "%s: not a template stream (it does not start with %r)"
                        % (path, MAGIC.decode()), file=path, offset=0)
    fields = head[len(MAGIC):].split()
    count, size = parse_spec(b"x".join(fields[:2]).decode(errors="replace"), path)
    return TemplateSource(path, count, size, True, options)


def open_live(device, options=None):
    """A live device: `device` is what followed "template:" (or the bare name claimed)."""
    count, size = DEFAULT if device == NAME else parse_spec(device, "%s:%s" % (NAME, device))
    return TemplateSource("%s:%s" % (NAME, device), count, size, False, options)


def list_devices():
    return [dict(name="%s:%dx%d" % (NAME, *DEFAULT), description="synthetic UDP/TCP stream")]


class UdpOnly(FunctionInstance):
    """TEMPLATE_UDP's instance: a kernel of this backend's own cffi module, handed to the plan
    as the engine's function pointer (the kernel-pointer helper)."""

    def __init__(self):
        self.st = ffi.new("tpl_udp_state *")
        self.kernel = native.kernel_pointer(ffi, lib, "tpl_udp_kernel")
        self.state = native.state_pointer(ffi, self.st)      # self.st keeps the memory alive

    def result(self):
        return dict(packets=self.st.packets, bytes=self.st.bytes), self.st.last_ts

    def reset(self):
        self.st.packets = self.st.bytes = 0


@hookimpl
def scampi_backends():
    """The ops table: one BackendDescriptor (None for an operation the backend lacks)."""
    return [BackendDescriptor(
        name=NAME, doc="synthetic Ethernet/IPv4 stream (the template of a backend)",
        open_offline=open_offline, open_live=open_live, list_devices=list_devices,
        capabilities={"units": [], "timestamps": "ns"})]


@hookimpl
def scampi_functions():
    """Functions a backend brings (e.g. for its record format); most backends bring none."""
    return [FunctionDescriptor(
        name="TEMPLATE_UDP", args=(), create=lambda ctx, args: UdpOnly(),
        doc="keep the UDP packets, counting them and their wire bytes", filters=True,
        result="struct", cost="low", shareable=True, stateful=True)]


@hookimpl
def scampi_probe_offline(path, head):
    """Claim files this backend reads, from their first bytes; None for everything else."""
    return NAME if head.startswith(MAGIC) else None


@hookimpl
def scampi_claim_live(name):
    """Claim bare device names this backend opens; None for everything else (never raise)."""
    return NAME if name == NAME and not os.path.exists("/sys/class/net/" + name) else None
