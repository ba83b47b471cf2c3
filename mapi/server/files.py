"""Files a client passes to mapid: it opens them itself and passes the descriptor; mapid checks
that the descriptor grants the access it will use and reaches the open file through
/proc/self/fd/N (the engine opens files by name), so it never reaches a file its client could
not."""
import fcntl
import os
import stat

from mapi.errors import MapiError, EOPEN, EPERM

PROC_FD = "/proc/self/fd/%d"


class Held:
    """A descriptor a client passed, kept open while the engine uses the file behind it."""

    def __init__(self, fd, client_path):
        self.fd = fd
        self.client_path = client_path
        self.proc_path = PROC_FD % fd

    def close(self):
        try:
            os.close(self.fd)
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
