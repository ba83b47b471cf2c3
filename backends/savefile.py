"""Savefile backend: classic pcap (µs/ns, either byte order), pcapng and ERF, plain or
gzip/xz/bzip2-compressed.  Files of any size stream through a few fixed read buffers; the C
parser turns each buffer into batches of packets that stay in the buffer (no per-packet copy).
"""
import bz2
import gzip
import lzma
import os
import struct
import threading

from mapi import hookimpl
from mapi.batch import Buffer
from mapi.descriptor import BackendDescriptor, PacketSource
from mapi.errors import MapiError, EOPEN, EFORMAT, ETRUNC
from mapi._engine import ffi, lib

MFF_PCAP, MFF_PCAPNG, MFF_DAG_ERF = "pcap", "pcapng", "erf"
FORMAT_CODES = {MFF_PCAP: lib.MAPI_FMT_PCAP, MFF_PCAPNG: lib.MAPI_FMT_PCAPNG, MFF_DAG_ERF: lib.MAPI_FMT_ERF}

BUFFER_SIZE = 4 << 20
BUFFERS = 4

PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", False), b"\xa1\xb2\xc3\xd4": (">", False),
    b"\x4d\x3c\xb2\xa1": ("<", True), b"\xa1\xb2\x3c\x4d": (">", True),
}
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
COMPRESSORS = ((b"\x1f\x8b", "gzip", gzip.open), (b"\xfd7zXZ\x00", "xz", lzma.open),
               (b"BZh", "bzip2", bz2.open))


def sniff_format(head):
    """Format name of a (decompressed) savefile from its first bytes, or None."""
    if head[:4] in PCAP_MAGICS:
        return MFF_PCAP
    if head[:4] == PCAPNG_MAGIC:
        return MFF_PCAPNG
    if _looks_like_erf(head):
        return MFF_DAG_ERF
    return None


def _looks_like_erf(head):
    # ERF has no magic: accept if the first record header is plausible.
    if len(head) < 16:
        return False
    rtype = head[8] & 0x7F
    rlen = struct.unpack(">H", head[10:12])[0]
    wlen = struct.unpack(">H", head[14:16])[0]
    return 1 <= rtype <= 48 and 16 <= rlen <= 65535 and wlen <= 65535 and (head[9] & 0x80) == 0 \
        and rlen >= 16


def open_stream(path):
    """Open `path` for reading, transparently decompressing; returns (fileobj, compression)."""
    try:
        raw = open(path, "rb")
    except OSError as exc:
        raise MapiError(EOPEN, "cannot open %s: %s" % (path, exc.strerror), file=path) from None
    head = raw.read(6)
    raw.seek(0)
    for magic, name, opener in COMPRESSORS:
        if head.startswith(magic):
            raw.close()
            return opener(path, "rb"), name
    return raw, None


class SavefileSource(PacketSource):
    offline = True

    def __init__(self, path, fmt=None):
        self.name = path
        self.path = path
        self.f, self.compression = open_stream(path)
        try:
            head = self.f.read(24)
        except (OSError, EOFError, lzma.LZMAError) as exc:
            raise MapiError(EFORMAT, "%s: cannot decompress: %s" % (path, exc), file=path, offset=0)
        detected = sniff_format(head)
        if fmt is None:
            fmt = detected
        if fmt is None:
            raise MapiError(EFORMAT, "%s: not a pcap, pcapng or ERF file (first bytes %s)"
                            % (path, head[:8].hex(" ") or "none: the file is empty"),
                            file=path, offset=0)
        if fmt not in FORMAT_CODES:
            raise MapiError(EFORMAT, "unknown file format %r (use mapi.MFF_PCAP, MFF_PCAPNG or "
                            "MFF_DAG_ERF)" % (fmt,), argument="fmt")
        self.format = fmt
        self.reader = ffi.new("mapi_reader *")
        lib.mapi_reader_init(self.reader, FORMAT_CODES[fmt])
        self.offset = 0                  # file offset of the first unparsed byte
        self.header = {}
        if fmt == MFF_PCAP:
            self._pcap_header(head)
            self.offset = 24
            pending = head[24:]
        else:
            pending = head
            self._peek_linktype()
        self._lock = threading.Lock()
        self._free = [Buffer(BUFFER_SIZE, self._buffer_free) for _ in range(BUFFERS)]
        self._free_cv = threading.Condition()
        self._cur = None                 # buffer being parsed
        self._pos = 0                    # parse position inside it
        self._fill = 0                   # bytes valid in it
        self._eof = False
        self._error = None
        self._carry = bytes(pending)
        self.packets = 0
        self.bytes = 0

    # --- header -------------------------------------------------------------------------------
    def _pcap_header(self, head):
        if len(head) < 24:
            raise MapiError(ETRUNC, "%s: the pcap file header is cut short (%d of 24 bytes)"
                            % (self.path, len(head)), file=self.path, offset=len(head))
        order, nsec = PCAP_MAGICS[head[:4]]
        major, minor, thiszone, sigfigs, snaplen, network = struct.unpack(order + "HHiIII", head[4:24])
        if major != 2:
            raise MapiError(EFORMAT, "%s: unsupported pcap savefile version %d.%d at offset 4"
                            % (self.path, major, minor), file=self.path, offset=4)
        self.reader.swapped = order == ">"
        self.reader.nsec = nsec
        self.reader.linktype = network & 0x0FFFFFFF & 0xFFFF
        self.reader.snaplen = snaplen
        self.reader.max_caplen = max(snaplen, 262144)
        self.linktype = self.reader.linktype
        self.snaplen = snaplen
        self.nsec = nsec
        self.header = dict(magic=head[:4].hex(), version="%d.%d" % (major, minor), thiszone=thiszone,
                           sigfigs=sigfigs, snaplen=snaplen, linktype=self.linktype,
                           fcs_bits=network >> 28, byte_order="big" if order == ">" else "little",
                           precision="ns" if nsec else "us")

    def _peek_linktype(self):
        """pcapng / ERF: the link type of the first packet, known before replay starts."""
        if self.format == MFF_PCAPNG:
            self.linktype, self.snaplen = _pcapng_first_interface(self.path)
        else:
            self.linktype, self.snaplen = 1, 65535
        self.nsec = True

    # --- reading ------------------------------------------------------------------------------
    def _buffer_free(self, buf):
        with self._free_cv:
            self._free.append(buf)
            self._free_cv.notify()

    def _new_buffer(self):
        with self._free_cv:
            while not self._free:
                self._free_cv.wait()
            buf = self._free.pop()
        return buf.acquire()

    def _refill(self):
        """Start a new buffer with the unparsed tail of the old one, then read."""
        tail = self._carry
        if self._cur is not None:
            tail = bytes(self._cur.data[self._pos:self._fill])
            self._cur.release()
        buf = self._new_buffer()
        size = len(buf.data)
        if len(tail) > size // 2:                   # a record larger than half a buffer
            buf.data.extend(bytes(len(tail) * 2 - size))
            buf.cdata = ffi.from_buffer(buf.data)
            size = len(buf.data)
        buf.data[:len(tail)] = tail
        fill = len(tail)
        mv = memoryview(buf.data)
        while fill < size and not self._eof:
            try:
                got = self.f.readinto(mv[fill:])
            except (OSError, EOFError, lzma.LZMAError, zlib_error()) as exc:
                self._error = MapiError(ETRUNC, "%s: %s stream is corrupt near offset %d: %s"
                                        % (self.path, self.compression, self.offset + fill - len(tail), exc),
                                        file=self.path, offset=self.offset + fill - len(tail))
                self._eof = True
                break
            if not got:
                self._eof = True
                break
            fill += got
        mv.release()
        self._cur, self._pos, self._fill, self._carry = buf, 0, fill, b""

    def next_batch_into(self, batch):
        """Fill `batch` (a mapi.batch.Batch); returns False at the end of the file."""
        while True:
            if self._cur is None or (self._pos >= self._fill and not self._eof):
                if self._error:
                    raise self._error
                self._refill()
            region = self._cur.cdata + self._pos
            avail = self._fill - self._pos
            consumed = ffi.new("uint64_t *")
            rc = lib.mapi_reader_parse(self.reader, region, avail, self.offset, batch.c, consumed)
            used = consumed[0]
            n = batch.c.n
            self._pos += used
            self.offset += used
            if rc == lib.MAPI_PARSE_ERROR:
                self._error = MapiError(EFORMAT, "%s: %s" % (self.path, ffi.string(self.reader.err).decode()),
                                        file=self.path, offset=self.reader.err_offset)
                self._eof = True
                self._fill = self._pos
            if n:
                batch.keep = self._cur.acquire()
                self.packets += n
                return True
            if rc == lib.MAPI_PARSE_ERROR:
                raise self._error
            if rc == lib.MAPI_PARSE_NEED_MORE:
                if self._eof:
                    left = self._fill - self._pos
                    self._cur.release()
                    self._cur = None
                    if self._error:
                        raise self._error
                    if left:
                        raise MapiError(ETRUNC, "%s: file ends inside the record at offset %d "
                                        "(%d bytes of it present); every packet before it was "
                                        "delivered" % (self.path, self.offset, left),
                                        file=self.path, offset=self.offset)
                    return False
                self._refill()

    def stats(self):
        return dict(packets=self.packets, offset=self.offset)

    def info(self):
        return dict(path=self.path, format=self.format, compression=self.compression,
                    linktype=self.linktype, snaplen=self.snaplen, header=self.header)

    def close(self):
        try:
            self.f.close()
        except Exception:
            pass


def zlib_error():
    import zlib
    return zlib.error


def _pcapng_first_interface(path):
    """(linktype, snaplen) of the first Interface Description Block, read from the header."""
    f, _ = open_stream(path)
    with f:
        data = f.read(1 << 16)
    pos = 0
    order = "<"
    while pos + 12 <= len(data):
        btype_raw = data[pos:pos + 4]
        if btype_raw == PCAPNG_MAGIC:
            bom = data[pos + 8:pos + 12]
            order = "<" if bom == b"\x4d\x3c\x2b\x1a" else ">"
        btype, blen = struct.unpack(order + "II", data[pos:pos + 8])
        if btype == 1 and pos + 16 <= len(data):
            linktype, _, snaplen = struct.unpack(order + "HHI", data[pos + 8:pos + 16])
            return linktype, snaplen or 262144
        if blen < 12 or blen % 4:
            break
        pos += blen
    return 1, 262144


def probe(path, head):
    return sniff_format(head)


@hookimpl
def scampi_backends():
    return [BackendDescriptor(
        name="savefile",
        doc="pcap, pcapng and ERF savefiles, plain or gzip/xz/bzip2-compressed",
        probe=probe,
        open_offline=lambda path, fmt=None, options=None: SavefileSource(path, fmt),
        priority=0,
    )]
