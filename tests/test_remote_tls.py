"""The remote listener takes mutual TLS only: no client certificate, a certificate of another
CA, an expired certificate and plaintext are refused at the handshake, and the server serves
the next good client as before.  Malformed and oversized messages are rejected without a crash
(a fuzz loop bounded in time), and a session is its certificate's alone."""
import os
import random
import socket
import ssl
import time

import grpc
import pytest

import mapi
from mapi.proto import grpc_stubs, pb
from helpers.remote import RemoteMapid, pki_fixture

FUZZ_SECONDS = 4.0
pki = pki_fixture()


@pytest.fixture(scope="module")
def server(tmp_path_factory, pki):
    with RemoteMapid(tmp_path_factory.mktemp("mapid"), pki) as m:
        yield m
        assert m.proc.poll() is None, "mapid died:\n" + m.log_text()


def good_call(server, pki):
    """A whole session with the right certificate: it works (the server is unaffected)."""
    c = mapi.client.connect(server.remote_url, **pki.tls())
    try:
        fd = c.create_flow("lo")
        fid = c.apply_function(fd, "PKT_COUNTER")
        c.connect(fd)
        assert c.read_results(fd, fid).value >= 0
        c.close_flow(fd)
    finally:
        c.close()


def raw_channel(server, pki, cert=None, key=None):
    creds = grpc.ssl_channel_credentials(
        root_certificates=open(pki.ca, "rb").read(),
        private_key=open(key, "rb").read() if key else None,
        certificate_chain=open(cert, "rb").read() if cert else None)
    return grpc.secure_channel("127.0.0.1:%d" % server.port, creds)


def hello():
    env = pb.Envelope(version=1, id=1)
    env.request.hello.version = 1
    return env


def refused(server, pki, cert=None, key=None):
    """The handshake fails: the first message never comes, the call ends UNAVAILABLE."""
    ch = raw_channel(server, pki, cert, key)
    try:
        stream = grpc_stubs().MapiStub(ch).Subscribe(hello(), timeout=5)
        with pytest.raises(grpc.RpcError) as info:
            next(stream)
        return info.value.code()
    finally:
        ch.close()


def test_good_certificate_is_served(server, pki):
    good_call(server, pki)


def test_no_client_certificate_is_refused(server, pki):
    assert refused(server, pki) == grpc.StatusCode.UNAVAILABLE
    good_call(server, pki)


def test_certificate_of_another_ca_is_refused(server, pki):
    assert refused(server, pki, *pki.foreign) == grpc.StatusCode.UNAVAILABLE
    good_call(server, pki)


def test_expired_certificate_is_refused(server, pki):
    assert refused(server, pki, *pki.expired) == grpc.StatusCode.UNAVAILABLE
    good_call(server, pki)


def test_refusal_also_through_the_api(server, pki):
    with pytest.raises(mapi.MapiError) as info:
        mapi.client.connect(server.remote_url, **pki.tls(pki.foreign)).devices()
    assert info.value.code == mapi.ESERVER and server.remote_url in str(info.value)


def test_plaintext_to_the_tls_port_is_refused(server, pki):
    ch = grpc.insecure_channel("127.0.0.1:%d" % server.port)
    try:
        with pytest.raises(grpc.RpcError) as info:
            next(grpc_stubs().MapiStub(ch).Subscribe(hello(), timeout=5))
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        ch.close()
    # and a raw HTTP/1.1 request: the server closes the connection, nothing is served
    with socket.create_connection(("127.0.0.1", server.port), 5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        s.settimeout(5)
        data = s.recv(4096)
        assert b"HTTP/1.1 200" not in data
    good_call(server, pki)


def test_tls_without_client_certificate_gets_no_session(server, pki):
    """A plain TLS client (Python's ssl, no certificate) is cut off in the handshake."""
    ctx = ssl.create_default_context(cafile=pki.ca)
    ctx.set_alpn_protocols(["h2"])
    with socket.create_connection(("127.0.0.1", server.port), 5) as raw:
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
                s.settimeout(5)
                if not s.recv(1):               # TLS 1.3: refused after the handshake
                    raise ConnectionError("closed")
    good_call(server, pki)


def test_session_belongs_to_its_certificate(server, pki, tmp_path):
    """Another valid client presenting someone else's session id is refused."""
    from mapi.admin import certs
    owner = mapi.client.connect(server.remote_url, **pki.tls())
    owner.devices()
    sid = owner.session().metadata
    other_cert = certs.issue(str(pki.dir), "bob-%d" % os.getpid(), "client")
    ch = raw_channel(server, pki, *other_cert)
    try:
        env = pb.Envelope(version=1, id=2)
        env.request.devices.SetInParent()
        with pytest.raises(grpc.RpcError) as info:
            grpc_stubs().MapiStub(ch).Call(env, metadata=sid, timeout=5)
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    finally:
        ch.close()
        owner.close()


def test_malformed_and_oversized_messages(server, pki):
    """Random bytes, truncated and mutated Envelopes, and messages over the limit, on every
    method: each is rejected (a gRPC error or a MAPI error reply), mapid stays up."""
    ch = raw_channel(server, pki, *pki.client)
    owner = mapi.client.connect(server.remote_url, **pki.tls())
    owner.devices()
    meta = owner.session().metadata
    rng = random.Random(11)
    valid = []
    for field in ("devices", "create_flow", "read_results", "apply_function", "connect"):
        env = pb.Envelope(version=1, id=3)
        getattr(env.request, field).SetInParent()
        valid.append(env.SerializeToString())
    methods = ["/scampi.mapi.v1.Mapi/Call", "/scampi.mapi.v1.Mapi/Subscribe",
               "/scampi.mapi.v1.Mapi/Packets"]
    outcomes = {}
    deadline = time.monotonic() + FUZZ_SECONDS
    sent = 0
    try:
        while time.monotonic() < deadline:
            kind = rng.choice(["random", "truncated", "mutated", "oversized"])
            if kind == "random":
                data = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 200)))
            elif kind == "oversized":
                data = b"\x0a" + b"\xff" * 5 + bytes(17 << 20)   # > limits.message_bytes
            else:
                data = bytearray(rng.choice(valid))
                if kind == "truncated":
                    data = data[:rng.randint(0, len(data) - 1)]
                for _ in range(rng.randint(1, 4)):
                    if data:
                        data[rng.randrange(len(data))] = rng.getrandbits(8)
                data = bytes(data)
            method = rng.choice(methods)
            if method.endswith("Call"):
                fn = ch.unary_unary(method, request_serializer=None,
                                    response_deserializer=pb.Envelope.FromString)
            else:
                fn = ch.unary_stream(method, request_serializer=None, response_deserializer=None)
            try:
                out = fn(data, metadata=meta, timeout=2)
                if not method.endswith("Call"):
                    out = next(iter(out), None)
                outcome = "reply" if out is not None else "empty"
            except grpc.RpcError as exc:
                outcome = exc.code().name
            outcomes[(kind, outcome)] = outcomes.get((kind, outcome), 0) + 1
            sent += 1
            if kind == "oversized":
                assert outcome == "RESOURCE_EXHAUSTED", outcome
    finally:
        ch.close()
        owner.close()
    assert sent > 20, outcomes
    assert server.proc.poll() is None, "mapid died:\n" + server.log_text()
    assert "Fatal Python error" not in server.log_text()
    assert {k for k, _ in outcomes} == {"random", "truncated", "mutated", "oversized"}, outcomes
    good_call(server, pki)


def test_mapi_admin_certs_command(tmp_path):
    """The README's steps: a CA, a server certificate for its addresses, a client certificate;
    keys 0600, never overwritten; --help answers; the client's name is its common name."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID
    from helpers.jobs import admin
    pki = str(tmp_path / "pki")
    assert "{ca,server,client}" in admin("certs", "--help")
    assert admin("certs", "ca", pki).endswith("ca.pem")
    admin("certs", "server", pki, "s1", "--san", "127.0.0.1", "--san", "s1.example")
    admin("certs", "client", pki, "alice")
    for name in ("ca", "s1", "alice"):
        assert os.stat(os.path.join(pki, name + ".key")).st_mode & 0o777 == 0o600
    cert = x509.load_pem_x509_certificate(open(os.path.join(pki, "alice.pem"), "rb").read())
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "alice"
    san = x509.load_pem_x509_certificate(open(os.path.join(pki, "s1.pem"), "rb").read()) \
        .extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "s1.example" in san.get_values_for_type(x509.DNSName)
    again = admin("certs", "client", pki, "alice", check=False)
    assert again.returncode == 1 and "exists" in again.stderr
