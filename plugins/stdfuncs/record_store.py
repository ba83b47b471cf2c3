"""RECORD_STORE(directory, rotate="5m", prefix="records", flush="batch"): write the flow records
that reach it (a netflow collector device, a file of records, FLOW_REPORT's output) into rotating
files in `directory`, as `mapi collect -w DIR` does.

Each file is a pcap of link type 157 (LINKTYPE_USER10, MAPI_LINKTYPE_FLOWREC) holding one record
per packet: the mapi_flowrec struct and the extra IPFIX elements after it (docs/records.md);
its snaplen, sizeof(mapi_flowrec) + MAPI_FLOWREC_MAX_EXTRA, names the record layout.  Files are
named PREFIX.YYYYmmddHHMMSS.pcap after the UTC start of their interval (rotate: "5m", "1h",
"30s"...; "0" keeps one file); the file being written is PREFIX....pcap.current and loses the
suffix when its interval is over or the flow closes.  Intervals follow the records' timestamps
(the arrival of their export packets), aligned to UTC like nfcapd's files.  flush: "batch"
writes what each engine batch brought (a killed collector loses at most one batch), or a size
("1MiB") buffered before each write.  `mapi records -r DIR` reads them; so does any pcap reader.

Result: dict(records, files, current, lost, skipped, error)."""
import os
import re

from mapi._engine import ffi, lib
from mapi.descriptor import Arg, FunctionDescriptor, FunctionInstance
from mapi.errors import MapiError, EBADARG, EOPEN

from ._record_vocab import require_records

_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d)?\s*$")
_UNITS = {None: 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_SIZE = re.compile(r"^\s*(\d+)\s*(kib|mib|k|m)?\s*$", re.I)


def rotation_ns(text):
    m = _DURATION.match(str(text))
    if not m:
        raise MapiError(EBADARG, "RECORD_STORE: rotate must be a duration such as 5m, 1h or 0, "
                        "got %r" % (text,), argument="rotate")
    return int(m.group(1)) * _UNITS[m.group(2)] * 10 ** 9


def buffer_bytes(text):
    if text == "batch":
        return 1 << 20
    m = _SIZE.match(str(text))
    if not m:
        raise MapiError(EBADARG, "RECORD_STORE: flush must be \"batch\" or a size such as 1MiB, "
                        "got %r" % (text,), argument="flush")
    return int(m.group(1)) * {None: 1, "k": 1024, "kib": 1024, "m": 1 << 20, "mib": 1 << 20}[
        (m.group(2) or "").lower() or None]


class RecordStore(FunctionInstance):
    closes_output = True         # close_flow returns once the output is complete
    kernel = lib.mapi_rstore_kernel

    def __init__(self, directory, rotate, prefix, flush):
        self.directory, self.rotate, self.prefix, self.flush = directory, rotate, prefix, flush
        s = lib.mapi_rstore_new(os.fsencode(os.path.abspath(directory)), prefix.encode(),
                                rotation_ns(rotate), buffer_bytes(flush))
        if s == ffi.NULL:
            raise MemoryError("RECORD_STORE")
        self.s = s
        self.state = s
        self._final = None

    def after_batch(self, batch):
        if self.flush == "batch" and self.s is not None:
            lib.mapi_rstore_flush(self.s)

    def end(self):
        if self.s is not None:
            lib.mapi_rstore_flush(self.s)

    def result(self):
        if self.s is None:
            return self._final, 0
        st = ffi.new("mapi_rstore_stats *")
        lib.mapi_rstore_get_stats(self.s, st)
        return dict(records=st.records, files=st.files, lost=st.lost, skipped=st.skipped,
                    current=os.fsdecode(ffi.string(lib.mapi_rstore_current(self.s))) or None,
                    error=ffi.string(lib.mapi_rstore_error(self.s)).decode(errors="replace") or None), 0

    def close(self):
        if self.s is not None:
            lib.mapi_rstore_close(self.s)
            self._final = dict(self.result()[0], current=None)
            lib.mapi_rstore_free(self.s)
            self.s = self.state = None

    def info(self):
        return dict(directory=self.directory, rotate=self.rotate, prefix=self.prefix)


def check(ctx, args):
    directory, rotate, prefix, flush = args
    rotation_ns(rotate)
    buffer_bytes(flush)
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", prefix):
        raise MapiError(EBADARG, "RECORD_STORE: prefix must be 1-64 letters, digits, '.', '_' or "
                        "'-', got %r" % (prefix,), argument="prefix")
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        raise MapiError(EOPEN, "RECORD_STORE: cannot create the directory %s: %s"
                        % (directory, exc.strerror), argument="directory", file=directory) from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise MapiError(EOPEN, "RECORD_STORE: cannot write into %s" % directory,
                        argument="directory", file=directory)
    require_records(ctx, "RECORD_STORE")
    return os.path.abspath(directory), rotate, prefix, flush


DESCRIPTOR = FunctionDescriptor(
    name="RECORD_STORE",
    args=(Arg("directory", "d", doc="where the files go (created if missing)"),
          Arg("rotate", "s", "5m", doc="a new file every interval (UTC-aligned); 0: one file"),
          Arg("prefix", "s", "records", doc="file names: PREFIX.YYYYmmddHHMMSS.pcap"),
          Arg("flush", "s", "batch", doc="\"batch\" or a buffer size")),
    create=lambda ctx, args: RecordStore(*args), check=check,
    doc=__doc__, result="struct", cost="high", shareable=False, stateful=True)
