"""Files a client passes to mapid: it opens them itself and passes the descriptor; mapid checks
that the descriptor grants the access it will use and hands the engine the descriptor, never
the name (a trace to the savefile backend, a target to TO_FILE, a destination to FLOW_REPORT
and RECORD_REPORT), so mapid reaches exactly the files its client could, whatever user mapid
runs as."""
import fcntl
import os
import stat

from mapi.compression import MAGIC_BYTES, compression_of, open_decompressed
from mapi.descriptor import passed_file
from mapi.errors import MapiError, EBADARG, EOPEN, EPERM


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


def bind_passed_files(session, desc, args, kwargs, files, held):
    """The arguments of a client's apply_function with its passed files in place: a "w"
    argument becomes a PassedPath of its descriptor, a destination "fd:N" of mapid's copy
    (a "file:PATH" one truncated first, as the function's own open would).  files: {position or
    keyword: (descriptor, the client's value)}; each PassedPath goes to `held` (mapid keeps the
    descriptor while the flow lives).  An argument that names a file without passing it, or a
    directory the function would create files in for a client with fewer rights than mapid's,
    is refused before anything is opened."""
    params = [a.name for a in desc.args]
    passed = {params[int(w)] if str(w).isdigit() and int(w) < len(params) else w for w in files}
    for i, a in enumerate(desc.args):
        value = args[i] if i < len(args) else kwargs.get(a.name)
        if a.type == "d" and value:
            check_directory(session, desc, a, value)
        if a.name not in passed and passed_file(a.type, a.name, value):
            raise MapiError(EPERM, "%s: argument %r names a file (%r) that the client did not "
                            "pass: mapid opens no file by name for a client; open it in the "
                            "client and pass the descriptor (docs/protocol.md section 7)"
                            % (desc.name, a.name, value), argument=a.name)
    args, kwargs = list(args), dict(kwargs)
    for where, (fdesc, path) in files.items():
        key = int(where) if str(where).isdigit() else where
        pname = params[key] if isinstance(key, int) and key < len(params) else key
        arg = desc.args[params.index(pname)] if pname in params else None
        if arg is None or not (arg.type == "w" or arg.name == "destination"):
            raise MapiError(EBADARG, "%s: argument %r is not a file to write"
                            % (desc.name, pname), argument=str(pname))
        check_descriptor(fdesc, True, desc.name, path)
        value = PassedPath(path, fdesc)
        held.append(value)
        if arg.type != "w":
            # a destination: the function writes to the descriptor, given as "fd:N" (the
            # client's words, "file:PATH" or its own "fd:N", stay in messages)
            if path.startswith("file:"):
                os.ftruncate(fdesc, 0)
            value = "fd:%d" % fdesc
        if isinstance(key, int):
            args[key] = value
        else:
            kwargs[key] = value
    return args, kwargs


def check_directory(session, desc, arg, value):
    """A directory a function creates files in by name (type "d", RECORD_STORE's): no
    descriptor can confine what mapid creates there (the kernel checks mapid's own rights at
    each create), so mapid takes one only from a client with at least its rights: root, or its
    own uid; never from a remote client."""
    me = os.geteuid()
    if not session.remote and session.uid in (0, me):
        return
    who = "a remote client" if session.remote else "uid %d" % session.uid
    raise MapiError(EPERM, "%s: argument %r is a directory (%r) that mapid (uid %d) would "
                    "create files in with its own rights, more than %s has; through mapid it "
                    "is open to root and to mapid's own uid only (in-process MAPI has no such "
                    "limit)" % (desc.name, arg.name, value, me, who), argument=arg.name)
