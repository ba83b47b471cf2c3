"""mapid's remote listener: the MAPI protocol over gRPC with mutual TLS (docs/protocol.md §9).

    mapid --listen 0.0.0.0:7000 --tls-cert s1.pem --tls-key s1.key --tls-client-ca ca.pem

Remote clients get sessions like local ones (same calls, same checks, same isolation: they see
their own flows), packets as a stream of batches instead of a mapped ring, and the sensor's
files only under --remote-traces / --remote-output.  grpcio is imported only when mapid
listens remotely."""
import logging
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger("mapid.remote")
# the longest message either side takes: a batch of packets (4 MiB of records) and a frame
SEND_LIMIT = 64 << 20


class RemoteListener:
    def __init__(self, server, table, port):
        self.server = server
        self.table = table
        self.port = port

    def sessions(self):
        return [c.session for c in self.table.all()]

    def stop(self, grace=2.0):
        self.server.stop(grace).wait(grace + 1)
        self.table.close_all()


def listen(address, cert, key, client_ca, make_session, ids, limits, workers=64,
           traces=None, output=None):
    """Start serving on HOST:PORT; returns the RemoteListener (its port: the bound one)."""
    import grpc

    from mapi.proto import grpc_stubs

    from .service import MapiService
    from .sessions import SessionTable
    from .tls import server_credentials

    creds = server_credentials(cert, key, client_ca)
    table = SessionTable(make_session, ids, limits["backlog_bytes"])
    options = [
        ("grpc.max_receive_message_length", limits["message_bytes"]),
        ("grpc.max_send_message_length", SEND_LIMIT),
        # a client that vanished without closing (its host went away) is noticed by pings
        ("grpc.keepalive_time_ms", 10000),
        ("grpc.keepalive_timeout_ms", 5000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 2000),
        ("grpc.http2.max_ping_strikes", 0),
        ("grpc.so_reuseport", 0),
    ]
    # every stream holds a thread: beyond them a call is refused at once, never queued
    server = grpc.server(ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mapid-grpc"),
                         options=options, maximum_concurrent_rpcs=workers)
    grpc_stubs().add_MapiServicer_to_server(MapiService(table, traces, output), server)
    try:
        port = server.add_secure_port(address, creds)
    except RuntimeError as exc:
        raise OSError("cannot listen on %s: %s" % (address, exc)) from None
    if not port:
        raise OSError("cannot listen on %s (address in use or not on this host)" % address)
    server.start()
    return RemoteListener(server, table, port)
