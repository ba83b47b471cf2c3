"""Reaching a remote mapid: grpcs:// URLs, the client's TLS material and the channel settings.

    grpcs://HOST:PORT            a server (HOST: a name or address; IPv6 as [::1])
    grpcs://HOST:PORT/DEVICE     a device of that server (a distributed flow's sensor)

TLS is mutual and the only way: the CA that signed the servers' certificates and this client's
certificate and key come from the arguments (mapi.use_server(url, ca=..., cert=..., key=...))
or from MAPI_TLS_CA, MAPI_TLS_CERT and MAPI_TLS_KEY.  Every call has a deadline
(MAPI_RPC_TIMEOUT seconds, 5 by default, or deadline=...)."""
import os
import re

from mapi.errors import MapiError, EBADARG, EOPEN

SCHEME = "grpcs://"
DEFAULT_DEADLINE = 5.0
_URL = re.compile(r"^grpcs://(\[[0-9a-fA-F:.]+\]|[^/:\[\]\s]+):(\d{1,5})(?:/(.*))?$")


def is_remote(url):
    return isinstance(url, str) and url.strip().startswith(SCHEME)


def parse(url):
    """(host, port, device or None) of a grpcs:// URL; MapiError naming what is wrong."""
    m = _URL.match(url.strip()) if isinstance(url, str) else None
    if m is None or not 0 < int(m.group(2)) < 65536:
        raise MapiError(EBADARG, "%r is not a remote MAPI server: give grpcs://HOST:PORT (or "
                        "grpcs://HOST:PORT/DEVICE for a sensor of a distributed flow)" % (url,),
                        argument="url")
    return m.group(1), int(m.group(2)), (m.group(3) or None)


def target(host, port):
    return "%s:%d" % (host, port)


class TLSConfig:
    """The client's TLS material (paths), with the environment's as defaults."""

    def __init__(self, ca=None, cert=None, key=None, deadline=None):
        self.ca = ca or os.environ.get("MAPI_TLS_CA")
        self.cert = cert or os.environ.get("MAPI_TLS_CERT")
        self.key = key or os.environ.get("MAPI_TLS_KEY")
        env_deadline = os.environ.get("MAPI_RPC_TIMEOUT")
        try:
            self.deadline = float(deadline if deadline is not None else
                                  env_deadline or DEFAULT_DEADLINE)
        except ValueError:
            raise MapiError(EBADARG, "MAPI_RPC_TIMEOUT must be seconds, not %r" % env_deadline,
                            argument="MAPI_RPC_TIMEOUT") from None
        if self.deadline <= 0:
            raise MapiError(EBADARG, "the call deadline must be > 0 s, not %r" % self.deadline,
                            argument="deadline")

    def key_tuple(self):
        return (self.ca, self.cert, self.key, self.deadline)

    def credentials(self):
        import grpc
        missing = [n for n, v in (("MAPI_TLS_CA (ca=)", self.ca), ("MAPI_TLS_CERT (cert=)", self.cert),
                                  ("MAPI_TLS_KEY (key=)", self.key)) if not v]
        if missing:
            raise MapiError(EBADARG, "a grpcs:// server needs mutual TLS: set %s (mapi-admin "
                            "certs makes them)" % ", ".join(missing), argument="tls")
        return grpc.ssl_channel_credentials(root_certificates=_read(self.ca, "CA"),
                                            private_key=_read(self.key, "key"),
                                            certificate_chain=_read(self.cert, "certificate"))


def _read(path, what):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise MapiError(EOPEN, "cannot read the TLS %s %s: %s" % (what, path, exc.strerror),
                        file=path) from None


CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", 64 << 20),
    ("grpc.max_send_message_length", 16 << 20),
    # a server that vanished without a word (its host went away) is noticed by pings
    ("grpc.keepalive_time_ms", 5000),
    ("grpc.keepalive_timeout_ms", 3000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    # a server that comes back is found again within a second
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.enable_retries", 0),
    ("grpc.use_local_subchannel_pool", 1),
]
