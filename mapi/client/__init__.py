"""The client side of mapid: every MAPI call of this process sent to a server.

    MAPI_SERVER=unix:/run/scampi/mapid.sock python app.py     # or, in the program:
    mapi.use_server("unix:/run/scampi/mapid.sock")

Nothing else changes for the application: descriptors, Result, Packet, events, get_next_pkt,
loop, the object layer (mapi.OfflineDevice...) and mapi.explain work as with the in-process
engine.  mapi.use_server(None) goes back to the in-process engine."""
from .install import install, installed, uninstall


def use_server(url=None, connect=True):
    """Send every MAPI call to the server at `url` (unix:PATH); None: the in-process engine.
    Returns the client (a RemoteMapi), or None."""
    if url is None:
        uninstall()
        return None
    from .remote import RemoteMapi
    client = RemoteMapi(url)
    if connect:
        client.connection()
    install(client)
    return client


__all__ = ["use_server", "installed"]
