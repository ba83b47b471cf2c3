"""The client side of mapid: every MAPI call of this process sent to a server.

    MAPI_SERVER=unix:/run/scampi/mapid.sock python app.py     # or, in the program:
    mapi.use_server("unix:/run/scampi/mapid.sock")

Nothing else changes for the application: descriptors, Result, Packet, events, get_next_pkt,
loop, the object layer (mapi.OfflineDevice...) and mapi.explain work as with the in-process
engine.  mapi.use_server(None) goes back to the in-process engine."""
from .install import install, installed, uninstall


def connect(url, **tls):
    """The client object for a MAPI server URL (the one entry point from URL to client):
    unix:PATH (or a path) -> RemoteMapi over the local socket; grpcs://HOST:PORT -> GrpcMapi
    (remote, mutual TLS: ca=, cert=, key=, deadline=, else MAPI_TLS_CA/CERT/KEY and
    MAPI_RPC_TIMEOUT).  Nothing is installed; the session opens on the first call."""
    from .grpc_channel import is_remote
    if is_remote(url):
        from .grpc_remote import GrpcMapi
        return GrpcMapi(url, **tls)
    if tls:
        from mapi.errors import MapiError, EBADARG
        raise MapiError(EBADARG, "TLS settings (%s) apply to grpcs:// servers, not %r"
                        % (", ".join(sorted(tls)), url), argument="url")
    from .remote import RemoteMapi
    return RemoteMapi(url)


_client_for = connect          # use_server's `connect` argument hides the name there


def use_server(url=None, connect=True, **tls):
    """Send every MAPI call of this process to the server at `url` (unix:PATH or
    grpcs://HOST:PORT); None: the in-process engine.  Returns the client, or None."""
    if url is None:
        uninstall()
        return None
    client = _client_for(url, **tls)
    if connect:
        client.connection()
    install(client)
    return client


__all__ = ["use_server", "installed", "connect"]
