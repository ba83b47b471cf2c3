"""Mutual TLS for mapid's remote listener: the server's certificate and key, and the CA whose
certificates clients must present (no client certificate, one of another CA or an expired one:
the handshake fails and no call is served).  There is no plaintext remote listener."""
import hashlib

import grpc


class TLSError(Exception):
    pass


def _read(path, what):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise TLSError("cannot read the %s %s: %s" % (what, path, exc.strerror)) from None
    if b"-----BEGIN" not in data:
        raise TLSError("%s %s is not PEM" % (what, path))
    return data


def server_credentials(cert, key, client_ca):
    if not (cert and key and client_ca):
        raise TLSError("--listen needs --tls-cert, --tls-key and --tls-client-ca (mutual TLS "
                       "only: there is no plaintext remote listener)")
    return grpc.ssl_server_credentials(
        [(_read(key, "TLS key"), _read(cert, "TLS certificate"))],
        root_certificates=_read(client_ca, "client CA"), require_client_auth=True)


def identity(context):
    """(fingerprint, common name) of the client certificate of a call: who the session
    belongs to.  TLS made sure there is one, signed by the client CA."""
    auth = context.auth_context()
    pem = (auth.get("x509_pem_cert") or [b""])[0]
    cn = (auth.get("x509_common_name") or [b"?"])[0]
    if isinstance(cn, bytes):
        cn = cn.decode("utf-8", "replace")
    return hashlib.sha256(pem).hexdigest()[:16], cn
