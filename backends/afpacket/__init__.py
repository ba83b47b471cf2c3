"""Linux AF_PACKET capture: the ``nic`` backend (nic.py: recvmmsg batches) and the ``ring``
backend (ring.py: mapped TPACKET_V3 blocks or V2 frames) share what is here: the packet source
(its C in capture.c, this package's cffi module), the kernel filter offered to the module mapper
as hardware, interface listing.

The kernel filter: a flow's BPF_FILTER placed "in the kernel" is attached to the socket with
SO_ATTACH_FILTER, so packets nobody asked for never reach user space.  The kernel runs one
program, the union of the placed filters that see the raw stream (plus a prefix passing every
packet whose VLAN tag the kernel stripped, since the programs expect the tag in the packet);
the engine then re-runs each placed filter's own kernel over the delivered batch (in C, the
same code as in software) to set the per-node tag bits, so results are exact whatever the
kernel let through.
"""
import logging
import os
import threading

from mapi import native
from mapi.batch import Buffer, BATCH_CAP
from mapi.bpf import compile_insns
from mapi.descriptor import BackendDescriptor, PacketSource
from mapi.errors import MapiError, EBADARG, ENODEV, EPERM, ENOTSUP, EPLUGIN
from mapi.hardware import FILTER, HardwareDevice, HardwareError, HardwareUnit, Offer

from ._capture import ffi, lib

native.bind_engine(ffi, lib, __name__)

log = logging.getLogger("mapi.live")

LINKTYPE_ETHERNET = 1
BPF_MAXINSNS = 4096
SKF_AD_VLAN_TAG_PRESENT = 0xFFFFF000 + 48      # SKF_AD_OFF + SKF_AD_VLAN_TAG_PRESENT
ACCEPT = 0x40000                                # "ret #262144": the whole packet

DIRECTIONS = {"inout": lib.MAPI_LIVE_INOUT, "in": lib.MAPI_LIVE_IN, "out": lib.MAPI_LIVE_OUT}
READ_TIMEOUT_MS = 100        # a read returns this often even without packets (stop requests)
MMSG_BUFFERS = 10            # recvmmsg buffers: batches in flight plus one being filled


def _errno_error(ifname, err_no, text, what):
    """The MapiError for a failed open: code by cause, message naming the interface."""
    import errno
    if err_no in (errno.EPERM, errno.EACCES):
        return MapiError(EPERM, "%s: cannot open a packet socket on %s: %s; live capture needs "
                         "CAP_NET_RAW (run as root or `setcap cap_net_raw+ep` the interpreter)"
                         % (what, ifname, text), argument="dev")
    if err_no in (errno.ENODEV, errno.ENXIO, errno.ENAMETOOLONG):
        names = ", ".join(i["name"] for i in list_interfaces()) or "none"
        return MapiError(ENODEV, "%s: %s (interfaces here: %s)" % (what, text, names),
                         argument="dev")
    if err_no == errno.EPROTONOSUPPORT:
        return MapiError(ENOTSUP, "%s: %s" % (what, text), argument="dev")
    if err_no == errno.EINVAL:
        return MapiError(EBADARG, "%s: %s" % (what, text), argument="options")
    return MapiError(EPLUGIN, "%s: %s" % (what, text), argument="dev")


def list_interfaces():
    """Network interfaces of this namespace: name, description, flags, mtu."""
    out = []
    base = "/sys/class/net"
    try:
        names = sorted(os.listdir(base))
    except OSError:
        return out
    for name in names:
        def rd(attr, default=""):
            try:
                with open(os.path.join(base, name, attr)) as f:
                    return f.read().strip()
            except OSError:
                return default
        flags = int(rd("flags", "0") or "0", 16)
        up = bool(flags & 0x1)
        kind = {"1": "ethernet", "772": "loopback", "65534": "raw IP"}.get(rd("type"), "type " + rd("type"))
        out.append(dict(name=name, description="%s, mtu %s, %s" % (kind, rd("mtu"), "up" if up else "down"),
                        mtu=int(rd("mtu", "0") or 0), up=up, loopback=bool(flags & 0x8),
                        operstate=rd("operstate")))
    return out


def _if_counter(ifname, name):
    try:
        with open("/sys/class/net/%s/statistics/%s" % (ifname, name)) as f:
            return int(f.read())
    except (OSError, ValueError):
        return 0


# --- the kernel filter as a hardware unit ----------------------------------------------------
class KernelBpfUnit(HardwareUnit):
    """The socket filter: runs BPF_FILTER exactly (the kernel's interpreter/JIT of the very
    program libpcap compiled), within the kernel's program size limit."""

    name = "KERNEL-BPF"
    kind = FILTER
    functions = ("BPF_FILTER",)
    limits = {"insns": BPF_MAXINSNS - 8}
    doc = "Linux socket filter (SO_ATTACH_FILTER): the union of the placed filters"

    def offer(self, desc, args, device):
        try:
            insns = compile_insns(args[0], device.linktype, device.snaplen)
        except MapiError:
            return None                    # the software path reports the bad expression
        return Offer(exact=True, demand={"insns": len(insns) + 1}, params=insns,
                     note="socket filter, %d insns" % len(insns))


def backend_descriptor(name, doc, open_live):
    """The ops table of an AF_PACKET backend: live interfaces, the kernel filter as its unit."""
    return BackendDescriptor(name=name, doc=doc, open_live=open_live, list_devices=list_interfaces,
                             capabilities={"units": [KernelBpfUnit.name], "timestamps": "ns"})


def bpf_program(insns):
    """(code, jt, jf, k) tuples as the engine's mapi_bpf_insn array."""
    eng_ffi, _ = native.engine()
    arr = eng_ffi.new("mapi_bpf_insn[]", len(insns))
    for i, (code, jt, jf, k) in enumerate(insns):
        arr[i].code, arr[i].jt, arr[i].jf, arr[i].k = code, jt, jf, k
    return arr


def union_program(programs, linktype):
    """One classic BPF program accepting what any of `programs` accepts (a superset when a
    program returns a computed value).  Returns None when the union would be too long."""
    out = []
    if linktype == LINKTYPE_ETHERNET:
        # the programs read VLAN tags from the packet, but the kernel stripped them: pass those
        out += [(0x20, 0, 0, SKF_AD_VLAN_TAG_PRESENT), (0x15, 1, 0, 0), (0x06, 0, 0, ACCEPT)]
    for i, prog in enumerate(programs):
        last = i == len(programs) - 1
        start = len(out)
        end = start + len(prog)                # where the next program starts
        for pc, (code, jt, jf, k) in enumerate(prog):
            if code == 0x06 and k == 0 and not last:
                out.append((0x05, 0, 0, end - (start + pc) - 1))        # ja next program
            elif code == 0x16:
                out.append((0x06, 0, 0, ACCEPT))                        # ret a: keep (superset)
            else:
                out.append((code, jt, jf, k))
    if not programs:
        out.append((0x06, 0, 0, 0))
    if len(out) > BPF_MAXINSNS:
        return None
    return out


class LiveSource(PacketSource, HardwareDevice):
    """A live AF_PACKET capture (recvmmsg or a mapped ring), with the kernel filter as its
    hardware."""

    offline = False
    nsec = True

    def __init__(self, backend, ifname, mode, snaplen=262144, promisc=True, direction="inout",
                 buffer=32 << 20, block_size=1 << 20, block_count=64, block_timeout_ms=10,
                 kernel_filter=True):
        self.backend = backend
        self.name = "%s:%s" % (backend, ifname)
        self.ifname = ifname
        self.h = ffi.new("mapi_live *")
        if not 0 < snaplen <= 262144:
            raise MapiError(EBADARG, "%s: snaplen must be 1..262144, got %r" % (self.name, snaplen),
                            argument="snaplen")
        rc = lib.mapi_live_open(self.h, ifname.encode(), snaplen, 1 if promisc else 0,
                                DIRECTIONS[direction], mode, buffer, block_size, block_count,
                                block_timeout_ms)
        if rc < 0:
            raise _errno_error(ifname, self.h.err_no, ffi.string(self.h.err).decode(errors="replace"),
                               self.name)
        self.mode = mode
        self.linktype = self.h.linktype
        self.snaplen = snaplen
        self.promisc = promisc
        self.direction = direction
        self.kernel_filter = kernel_filter
        self.seq = 0
        self.closed = False
        self._read_lock = threading.Lock()        # held while the reader is inside C
        self._held = 0                            # ring spans handed out, not yet released
        self._held_lock = threading.Lock()
        self._buffers = []
        self._free_cv = threading.Condition()
        if mode == lib.MAPI_LIVE_MMSG:
            size = self.h.slot * self.h.nmsg
            self._buffers = [Buffer(size, self._buffer_free) for _ in range(MMSG_BUFFERS)]
            self._free = list(self._buffers)
        self.engine_drops = 0
        self.errors = []
        self._ifdrop0 = _if_counter(ifname, "rx_dropped")
        # hardware (kernel filter) state, touched only by configure()/process() in the engine
        self.config = None
        self._kernels = None
        self._states = None
        self._parents = None
        self._nodes = 0
        self._tags = ffi.new("uint64_t[]", BATCH_CAP)
        self._sel = ffi.new("uint32_t[]", BATCH_CAP)
        self._out = ffi.new("uint32_t[]", BATCH_CAP)
        self._filter = None
        self._filter_c = None
        self.filter_note = "none"

    # --- reading ------------------------------------------------------------------------------
    def _buffer_free(self, buf):
        with self._free_cv:
            self._free.append(buf)
            self._free_cv.notify()

    def _get_buffer(self):
        with self._free_cv:
            while not self._free and not self.closed:
                self._free_cv.wait(READ_TIMEOUT_MS / 1000.0)
                if not self._free:
                    return None                   # let the engine see stop requests
            if self.closed:
                return None
            return self._free.pop().acquire()

    def next_batch_into(self, batch):
        if self.closed:
            return False
        c = batch.c
        c.seq = ffi.NULL
        c.tags = ffi.NULL
        span = ffi.new("mapi_live_span *")
        buf = None
        if self.mode == lib.MAPI_LIVE_MMSG:
            buf = self._get_buffer()
            if buf is None:
                c.n = 0
                return not self.closed
        pc = native.plugin_pointer(ffi, c)
        with self._read_lock:
            if self.closed:
                n = lib.MAPI_LIVE_CLOSED
            elif buf is not None:
                n = lib.mapi_live_read(self.h, pc, buf.cdata, len(buf.data), READ_TIMEOUT_MS, span)
            else:
                n = lib.mapi_live_read(self.h, pc, ffi.NULL, 0, READ_TIMEOUT_MS, span)
                if n >= 0 and span.count:
                    with self._held_lock:          # counted before close() can look
                        self._held += 1
        if n == lib.MAPI_LIVE_CLOSED:
            if buf is not None:
                buf.release()
            c.n = 0
            return False
        if n == lib.MAPI_LIVE_ERROR:
            if buf is not None:
                buf.release()
            c.n = 0
            err = MapiError(ENODEV, "%s: capture stopped: %s" % (self.name, ffi.string(self.h.err).decode()),
                            argument="dev")
            self.errors.append(str(err))
            raise err
        c.first_seq = self.seq
        self.seq += n
        if buf is not None:
            batch.keep = buf
        elif span.count:
            batch.keep = _Span(self, span.first, span.count)
        return True

    def _release_span(self, first, count):
        with self._held_lock:
            if self.h.fd >= 0:
                lib.mapi_live_release(self.h, first, count)
            self._held -= 1
            last = self._held == 0 and self.closed
        if last:
            self._final_close()

    # --- stats --------------------------------------------------------------------------------
    def _kernel_stats(self):
        if not self.closed:
            lib.mapi_live_stats(self.h)
        h = self.h
        return h.kernel_packets, h.kernel_drops, h.kernel_freezes

    def stats(self):
        kp, kd, kf = self._kernel_stats()
        ifdrop = max(0, _if_counter(self.ifname, "rx_dropped") - self._ifdrop0)
        # pcap_stats semantics: ps_recv = packets the (kernel) filter passed, drops included
        return dict(ps_recv=kp, ps_drop=kd, ps_ifdrop=ifdrop,
                    kernel_packets=kp, kernel_drops=kd, kernel_freezes=kf,
                    engine_drops=self.engine_drops, delivered=self.h.packets,
                    delivered_bytes=self.h.bytes, skipped_direction=self.h.skipped,
                    truncated=self.h.truncated, vlan_restored=self.h.vlan_restored)

    def info(self):
        h = self.h
        d = dict(interface=self.ifname, backend=self.backend, ifindex=h.ifindex,
                 linktype=self.linktype, snaplen=self.snaplen, promisc=self.promisc,
                 direction=self.direction, mtu=h.mtu, timestamps="ns",
                 capture={lib.MAPI_LIVE_MMSG: "recvmmsg", lib.MAPI_LIVE_TPV3: "TPACKET_V3 ring",
                          lib.MAPI_LIVE_TPV2: "TPACKET_V2 ring (immediate)"}[self.mode],
                 kernel_filter=self.filter_note, kernel_filter_insns=h.filter_insns,
                 stats=self.stats(), errors=list(self.errors))
        if self.mode == lib.MAPI_LIVE_MMSG:
            d.update(slot=h.slot, messages_per_call=h.nmsg)
        else:
            d.update(block_size=h.block_size, block_count=h.block_count, ring_bytes=h.ring_bytes)
            if self.mode == lib.MAPI_LIVE_TPV3:
                d.update(block_timeout_ms=h.block_timeout_ms)
            else:
                d.update(frame_size=h.frame_size, frame_count=h.frame_count)
        return d

    # --- closing ------------------------------------------------------------------------------
    def close(self):
        if self.closed:
            return
        self._kernel_stats()                      # keep the final counters readable
        self.closed = True
        lib.mapi_live_wake(self.h)
        with self._free_cv:
            self._free_cv.notify_all()
        # the reader leaves C within one poll; then nothing touches the socket any more
        if not self._read_lock.acquire(timeout=5):
            log.error("%s: the reader did not leave the socket; closing anyway", self.name)
        else:
            self._read_lock.release()
        with self._held_lock:
            last = self._held == 0
        if last:
            self._final_close()                   # else: when the engine releases the last span

    def _final_close(self):
        with self._held_lock:
            if self.h.fd >= 0 or self.h.ring != ffi.NULL:
                lib.mapi_live_close(self.h)

    # --- hardware: the kernel filter ----------------------------------------------------------
    def units(self):
        return [KernelBpfUnit()] if self.kernel_filter else []

    def configure(self, config):
        mine = [a for a in config.assignments if a.unit == KernelBpfUnit.name]
        if len(mine) != len(config.assignments):
            raise HardwareError("%s has only the KERNEL-BPF unit" % self.name,
                                [a.hw_id for a in config.assignments if a.unit != KernelBpfUnit.name])
        roots = [a for a in sorted(mine, key=lambda a: a.hw_id) if a.parent_hw_id is None]
        if config.deliver_all or not roots:
            prog, note = None, "none (some flow needs every packet)" if mine else "none"
        else:
            prog = union_program([a.offer.params for a in roots], self.linktype)
            note = ("union of %d filter(s), %d insns" % (len(roots), len(prog)) if prog
                    else "none (the union exceeds %d instructions)" % BPF_MAXINSNS)
        if prog != self._filter:
            if prog:
                arr = bpf_program(prog)
                rc = lib.mapi_live_set_filter(self.h, native.plugin_pointer(ffi, arr, "mapi_bpf_insn *"),
                                              len(prog))
            else:
                arr = None
                rc = lib.mapi_live_set_filter(self.h, ffi.NULL, 0)
            if rc < 0:
                raise HardwareError("%s: the kernel refused the socket filter: %s"
                                    % (self.name, ffi.string(self.h.err).decode()),
                                    [a.hw_id for a in mine])
            self._filter, self._filter_c = prog, arr
        self.filter_note = note
        self.config = config
        n = max([a.hw_id for a in mine], default=-1) + 1
        self._nodes = n
        self._kernels = ffi.new("mapi_kernel_fn[]", max(1, n))
        self._states = ffi.new("void *[]", max(1, n))
        self._parents = ffi.new("int32_t[]", max(1, n))
        self._assigned = mine
        for a in mine:
            self._parents[a.hw_id] = -1 if a.parent_hw_id is None else a.parent_hw_id
            inst = a.instance
            if inst is None or inst.kernel is None:
                raise HardwareError("%s: node %d has no C kernel to re-run" % (self.name, a.hw_id),
                                    [a.hw_id])
            self._kernels[a.hw_id] = ffi.cast("mapi_kernel_fn", inst.kernel)
            self._states[a.hw_id] = ffi.cast("void *", inst.state) if inst.state is not None else ffi.NULL

    def process(self, batch):
        c = batch.c
        if not self._nodes or c.n == 0:
            c.tags = self._tags if self._nodes else ffi.NULL
            return batch
        # the filter instances learn the link type from the device before the plan runs
        lib.mapi_live_tag(native.plugin_pointer(ffi, c), self._kernels, self._states, self._parents,
                          self._nodes, self._tags, self._sel, self._out)
        c.tags = self._tags
        return batch

    def hw_result(self, hw_id):
        raise KeyError(hw_id)                     # filters only: no results kept here

    def hw_info(self):
        return dict(unit=KernelBpfUnit.name, kernel_filter=self.filter_note,
                    kernel_filter_insns=self.h.filter_insns,
                    placed=[dict(hw_id=a.hw_id, expr=a.args[0], parent=a.parent_hw_id)
                            for a in (self._assigned if self.config else [])])


class _Span:
    """A batch's hold on ring blocks/frames; released when the engine is done with the batch."""
    __slots__ = ("src", "first", "count")

    def __init__(self, src, first, count):
        self.src, self.first, self.count = src, first, count

    def release(self):
        src, self.src = self.src, None
        if src is not None:
            src._release_span(self.first, self.count)
