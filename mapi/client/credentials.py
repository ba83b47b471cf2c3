"""The client's side of job control: presenting credentials once per connection, and sending
user code to load.

    MAPI_TOKEN=<base64 token>            presented on every new connection to mapid
    MAPI_TOKEN_FILE=~/.config/scampi/token   the same, read from a file
    mapi.authenticate(token)             the same from the program (a token, or @FILE)

A process without any of these gets what mapid's config grants its uid."""
import os

from mapi.errors import MapiError, EBADARG, EOPEN
from mapi.proto import pb
from mapi.proto.values import from_value


def read_token(value):
    """The token text of `value`: a token, or @PATH (a file holding one)."""
    if not isinstance(value, (str, bytes)):
        raise MapiError(EBADARG, "authenticate: the token must be text (base64), not %r"
                        % type(value).__name__, argument="token")
    value = value.decode("ascii", "replace") if isinstance(value, bytes) else value
    value = value.strip()
    if value.startswith("@"):
        return _read_file(os.path.expanduser(value[1:]))
    return value


def env_token():
    """The token the environment names (MAPI_TOKEN, MAPI_TOKEN_FILE), or None."""
    if os.environ.get("MAPI_TOKEN"):
        return os.environ["MAPI_TOKEN"].strip()
    if os.environ.get("MAPI_TOKEN_FILE"):
        return _read_file(os.path.expanduser(os.environ["MAPI_TOKEN_FILE"]))
    return None


def _read_file(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError as exc:
        raise MapiError(EOPEN, "cannot read the token file %s: %s" % (path, exc.strerror),
                        file=path) from None


def present(conn, token):
    """Authenticate connection `conn` with `token`; returns the rights the server granted."""
    reply = conn.call(pb.Request(authenticate=pb.Authenticate(token=token)))
    return from_value(reply.value)


def load_library_request(path, kind, place, name):
    """The LoadLibrary request for the library file at `path` (read here, with this process's
    rights; the server never opens it)."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            code = f.read()
    except OSError as exc:
        raise MapiError(EOPEN, "load_library: cannot read %s: %s" % (path, exc.strerror),
                        file=path) from None
    return pb.Request(load_library=pb.LoadLibrary(name=name or "", kind=kind or "sandboxed",
                                                  place=place or "host", code=code,
                                                  filename=os.path.abspath(path)))
