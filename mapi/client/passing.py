"""Files a request to mapid passes: the client opens them itself, with its own rights, and
passes the descriptors (docs/protocol.md section 4, "File arguments" and "Destinations"):
TO_FILE's target (an argument of type "w") and a "file:PATH" or "fd:N" destination.  What
counts as such a file is mapi.descriptor.passed_file, the rule mapid enforces too."""
import contextlib
import os

from mapi.descriptor import passed_file
from mapi.errors import MapiError, EBADARG, EOPEN


@contextlib.contextmanager
def passing():
    """([descriptors], [paths created]) for the files a request passes: the descriptors are
    closed after it, the files it created removed if it fails (refused: leave no empty file)."""
    fds, created = [], []
    try:
        yield fds, created
    except BaseException:
        for path in created:
            unlink_quietly(path)
        raise
    finally:
        for f in fds:
            os.close(f)


def pass_files(desc, args, kwargs, fds, created):
    """(args, kwargs, file_args) of a call of the function `desc` (describe_function's) with
    its files opened here: each descriptor appended to fds, each file made here to created;
    the values stay the client's words (a path made absolute)."""
    args, kwargs = list(args), dict(kwargs)
    files = []
    for i, a in enumerate(desc["args"]):
        where = i if i < len(args) else a["name"] if a["name"] in kwargs else None
        if where is None:
            continue
        value = args[where] if isinstance(where, int) else kwargs[where]
        if a["type"] == "w":
            value, fdesc, new = open_for_writing(desc["name"], a["name"], value)
        else:
            kind = passed_file(a["type"], a["name"], value)
            if kind is None:
                continue
            value, fdesc, new = open_destination(desc["name"], kind, value)
        if new:
            created.append(new)
        if isinstance(where, int):
            args[where] = value
        else:
            kwargs[where] = value
        files.append(str(where))
        fds.append(fdesc)
    return args, kwargs, files


def open_for_writing(fname, arg, value):
    """(absolute path, descriptor, the path if this made the file) of a file the server is to
    write: opened for reading too when allowed (appending checks the records); the server
    truncates or appends when the flow connects."""
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if not isinstance(value, str) or not value:
        raise MapiError(EBADARG, "%s: argument %r must be a file name, got %r"
                        % (fname, arg, value), argument=arg)
    path = os.path.abspath(os.path.expanduser(value))
    flags = os.O_CREAT | os.O_CLOEXEC
    try:
        try:
            return path, os.open(path, os.O_RDWR | os.O_EXCL | flags, 0o644), path
        except FileExistsError:
            pass
        try:
            return path, os.open(path, os.O_RDWR | flags, 0o644), None
        except PermissionError:
            return path, os.open(path, os.O_WRONLY | flags, 0o644), None
    except OSError as exc:
        raise MapiError(EOPEN, "%s: cannot open %s for writing: %s" % (fname, path, exc.strerror),
                        argument=arg, file=path) from None


def open_destination(fname, kind, value):
    """(value, descriptor, the path if this made the file) of a destination: "file:PATH" opened
    here (no O_TRUNC: mapid truncates once the call is allowed), "fd:N" a copy of this
    process's descriptor N."""
    rest = value.split(":", 1)[1]
    if kind == "fd":
        if not rest.isdigit():
            raise MapiError(EBADARG, "%s: destination %r: fd:N takes a descriptor number"
                            % (fname, value), argument="destination")
        try:
            return value, os.dup(int(rest)), None
        except OSError as exc:
            raise MapiError(EOPEN, "%s: descriptor %s: %s" % (fname, rest, exc.strerror),
                            argument="destination") from None
    path = os.path.abspath(os.path.expanduser(rest))
    try:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            return "file:" + path, fd, path
        except FileExistsError:
            return "file:" + path, os.open(path, os.O_WRONLY | os.O_CLOEXEC), None
    except OSError as exc:
        raise MapiError(EOPEN, "%s: cannot open %s for writing: %s" % (fname, path, exc.strerror),
                        argument="destination", file=path) from None


def unlink_quietly(path):
    try:
        os.unlink(path)
    except OSError:
        pass
