"""Where the savefile backend's bytes come from: regions of the file held in memory, each
reference counted by the batches parsed from it.

  ReadAheadFile   a plain file, copied with pread by a thread of its own one chunk ahead of
                  the parser (the default)
  MappedFile      a plain file mapped a window at a time (mmap=True)
  BufferedStream  a decompressor or a pipe, read into a few reusable buffers
"""
import collections
import lzma
import mmap
import os
import threading
import time
import zlib

from mapi import native
from mapi.batch import Buffer, RefCounted
from mapi.errors import MapiError, EOPEN, ETRUNC

ffi, lib = native.engine()

BUFFER_SIZE = 4 << 20          # read buffers (compressed input, pipes)
BUFFERS = 4
WINDOW_SIZE = 16 << 20         # plain files: mapped windows
READ_CHUNK = 256 << 10         # a decompressor's reads
READ_AHEAD_CHUNK = 8 << 20     # plain files: the chunks pread copies ahead of the parser (a region
READ_AHEAD = 1                 # bounds a batch, up to the reader's 8 MB), and how many ahead
HEADROOM = (256 << 10) + 64    # room before a chunk for the previous region's unparsed end
                               # (a record up to libpcap's usual 256 KB maximum)

DECOMPRESS_ERRORS = (OSError, EOFError, lzma.LZMAError, zlib.error)


class Region:
    """Bytes of the file held in memory: `size` valid bytes from file offset `offset`;
    `eof`: they run to the end of the file.  `keep` is reference counted by the batches."""
    __slots__ = ("cdata", "size", "offset", "eof", "keep")

    def __init__(self, cdata, size, offset, eof, keep):
        self.cdata, self.size, self.offset, self.eof, self.keep = cdata, size, offset, eof, keep


class MappedWindow(RefCounted):
    """A mapped piece of the file, unmapped when its last batch is released."""
    __slots__ = ("mm", "cdata", "refs", "lock")

    def __init__(self, fd, offset, length):
        # private, writable: libpcap byte-swaps a few pseudo-headers in place (USB, NFLOG)
        self.mm = mmap.mmap(fd, length, flags=mmap.MAP_PRIVATE,
                            prot=mmap.PROT_READ | mmap.PROT_WRITE, offset=offset)
        try:
            self.mm.madvise(mmap.MADV_SEQUENTIAL)
            self.mm.madvise(mmap.MADV_WILLNEED)
        except (AttributeError, OSError):
            pass
        self.cdata = ffi.from_buffer(self.mm)
        self.refs = 1
        self.lock = threading.Lock()

    def free(self):
        ffi.release(self.cdata)
        self.mm.close()


class MappedFile:
    """Regions of a plain file as mapped windows."""
    carries_tail = False        # a window starts at the first unparsed byte itself

    def __init__(self, fd, size):
        self.fd = fd
        self.size = size

    def region(self, offset, need):
        page = mmap.ALLOCATIONGRANULARITY
        start = offset - offset % page
        length = min(self.size - start, max(WINDOW_SIZE, offset - start + need))
        win = MappedWindow(self.fd, start, length)
        skip = offset - start
        return Region(win.cdata + skip, length - skip, offset, start + length >= self.size, win)

    def close(self):
        os.close(self.fd)


class BufferedStream:
    """Regions of a stream (decompressor, pipe) read into a few reusable buffers."""
    carries_tail = True         # the unparsed end of a region starts the next

    def __init__(self, f, path, compression, raw=None, size=None):
        self.f = f
        self.size = size or BUFFER_SIZE
        self.raw = raw              # the file a decompressor reads (closed with it)
        self.path = path
        self.compression = compression
        self.eof = False
        self.error = None
        self._free = [Buffer(self.size, self._buffer_free) for _ in range(BUFFERS)]
        self._free_cv = threading.Condition()

    def _buffer_free(self, buf):
        with self._free_cv:
            self._free.append(buf)
            self._free_cv.notify()

    def _get_buffer(self, want):
        with self._free_cv:
            while not self._free:
                self._free_cv.wait()
            buf = self._free.pop()
        if len(buf.data) < want or len(buf.data) > max(self.size, want) * 2:
            # a record larger than a buffer; back to the usual size afterwards
            buf.data = bytearray(max(self.size, want))
            buf.cdata = ffi.from_buffer(buf.data)
        return buf.acquire()

    def region(self, offset, need, tail=b""):
        """A region starting at `offset` whose first bytes are `tail` (the unparsed end of the
        previous region), holding at least `need` bytes unless the stream ends first."""
        buf = self._get_buffer(max(need, len(tail)) + (self.size // 2))
        size = len(buf.data)
        buf.data[:len(tail)] = tail
        fill = len(tail)
        mv = memoryview(buf.data)
        try:
            while fill < size and not self.eof:
                try:
                    # small reads: a decompressor that fails loses only its last chunk
                    got = self.f.readinto(mv[fill:fill + READ_CHUNK])
                except DECOMPRESS_ERRORS as exc:
                    where = offset + fill
                    self.error = MapiError(
                        ETRUNC, "%s: the %s stream is corrupt or cut short near offset %d of "
                        "the decompressed data: %s" % (self.path, self.compression or "input",
                                                       where, exc),
                        file=self.path, offset=where, pcap_error="")
                    self.eof = True
                    break
                if not got:
                    self.eof = True
                    break
                fill += got
        finally:
            mv.release()
        return Region(buf.cdata, fill, offset, self.eof, buf)

    def close(self):
        for f in (self.f, self.raw):
            try:
                if f is not None:
                    f.close()
            except Exception:
                pass


class _Gathered(RefCounted):
    """A region assembled from several chunks (a record longer than a chunk and its headroom)."""
    __slots__ = ("data", "cdata", "refs", "lock")

    def __init__(self, data):
        self.data = data
        self.cdata = ffi.from_buffer(data)
        self.refs = 1
        self.lock = threading.Lock()

    def free(self):
        pass


class _ReadAhead:
    """The reading side of a ReadAheadFile, shared with its thread.  The thread holds this and
    not the file, so a file its owner forgot to close is still collected: its finalizer stops
    the thread, and whichever of the two comes last closes the descriptor."""

    def __init__(self, fd, path):
        self.fd = fd
        self.path = path
        self.chunk = READ_AHEAD_CHUNK
        self.ahead = READ_AHEAD
        self.headroom = HEADROOM
        self.cv = threading.Condition()
        self.free = [Buffer(self.headroom + self.chunk, self.buffer_free) for _ in range(BUFFERS)]
        self.filled = collections.deque()       # (buffer, file offset, bytes, last, error)
        self.stopped = self.exited = self.orphaned = False

    def buffer_free(self, buf):
        with self.cv:
            self.free.append(buf)
            self.cv.notify_all()

    def run(self):
        offset, last = 0, False
        while not last:
            with self.cv:
                while not self.stopped and (not self.free or len(self.filled) >= self.ahead):
                    self.cv.wait()
                if self.stopped:
                    break
                buf = self.free.pop()
            got, error = self.read_chunk(buf, offset)
            last = got < self.chunk or error is not None
            with self.cv:
                self.filled.append((buf, offset, got, last, error))
                self.cv.notify_all()
            offset += got
        with self.cv:
            self.exited = True
            orphaned = self.orphaned
        if orphaned:
            os.close(self.fd)

    def read_chunk(self, buf, offset):
        got = 0
        view = memoryview(buf.data)
        try:
            while got < self.chunk:
                n = os.preadv(self.fd, [view[self.headroom + got:self.headroom + self.chunk]],
                              offset + got)
                if not n:
                    break
                got += n
        except OSError as exc:
            return got, MapiError(EOPEN, "%s: read error at offset %d: %s"
                                  % (self.path, offset + got, exc.strerror),
                                  file=self.path, offset=offset + got, pcap_error="")
        finally:
            view.release()
        return got, None

    def next_chunk(self):
        with self.cv:
            while not self.filled:
                self.cv.wait()
            chunk = self.filled.popleft()
            self.cv.notify_all()            # room to read the next one ahead
        return chunk

    def stop(self, orphaned=False):
        """Stop the thread; True when the caller must close the descriptor itself."""
        with self.cv:
            self.stopped = True
            self.orphaned = orphaned
            self.cv.notify_all()
            return not orphaned or self.exited


def _wait_gone(tid, limit=0.2):
    """Wait (a bounded while) until thread `tid` has left the process.  join() returns before
    the thread's C exit gives its malloc arena and stack back; a next file's read-ahead thread
    started in that window makes a new arena and stack instead (72 MB of address space each
    time, seen in a 1,000-replay soak under load)."""
    task = "/proc/self/task/%d" % tid
    deadline = time.monotonic() + limit
    while os.path.exists(task) and time.monotonic() < deadline:
        time.sleep(0.0002)


class ReadAheadFile:
    """Regions of a plain file read ahead of the parser by a thread of its own: pread copies the
    next chunk while the engine parses and filters the current one, so the copy (a quarter of
    the P1 job's time) runs on another core.  Read with pread from offset 0: the descriptor's
    offset, which a passed descriptor shares with its owner, stays where it was (as with a
    mapping).  Every buffer keeps HEADROOM bytes before its chunk, where the unparsed end of the
    previous region is copied so that records straddling two chunks stay contiguous."""
    carries_tail = True

    def __init__(self, fd, path):
        self.eof = False
        self.error = None
        self._ahead = _ReadAhead(fd, path)
        self._thread = threading.Thread(target=self._ahead.run, daemon=True,
                                        name="savefile read-ahead")
        self._thread.start()
        self._open = True

    def _next_chunk(self):
        chunk = self._ahead.next_chunk()
        if chunk[4] is not None:
            self.error = chunk[4]
        self.eof = chunk[3]
        return chunk

    def region(self, offset, need, tail=b""):
        """The region at `offset` whose first bytes are `tail` (the unparsed end of the previous
        region), holding at least `need` bytes unless the file ends first."""
        if self.eof:                        # asked again past the end: only the tail is left
            keep = _Gathered(bytearray(tail) or bytearray(1))
            return Region(keep.cdata, len(tail), offset, True, keep)
        buf, _, got, last, _ = self._next_chunk()
        t, room = len(tail), self._ahead.headroom
        if t <= room and (t + got >= need or last):
            start = room - t
            buf.data[start:room] = tail
            return Region(buf.cdata + start, t + got, offset, last, buf.acquire())
        # a record longer than a chunk and its headroom: gather the chunks it spans
        data = bytearray(tail)
        while True:
            data += buf.data[room:room + got]
            buf.acquire().release()         # back to the reader
            if len(data) >= need or last:
                break
            buf, _, got, last, _ = self._next_chunk()
        keep = _Gathered(data)
        return Region(keep.cdata, len(data), offset, last, keep)

    def close(self):
        if self._open:
            self._open = False
            self._ahead.stop()
            self._thread.join()             # no pread on the descriptor once it is closed
            os.close(self._ahead.fd)
            _wait_gone(self._thread.native_id)

    def __del__(self):
        if getattr(self, "_open", False) and self._ahead.stop(orphaned=True):
            os.close(self._ahead.fd)
