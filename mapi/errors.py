"""MapiError and the numeric error codes (after MAPI 2.0's mapi_read_error codes)."""

# code: short text.  Messages add what was wrong and where (argument, file, offset).
CODES = {
    1001: "no such flow",
    1002: "no such function",
    1003: "no such device",
    1004: "unknown function name",
    1005: "bad argument",
    1006: "flow already connected",
    1007: "flow not connected",
    1008: "flow is closed",
    1009: "invalid filter",
    1010: "cannot open file",
    1011: "bad file format",
    1012: "truncated or corrupt file",
    1013: "device busy or already started",
    1014: "device not started",
    1015: "function has no packets to give",
    1016: "timed out",
    1017: "plugin error",
    1018: "not permitted",
    1019: "resource limit reached",
    1020: "not supported",
    1021: "cannot write file",
    1022: "MAPI server unavailable",
}

ENOFLOW, ENOFUNC, ENODEV, EUNKNOWNFUNC, EBADARG, ECONNECTED, ENOTCONNECTED, ECLOSED, \
    EFILTER, EOPEN, EFORMAT, ETRUNC, EBUSY, ENOTSTARTED, ENOPKTS, ETIMEOUT, EPLUGIN, EPERM, \
    ELIMIT, ENOTSUP, EWRITE, ESERVER = range(1001, 1023)

CODE_NAMES = ("ENOFLOW", "ENOFUNC", "ENODEV", "EUNKNOWNFUNC", "EBADARG", "ECONNECTED",
              "ENOTCONNECTED", "ECLOSED", "EFILTER", "EOPEN", "EFORMAT", "ETRUNC", "EBUSY",
              "ENOTSTARTED", "ENOPKTS", "ETIMEOUT", "EPLUGIN", "EPERM", "ELIMIT", "ENOTSUP",
              "EWRITE", "ESERVER")


class MapiError(Exception):
    """Every MAPI failure.  ``code`` is one of CODES; the message says what to fix."""

    def __init__(self, code, message, **where):
        self.code = code
        self.where = where              # e.g. file=..., offset=..., argument=...
        super().__init__(message)

    def __repr__(self):
        return "MapiError(%d, %r)" % (self.code, str(self))


def read_error_text(code):
    return CODES.get(code, "unknown error %d" % code)


def read_file(path, what, code=EOPEN, binary=False):
    """The contents of the file at `path` (bytes, or text without surrounding white space); a
    file that cannot be read is MapiError(code, "<what> <path>: <reason>", file=path)."""
    try:
        with open(path, "rb" if binary else "r") as f:
            data = f.read()
    except OSError as exc:
        raise MapiError(code, "%s %s: %s" % (what, path, exc.strerror), file=path) from None
    return data if binary else data.strip()


__all__ = ["MapiError", "read_error_text"] + list(CODE_NAMES)
