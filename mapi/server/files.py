"""Files a client passes to mapid: it opens them itself and passes the descriptor; mapid checks
that the descriptor grants the access it will use and hands the engine the descriptor, never
the name (a trace to the savefile backend, a target to TO_FILE), so mapid reaches exactly the
files its client could, whatever user mapid runs as."""
import fcntl
import os
import stat

from mapi.compression import MAGIC_BYTES, compression_of, open_decompressed
from mapi.errors import MapiError, EOPEN, EPERM


class PassedPath(str):
    """A client's file name (for messages and results) carrying the descriptor the client
    passed for it: what reads or writes the file uses fileno(), never the name.  mapid keeps
    the descriptor open while the engine may use it (close())."""

    def __new__(cls, path, fd):
        self = super().__new__(cls, path)
        self.fd = fd
        return self

    def fileno(self):
        if self.fd is None:
            raise ValueError("the descriptor passed for %s is closed" % self)
        return self.fd

    def regular(self):
        try:
            return stat.S_ISREG(os.fstat(self.fd).st_mode)
        except OSError:
            return False

    def head(self, n):
        """The first n bytes of the (regular) file as a reader sees them, decompressed; b""
        when they cannot be read.  Reads with pread: nobody's file offset matters."""
        try:
            head = os.pread(self.fd, max(n, MAGIC_BYTES), 0)
            compression = compression_of(head)
            if compression is None:
                return head[:n]
            with os.fdopen(os.dup(self.fd), "rb") as raw:
                raw.seek(0)
                with open_decompressed(raw, compression) as f:
                    return f.read(n)
        except Exception:          # unreadable or corrupt: the backend's open says precisely
            return b""

    def close(self):
        fd, self.fd = self.fd, None
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass


def check_descriptor(fd, write, what, path):
    """Refuse a descriptor that does not grant the access the engine will use."""
    try:
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        st = os.fstat(fd)
    except OSError as exc:
        raise MapiError(EOPEN, "%s: the descriptor passed for %s is unusable: %s"
                        % (what, path, exc.strerror), file=path) from None
    acc = flags & os.O_ACCMODE
    if flags & getattr(os, "O_PATH", 0):
        raise MapiError(EPERM, "%s: the descriptor passed for %s is an O_PATH descriptor, which "
                        "grants no access to the file" % (what, path), file=path)
    if write and acc not in (os.O_WRONLY, os.O_RDWR):
        raise MapiError(EPERM, "%s: the descriptor passed for %s is not open for writing"
                        % (what, path), file=path)
    if not write and acc not in (os.O_RDONLY, os.O_RDWR):
        raise MapiError(EPERM, "%s: the descriptor passed for %s is not open for reading"
                        % (what, path), file=path)
    if stat.S_ISDIR(st.st_mode) or stat.S_ISSOCK(st.st_mode):
        raise MapiError(EOPEN, "%s: %s is a %s, not a file" % (
            what, path, "directory" if stat.S_ISDIR(st.st_mode) else "socket"), file=path)
