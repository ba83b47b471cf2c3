"""Savefile backend: classic pcap (us/ns, either byte order, Kuznetzov's variant), pcapng and ERF,
plain or gzip/xz/bzip2-compressed.

Files of any size stream through bounded memory (streams.py): a plain file is copied with pread
by a thread of its own one chunk ahead of the parser, so that the copy runs on another core while
the engine parses and filters the chunk before (P1 on a 2 M-packet trace: 0.20 s read in turn,
0.11 s read ahead); a compressed file or a pipe is decompressed into a few reusable buffers; on
request (mmap=True) a plain file is mapped a window at a time (no copy: batches point into the
mapping, and a window is unmapped once the engine released every batch in it; slower, as the
parser walking a mapping waits on memory at every record).  The C parsers (mapi/csrc/pcap.c,
pcapng.c, erf.c) turn each region into batches.

A path may carry an open descriptor (a str with fileno(): mapid passes its client's trace so):
the backend reads that descriptor (a duplicate of it) and never opens the name, so the reader
has exactly the rights of whoever opened the file.  A regular file is mapped or read from
offset 0 whatever the descriptor's offset; a pipe is read as it comes.

Options (create_offline_device(path, fmt, **options)):
  libpcap_compat=True  pcapng: fail where libpcap 1.10 does (a second link type or snapshot
                       length, a section in the other byte order) -- for the libpcap shim
  raw_ts=True          classic pcap: ts = sec << 32 | frac exactly as stored (the shim's view)
  mmap=True            map plain files instead of reading them into buffers
"""
import os
import stat

from mapi import hookimpl, native
from mapi.compression import MAGIC_BYTES, compression_of, open_decompressed
from mapi.descriptor import BackendDescriptor, PacketSource
from mapi.errors import MapiError, EOPEN, EFORMAT, ETRUNC, EBADARG

from .streams import BufferedStream, MappedFile, ReadAheadFile

ffi, lib = native.engine()          # the savefile readers are the engine's own C

MFF_PCAP, MFF_PCAPNG, MFF_DAG_ERF = "pcap", "pcapng", "erf"
FORMAT_CODES = {MFF_PCAP: lib.MAPI_FMT_PCAP, MFF_PCAPNG: lib.MAPI_FMT_PCAPNG,
                MFF_DAG_ERF: lib.MAPI_FMT_ERF}
FORMAT_NAMES = {v: k for k, v in FORMAT_CODES.items()}

OPTIONS = ("libpcap_compat", "raw_ts", "mmap")


def _open_fd(path):
    """A descriptor of the source's own on the trace: a duplicate of the one `path` carries
    (its caller opened the file), else the file opened by name."""
    fileno = getattr(path, "fileno", None)
    try:
        if fileno is not None:
            return os.dup(fileno())
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise MapiError(EOPEN, "cannot open %s: %s" % (path, exc.strerror), file=path) from None


class SavefileSource(PacketSource):
    offline = True

    def __init__(self, path, fmt=None, options=None):
        options = dict(options or {})
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise MapiError(EBADARG, "the savefile backend has no option %s (options: %s)"
                            % (", ".join(unknown), ", ".join(OPTIONS)), argument=unknown[0])
        if fmt is not None and fmt not in FORMAT_CODES:
            raise MapiError(EBADARG, "unknown file format %r (use mapi.MFF_PCAP, MFF_PCAPNG or "
                            "MFF_DAG_ERF, or None to detect it)" % (fmt,), argument="fmt")
        self.name = self.path = path
        self.reader = ffi.new("mapi_reader *")
        lib.mapi_reader_init(self.reader, FORMAT_CODES[fmt] if fmt else 0)
        self.reader.libpcap_compat = 1 if options.get("libpcap_compat") else 0
        self.reader.raw_ts = 1 if options.get("raw_ts") else 0
        self._consumed = ffi.new("uint64_t *")
        self._error = None
        self._done = False
        self._cur = None
        self._pos = self._end = 0
        self.compression = None
        self._src = self._open_source(path, options.get("mmap", False))
        try:
            self._open_header()
        except BaseException:
            self._src.close()
            raise

    # --- opening ------------------------------------------------------------------------------
    def _open_source(self, path, use_mmap):
        fd = _open_fd(path)
        try:
            st = os.fstat(fd)
            regular = stat.S_ISREG(st.st_mode)
            head = os.pread(fd, MAGIC_BYTES, 0) if regular else b""
            if regular:
                os.lseek(fd, 0, os.SEEK_SET)       # a passed descriptor may have moved on
        except OSError as exc:
            os.close(fd)
            raise MapiError(EOPEN, "cannot read %s: %s" % (path, exc.strerror), file=path) from None
        if stat.S_ISDIR(st.st_mode):
            os.close(fd)
            raise MapiError(EOPEN, "cannot open %s: it is a directory" % path, file=path)
        compression = compression_of(head)
        if compression is not None:
            self.compression = compression
            raw = os.fdopen(fd, "rb")
            return BufferedStream(open_decompressed(raw, compression), path, compression, raw)
        if use_mmap and regular and st.st_size > 0:
            return MappedFile(fd, st.st_size)
        if regular:
            return ReadAheadFile(fd, path)
        return BufferedStream(os.fdopen(fd, "rb", buffering=0), path, None)

    def _open_header(self):
        r = self.reader
        need = 4096
        tail = b""
        while True:
            reg = self._region(0, need, tail)
            rc = lib.mapi_reader_open(r, reg.cdata, reg.size, 1 if reg.eof else 0, self._consumed)
            if rc == lib.MAPI_PARSE_OK:
                break
            if rc == lib.MAPI_PARSE_NEED_MORE and not reg.eof:
                need = max(int(r.need), reg.size * 2)
                tail = ffi.buffer(reg.cdata, reg.size)[:] if self._src.carries_tail else b""
                reg.keep.release()
                continue
            reg.keep.release()
            if getattr(self._src, "error", None) is not None:
                raise self._src.error
            raise self._reader_error()
        self._cur = reg
        self._pos = int(self._consumed[0])
        self.format = FORMAT_NAMES[r.format]
        self.linktype = int(r.linktype)
        self.snaplen = int(r.snaplen)
        self.nsec = bool(r.nsec)
        self.header = self._header_info()

    def _region(self, offset, need, tail=b""):
        if self._src.carries_tail:
            return self._src.region(offset, need, tail)
        return self._src.region(offset, need)

    def _reader_error(self):
        r = self.reader
        code = EFORMAT if r.err_code != lib.MAPI_READER_ETRUNC else ETRUNC
        return MapiError(code, "%s: %s" % (self.path, ffi.string(r.err).decode(errors="replace")),
                         file=self.path, offset=int(r.err_offset),
                         pcap_error=ffi.string(r.pcap_err).decode(errors="replace"))

    def _header_info(self):
        r = self.reader
        if self.format == MFF_PCAP:
            return dict(version="%d.%d" % (r.version_major, r.version_minor),
                        thiszone=r.thiszone, sigfigs=r.sigfigs, snaplen=r.file_snaplen,
                        linktype=r.linktype, linktype_ext=r.linktype_ext,
                        byte_order="big" if r.swapped else "little",
                        precision="ns" if r.nsec else "us",
                        record_header=r.hdrsize)
        if self.format == MFF_PCAPNG:
            f = r.ifaces[0]
            return dict(version="%d.%d" % (r.version_major, r.version_minor),
                        byte_order="big" if r.swapped else "little",
                        linktype=f.linktype, snaplen=f.snaplen, tsresol=f.tsresol,
                        tsoffset=f.tsoffset)
        return dict(linktype=r.linktype)

    # --- reading ------------------------------------------------------------------------------
    def _advance(self, need):
        """Move on to a region that starts at the first unparsed byte."""
        cur = self._cur
        offset = cur.offset + self._pos
        tail = b""
        if self._src.carries_tail and self._pos < cur.size:
            tail = ffi.buffer(cur.cdata + self._pos, cur.size - self._pos)[:]
        cur.keep.release()
        self._cur = None
        self._cur = self._region(offset, need, tail)
        self._pos = 0

    def next_batch_into(self, batch):
        """Fill `batch` (a mapi.batch.Batch); returns False at the end of the file.  Raises
        MapiError at bad input once every complete record before it was delivered."""
        if self._error is not None or self._done:
            self._release()
            if self._error is not None:
                raise self._error
            return False
        r = self.reader
        while True:
            cur = self._cur
            rc = lib.mapi_reader_parse(r, cur.cdata + self._pos, cur.size - self._pos,
                                       cur.offset + self._pos, 1 if cur.eof else 0, batch.c,
                                       self._consumed)
            used = int(self._consumed[0])
            self._pos += used
            n = batch.c.n
            if rc == lib.MAPI_PARSE_ERROR:
                self._error = self._src_error() or self._reader_error()
            elif rc == lib.MAPI_PARSE_END:
                self._error = self._src_error()
                self._done = self._error is None
            if n:
                batch.keep = cur.keep.acquire()
                return True
            if self._error is not None or self._done:
                return self.next_batch_into(batch)
            if rc == lib.MAPI_PARSE_NEED_MORE:
                self._advance(int(r.need))
            elif used == 0:
                raise MapiError(EFORMAT, "%s: the parser made no progress at offset %d"
                                % (self.path, cur.offset + self._pos), file=self.path,
                                offset=cur.offset + self._pos)

    def _src_error(self):
        return getattr(self._src, "error", None)

    def _release(self):
        cur, self._cur = self._cur, None
        if cur is not None:
            self._end = cur.offset + self._pos
            cur.keep.release()

    def stats(self):
        r = self.reader
        s = dict(packets=int(r.packets), records=int(r.records), offset=self.offset,
                 skipped=int(r.skipped), snapped=int(r.snapped))
        if self.format == MFF_DAG_ERF:
            s["ps_drop"] = int(r.lost)
        return s

    @property
    def offset(self):
        """File offset (in the decompressed data) of the first unparsed byte."""
        cur = self._cur
        return cur.offset + self._pos if cur is not None else self._end

    @property
    def pcap_error(self):
        """libpcap's text for the error met, or ''."""
        return ffi.string(self.reader.pcap_err).decode(errors="replace")

    def info(self):
        return dict(path=self.path, format=self.format, compression=self.compression,
                    linktype=self.linktype, snaplen=self.snaplen, header=self.header,
                    nsec=self.nsec)

    def close(self):
        self._release()
        self._src.close()


@hookimpl
def scampi_backends():
    return [BackendDescriptor(
        name="savefile",
        doc="pcap, pcapng and ERF savefiles, plain or gzip/xz/bzip2-compressed",
        open_offline=lambda path, fmt=None, options=None: SavefileSource(path, fmt, options),
    )]


@hookimpl(trylast=True)
def scampi_probe_offline(path, head):
    """Every file no other backend claimed: a savefile, or the precise error saying why not."""
    return "savefile"
