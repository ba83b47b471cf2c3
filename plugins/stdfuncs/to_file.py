"""TO_FILE(fmt, path, count=0, flush="4MiB", append=False): write the packets that reach it
to a file, at most `count` of them (0: all); packets pass on unchanged.

mapi.MFF_PCAP writes what `tcpdump -r IN EXPR -w OUT` writes for the same packets: a libpcap
savefile in host byte order with microsecond timestamps (ns truncated), the input's snaplen
(libpcap's default for the link type when the input's is 0 or negative) and link type (with its
FCS bits), and captured bytes cut to that snaplen.  mapi.MFF_DAG_ERF writes ERF records:
Ethernet as type 2 with the 2-byte pad and a wire length that counts the 4-byte FCS (as DAG cards
and libtrace do), raw IP as types 22/23.  Packets of another link type than the device's first
one are skipped and counted.

flush   how much is buffered before a write, and so how much a killed process loses:
        "4MiB" (the default) or any size ("64KiB", "1MiB", a number of bytes): records are
        written when the buffer is full, when the stream ends, `count` is reached or the flow
        is closed, and on a live device at least once a second while packets arrive - a kill
        loses at most the buffer (4 MiB of records), on a live device also at most about one
        second of packets.  "batch": written after every batch the engine runs (a kill loses
        at most the batch under way).  "record" (or 0): each record is written at once.
        Written means handed to the kernel, not synced to the disk.
append  False: the file is created or truncated.  True: records are appended to what the
        file holds; it must be a file of the same format that ends at a whole record (and for
        pcap have the same link type and snaplen); a missing or empty file is created.

One writer per file: a path that another TO_FILE of this process (any flow, any device) has
open for writing is refused (mapi.EBUSY), so no flow's packets silently vanish.  A relative
path is relative to the current directory at apply time.  A path may carry an open descriptor
(a str with fileno(): mapid passes its client's so): TO_FILE then writes to that descriptor and
never opens the name (appending reads it, so it must be open for reading too).

The result counts what reached the file, what a reader of the file sees:
dict(path, format, packets, bytes, appended_at, buffered, lost, skipped, complete, error,
errno, error_offset): packets and bytes this TO_FILE wrote (appending: after the file's first
appended_at bytes).  When a write fails (ENOSPC, EIO, EDQUOT...) the writer stops at the last whole
record (a record the failure cut in two is truncated away, so the file stays readable),
`complete` is False, `error` and `errno` name the failure, `error_offset` is where it struck,
`lost` counts the packets that reached TO_FILE but are not in the file, and the device's wait
raises a MapiError (mapi.EWRITE) saying all that."""
import errno as errno_codes
import logging
import os
import re
import threading
import time

from mapi._engine import ffi, lib
from mapi.constants import MFF_DAG_ERF, MFF_PCAP, MFF_PCAPNG
from mapi.descriptor import Arg, FunctionDescriptor, FunctionInstance
from mapi.errors import MapiError, EBADARG, EBUSY, EOPEN, ENOTSUP, EWRITE

log = logging.getLogger("mapi.TO_FILE")
FORMATS = {MFF_PCAP: lib.MAPI_TOFILE_PCAP, MFF_DAG_ERF: lib.MAPI_TOFILE_ERF}
READER_FORMATS = {MFF_PCAP: lib.MAPI_FMT_PCAP, MFF_DAG_ERF: lib.MAPI_FMT_ERF}
ERF_LINKTYPES = {1: "Ethernet", 101: "raw IP", 228: "raw IPv4", 229: "raw IPv6", 12: "raw IP",
                 14: "raw IP"}
# libpcap's max_snaplen_for_dlt(): what it puts in place of a zero or negative snaplen
LIBPCAP_MAX_SNAPLEN = {231: 128 << 20, 279: 8 << 20, 249: 1 << 20}
LIVE_FLUSH_S = 1.0
DEFAULT_FLUSH = "4MiB"
_SIZE = re.compile(r"^\s*(\d+)\s*(b|k|kib|m|mib|g|gib)?\s*$", re.I)
_UNITS = {None: 1, "b": 1, "k": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mib": 1 << 20,
          "g": 1 << 30, "gib": 1 << 30}


def header_fields(device):
    """(snaplen, network field) of the pcap header tcpdump would write for this device."""
    snaplen = device.snaplen & 0xFFFFFFFF
    if snaplen == 0 or snaplen >= 1 << 31:
        snaplen = LIBPCAP_MAX_SNAPLEN.get(device.linktype, 262144)
    try:
        header = device.source.info().get("header") or {}
    except Exception:
        header = {}
    # the upper 16 bits of the network field (FCS length and flags) are copied as libpcap does
    ext = header.get("linktype_ext")
    if ext is None:
        ext = (header.get("fcs_bits") or 0) << 28
    return snaplen, (device.linktype & 0xFFFF) | (ext & 0xFFFF0000)


# --- one writer per file ------------------------------------------------------------------
_claims = {}                 # real path -> [fd, fid, ToFile or None (applied, not connected)]
_claims_lock = threading.Lock()


def _passed(path):
    """The descriptor `path` carries, or None for a plain name."""
    fileno = getattr(path, "fileno", None)
    return fileno() if fileno is not None else None


def _key(path):
    """One name per file: symbolic links and ../ resolved; a file passed as a descriptor: its
    device and inode (two clients' names for one file are one key)."""
    fd = _passed(path)
    if fd is not None:
        st = os.fstat(fd)
        return ("inode", st.st_dev, st.st_ino)
    return os.path.realpath(path)


def _claim_alive(claim):
    fd, _, inst = claim
    if inst is not None:
        return not inst.finished()
    from mapi.api import get_flow_info
    return get_flow_info(fd)["status"] != "closed"


def claim(key, fd, fid, inst=None, path=None):
    """Reserve `path` (its _key) for function fid of flow fd (at apply time; with the instance
    once it writes), or refuse: another TO_FILE of this process is writing it or will."""
    name = str(path) if path is not None else key
    with _claims_lock:
        held = _claims.get(key)
        if held is not None and held[:2] != [fd, fid] and _claim_alive(held):
            raise MapiError(EBUSY, "TO_FILE: %s is already being written by function %d of flow "
                            "%d; a second writer would make one flow's packets vanish: close that "
                            "flow first or choose another path" % (name, held[1], held[0]),
                            argument="path", file=name)
        _claims[key] = [fd, fid, inst]
        if len(_claims) > 64:                # reservations of flows closed before connecting
            for k in [k for k, c in _claims.items() if not _claim_alive(c)]:
                del _claims[k]


def release(key, inst):
    with _claims_lock:
        held = _claims.get(key)
        if held is not None and held[2] is inst:
            del _claims[key]


# --- the writer ---------------------------------------------------------------------------
class ToFile(FunctionInstance):
    closes_output = True         # close_flow returns once the output is complete
    kernel = lib.mapi_to_file_kernel

    def __init__(self, ctx, fmt, path, count, flush, append):
        self.device = ctx.device
        self.fmt, self.path, self.count = fmt, path, count
        self.flush, self.append = flush, append
        self.flush_each_batch = flush == "batch"
        bufsize = lib.MAPI_TOFILE_BUFSIZE if flush == "batch" else flush
        snaplen, network = header_fields(ctx.device)
        self.key = _key(path)
        claim(self.key, ctx.fd, ctx.fid, self, path)
        try:
            if append:
                _check_appendable(path, fmt, snaplen, network)
            err = ffi.new("char[512]")
            passed = _passed(path)
            if passed is not None:         # the C writer owns (and closes) a duplicate
                t = lib.mapi_to_file_open_fd(os.dup(passed), os.fsencode(path), FORMATS[fmt],
                                             ctx.device.linktype, network, snaplen, count, bufsize,
                                             1 if append else 0, err, 512)
            else:
                t = lib.mapi_to_file_open(os.fsencode(path), FORMATS[fmt], ctx.device.linktype,
                                          network, snaplen, count, bufsize, 1 if append else 0,
                                          err, 512)
            if t == ffi.NULL:
                raise MapiError(EOPEN, "TO_FILE: %s" % ffi.string(err).decode(errors="replace"),
                                argument="path", file=path)
        except BaseException:
            release(self.key, self)
            raise
        self.t = ffi.gc(t, lib.mapi_to_file_free)
        self.state = self.t
        self.reported = False
        self.last_flush = time.monotonic()

    def _stats(self):
        st = ffi.new("mapi_to_file_stats *")
        lib.mapi_to_file_get_stats(self.t, st)
        return st

    def finished(self):
        return bool(self._stats().closed)

    def _check_error(self):
        st = self._stats()
        if st.closed:
            release(self.key, self)
        if st.error and not self.reported:
            self.reported = True
            exc = MapiError(EWRITE, "TO_FILE: writing %s failed at offset %d: %s (%s); %d "
                            "complete packets (%d bytes) reached the file, %d packets are lost"
                            % (self.path, st.error_offset, os.strerror(st.error),
                               errno_codes.errorcode.get(st.error, "errno %d" % st.error),
                               st.packets, st.bytes, st.lost),
                            file=self.path, offset=st.error_offset,
                            errno=errno_codes.errorcode.get(st.error))
            log.error("%s", exc)
            self.device.errors.append(exc)

    def after_batch(self, batch):
        if self.flush_each_batch or (not self.device.offline
                                     and time.monotonic() - self.last_flush > LIVE_FLUSH_S):
            lib.mapi_to_file_flush(self.t)
            self.last_flush = time.monotonic()
        self._check_error()

    def end(self):
        lib.mapi_to_file_close(self.t)
        self._check_error()

    def close(self):
        lib.mapi_to_file_close(self.t)
        release(self.key, self)

    def result(self):
        st = self._stats()
        return dict(path=self.path, format=self.fmt, packets=st.packets, bytes=st.bytes,
                    appended_at=st.start, buffered=st.buffered, lost=st.lost, skipped=st.skipped,
                    complete=bool(st.closed) and not st.error,
                    error=os.strerror(st.error) if st.error else None,
                    errno=errno_codes.errorcode.get(st.error) if st.error else None,
                    error_offset=st.error_offset if st.error else None), st.last_ts

    def info(self):
        value, _ = self.result()
        value.update(limit=self.count, flush=self.flush, append=self.append)
        return value


def _check_appendable(path, fmt, snaplen, network):
    """Refuse to append to a file that is not of `fmt`, has another link type or snaplen
    (pcap), or does not end at a whole record (the engine's own reader checks every record)."""
    passed = _passed(path)
    try:
        fd = os.dup(passed) if passed is not None else os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return                               # created
    try:
        _check_records(fd, path, fmt, snaplen, network)
    finally:
        os.close(fd)


def _check_records(fd, path, fmt, snaplen, network):
    import mmap
    size = os.fstat(fd).st_size
    if size == 0:
        return

    def refuse(why, offset=None):
        raise MapiError(EBADARG, "TO_FILE: cannot append to %s: %s" % (path, why),
                        argument="append", file=str(path),
                        **({} if offset is None else {"offset": offset}))
    try:
        head = os.pread(fd, 24, 0)
    except OSError as exc:
        refuse("the file cannot be read (%s): appending checks that it ends at a whole record"
               % exc.strerror)
    if fmt == MFF_PCAP:
        if len(head) < 24 or head[:4] != b"\xd4\xc3\xb2\xa1":
            refuse("it is not a little-endian microsecond pcap file (what TO_FILE writes)", 0)
        have = (int.from_bytes(head[16:20], "little"), int.from_bytes(head[20:24], "little"))
        if have != (snaplen, network):
            refuse("its header has snaplen %d and link type field 0x%x; this device's packets "
                   "need snaplen %d and 0x%x" % (have + (snaplen, network)), 16)
    mm = mmap.mmap(fd, size, prot=mmap.PROT_READ)
    buf = ffi.from_buffer(mm)
    try:
        r = ffi.new("mapi_reader *")
        lib.mapi_reader_init(r, READER_FORMATS[fmt])
        used = ffi.new("uint64_t *")
        batch = ffi.gc(lib.mapi_batch_new(4096), lib.mapi_batch_free)
        rc = lib.mapi_reader_open(r, buf, size, 1, used)
        pos = int(used[0])
        while rc == lib.MAPI_PARSE_OK:
            rc = lib.mapi_reader_parse(r, buf + pos, size - pos, pos, 1, batch, used)
            pos += int(used[0])
        if rc != lib.MAPI_PARSE_END:
            refuse("%s; truncate it to its last whole record or append elsewhere"
                   % ffi.string(r.err).decode(errors="replace"), int(r.err_offset))
    finally:
        ffi.release(buf)
        mm.close()


def parse_flush(value):
    """flush argument -> "batch" or a buffer size in bytes (0: unbuffered)."""
    if value in ("batch", "record"):
        return 0 if value == "record" else value
    m = _SIZE.match(value) if isinstance(value, str) else None
    size = value if isinstance(value, int) and not isinstance(value, bool) else None
    if m:
        size = int(m.group(1)) * _UNITS[m.group(2).lower() if m.group(2) else None]
    if size is None or not 0 <= size <= lib.MAPI_TOFILE_MAX_BUFSIZE:
        raise MapiError(EBADARG, "TO_FILE: flush must be \"batch\", \"record\" or a buffer size "
                        "up to 256MiB such as \"64KiB\" or \"4MiB\", got %r" % (value,),
                        argument="flush")
    return size


def check(ctx, args):
    fmt, path, count, flush, append = args
    if fmt == MFF_PCAPNG:
        raise MapiError(ENOTSUP, "TO_FILE: writing pcapng is not supported; use mapi.MFF_PCAP or "
                        "mapi.MFF_DAG_ERF", argument="fmt")
    if fmt not in FORMATS:
        raise MapiError(EBADARG, "TO_FILE: fmt must be mapi.MFF_PCAP or mapi.MFF_DAG_ERF, got %r"
                        % (fmt,), argument="fmt")
    if not path:
        raise MapiError(EBADARG, "TO_FILE: empty path", argument="path")
    if _passed(path) is None:          # a passed descriptor was opened (and checked) by its giver
        path = _check_path(path)
    if not 0 <= count < 2 ** 64:
        raise MapiError(EBADARG, "TO_FILE: count must be >= 0 (0 = every packet), got %r" % (count,),
                        argument="count")
    if fmt == MFF_DAG_ERF and ctx.device.linktype not in ERF_LINKTYPES:
        raise MapiError(ENOTSUP, "TO_FILE: ERF records for link type %d are not supported (only %s)"
                        % (ctx.device.linktype, ", ".join(sorted(set(ERF_LINKTYPES.values())))),
                        argument="fmt")
    flush = parse_flush(flush)
    claim(_key(path), ctx.fd, ctx.fid, path=path)
    return fmt, path, count, flush, bool(append)


def _check_path(path):
    """The absolute path TO_FILE will create or truncate, or the reason it cannot."""
    path = os.path.abspath(os.path.expanduser(path))
    parent = os.path.dirname(path)
    if os.path.isdir(path):
        raise MapiError(EOPEN, "TO_FILE: %s is a directory" % path, argument="path", file=path)
    if not os.path.isdir(parent):
        raise MapiError(EOPEN, "TO_FILE: directory %s does not exist" % parent, argument="path",
                        file=path)
    if not os.access(path if os.path.exists(path) else parent, os.W_OK):
        raise MapiError(EOPEN, "TO_FILE: %s is not writable" % path, argument="path", file=path)
    return path


DESCRIPTOR = FunctionDescriptor(
    name="TO_FILE",
    args=(Arg("fmt", "c", doc="mapi.MFF_PCAP or mapi.MFF_DAG_ERF"),
          Arg("path", "w", doc="file to create (truncated if it exists, unless append)"),
          Arg("count", "i", 0, doc="write at most this many packets; 0 = all"),
          Arg("flush", "c", DEFAULT_FLUSH,
              doc="\"batch\", \"record\" or a buffer size (\"4MiB\"): what a kill may lose"),
          Arg("append", "b", False, doc="append to the file's records instead of truncating")),
    create=lambda ctx, args: ToFile(ctx, *args),
    check=check,
    doc=__doc__,
    filters=False,
    result="file",
    cost="high",
    shareable=False,
    stateful=True,
)
