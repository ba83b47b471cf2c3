"""Checking the arguments of the MAPI calls: a function's arguments against its descriptor,
and every string (filters, patterns, paths, field names, device and function names).

Strings are strings: a NUL would cut the text where C reads it ("tcp\\x00 and port 81" would
count like "tcp"), and a lone surrogate cannot be encoded at all, so both are refused with the
argument's name and the offset of the bad character."""
import os

from .descriptor import REQUIRED
from .errors import MapiError, EBADARG


def check_text(value, argument, what, path=False):
    """`value` (str or bytes) as a str, or MapiError(EBADARG) naming `argument` and the offset
    of a NUL or of a character that cannot be encoded.  Bytes are latin-1 (one character per
    byte: binary patterns stay binary), a path's bytes the file system's encoding."""
    if isinstance(value, (bytes, bytearray)):
        value = os.fsdecode(bytes(value)) if path else bytes(value).decode("latin-1")
    nul = value.find("\x00")
    if nul >= 0:
        hint = "" if path else " (in a pattern, write the byte as |00| or \\x00)"
        raise MapiError(EBADARG, "%s: argument %r has a NUL character at offset %d: %r; a string "
                        "argument may not contain one%s" % (what, argument, nul, value, hint),
                        argument=argument, offset=nul)
    try:
        if path:
            os.fsencode(value)
        else:
            value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise MapiError(EBADARG, "%s: argument %r has a character that cannot be encoded at "
                        "offset %d (%r): %s" % (what, argument, exc.start,
                                                value[exc.start:exc.end], exc.reason),
                        argument=argument, offset=exc.start) from None
    return value


def bind_args(desc, args, kwargs):
    """Match positional/keyword arguments to the descriptor; check their types."""
    params = desc.args
    if len(args) > len(params):
        raise MapiError(EBADARG, "%s takes at most %d arguments (%s), got %d"
                        % (desc.name, len(params), desc.signature(), len(args)), argument=desc.name)
    values = list(args)
    for p in params[len(args):]:
        if p.name in kwargs:
            values.append(kwargs.pop(p.name))
        elif p.default is REQUIRED:
            raise MapiError(EBADARG, "%s: missing argument %r; usage: %s"
                            % (desc.name, p.name, desc.signature()), argument=p.name)
        else:
            values.append(p.default)
    if kwargs:
        raise MapiError(EBADARG, "%s: unknown argument(s) %s; usage: %s"
                        % (desc.name, ", ".join(kwargs), desc.signature()), argument=next(iter(kwargs)))
    return tuple(_coerce(desc, p, v) for p, v in zip(params, values))


def _coerce(desc, p, v):
    def bad(what):
        raise MapiError(EBADARG, "%s: argument %r must be %s, got %r; usage: %s"
                        % (desc.name, p.name, what, v, desc.signature()), argument=p.name)
    t = p.type
    if t in ("s", "w", "d"):
        if not isinstance(v, (str, bytes)):
            bad("a string")
        v = check_text(v, p.name, desc.name, path=t in ("w", "d"))
    elif t == "S":
        if isinstance(v, (str, bytes)):
            v = (v,)
        try:
            v = tuple(v)
        except TypeError:
            bad("a string or a list of strings")
        if not v or not all(isinstance(x, (str, bytes)) for x in v):
            bad("a string or a non-empty list of strings")
        v = tuple(check_text(x, p.name if len(v) == 1 else "%s[%d]" % (p.name, i), desc.name)
                  for i, x in enumerate(v))
    elif t in ("i", "l"):
        if isinstance(v, bool) or not isinstance(v, int):
            bad("an integer")
        if t == "l" and not 0 <= v < 2 ** 64:
            bad("an unsigned 64-bit integer")
    elif t == "n":
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            bad("a number")
    elif t == "b":
        v = bool(v)
    elif t == "F":
        if not (isinstance(v, (tuple, list)) and len(v) == 2 and all(isinstance(x, int) for x in v)):
            bad("a (fd, fid) pair")
        v = tuple(v)
    elif t == "t":
        if isinstance(v, bool) or not isinstance(v, (int, str)) or (isinstance(v, int) and v < 0):
            bad("a duration: integer nanoseconds or a string like \"1s\" or \"100ms\"")
        if isinstance(v, str):
            check_text(v, p.name, desc.name)
    elif t == "c":
        if isinstance(v, str):
            check_text(v, p.name, desc.name)
        if p.choices and v not in p.choices:
            bad("one of %s" % (", ".join(map(repr, p.choices))))
    return v
