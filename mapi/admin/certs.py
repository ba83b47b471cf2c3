"""mapi-admin certs: a certificate authority and the server and client certificates of a small
deployment of the remote transport (mutual TLS), made with the `cryptography` library.

    mapi-admin certs ca DIR [--name NAME] [--days N]          DIR/ca.pem, DIR/ca.key
    mapi-admin certs server DIR NAME --san 192.0.2.1 --san s1.example [--days N]
                                                              DIR/NAME.pem, DIR/NAME.key
    mapi-admin certs client DIR NAME [--days N]               DIR/NAME.pem, DIR/NAME.key

The CA signs with an ECDSA P-256 key; every certificate gets its own P-256 key.  A server
certificate names the addresses and host names clients use in grpcs://HOST:PORT (subject
alternative names; TLS checks them); a client certificate carries the extended key usage
clientAuth and its NAME as common name (mapid shows it as the client's program).  Keys are
written with mode 0600 and never overwritten: remove a file to make it again."""
import argparse
import datetime
import ipaddress
import os
import sys

HELP = "make a CA and server/client certificates for mapid --listen (mutual TLS)"
DAYS = 825
CA_DAYS = 3650


def _x509():
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    except ImportError:
        raise SystemExit("mapi-admin certs: the cryptography library is missing "
                         "(pip install cryptography)") from None
    return x509, hashes, serialization, ec, ExtendedKeyUsageOID, NameOID


def _write(path, data, private):
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    try:
        fd = os.open(path, flags, 0o600 if private else 0o644)
    except FileExistsError:
        raise FileExistsError("%s exists; remove it to make it again" % path) from None
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _key_pem(key):
    _, _, serialization, _, _, _ = _x509()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _cert_pem(cert):
    _, _, serialization, _, _, _ = _x509()
    return cert.public_bytes(serialization.Encoding.PEM)


def _validity(days, not_before=None):
    start = not_before or (datetime.datetime.now(datetime.timezone.utc)
                           - datetime.timedelta(minutes=5))
    return start, start + datetime.timedelta(days=days)


def make_ca(directory, name="SCAMPI CA", days=CA_DAYS, not_before=None):
    """A self-signed CA: writes DIR/ca.pem and DIR/ca.key; returns the certificate's path."""
    x509, hashes, _, ec, _, NameOID = _x509()
    os.makedirs(directory, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    start, end = _validity(days, not_before)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    _write(os.path.join(directory, "ca.key"), _key_pem(key), True)
    path = os.path.join(directory, "ca.pem")
    _write(path, _cert_pem(cert), False)
    return path


def _load_ca(directory):
    x509, _, serialization, _, _, _ = _x509()
    try:
        with open(os.path.join(directory, "ca.pem"), "rb") as f:
            cert = x509.load_pem_x509_certificate(f.read())
        with open(os.path.join(directory, "ca.key"), "rb") as f:
            key = serialization.load_pem_private_key(f.read(), None)
    except FileNotFoundError as exc:
        raise FileNotFoundError("%s: no CA there (mapi-admin certs ca %s first)"
                                % (exc.filename, directory)) from None
    return cert, key


def _san(names):
    x509 = _x509()[0]
    out = []
    for n in names:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            out.append(x509.DNSName(n))
    return out


def issue(directory, name, kind, sans=(), days=DAYS, not_before=None):
    """A certificate signed by DIR's CA: kind "server" (sans: addresses and host names) or
    "client".  Writes DIR/NAME.pem and DIR/NAME.key; returns (cert path, key path)."""
    x509, hashes, _, ec, EKU, NameOID = _x509()
    if kind not in ("server", "client"):
        raise ValueError("kind must be server or client, not %r" % (kind,))
    if not name or "/" in name or name.startswith(".") or name == "ca":
        raise ValueError("%r cannot name a certificate file" % (name,))
    ca_cert, ca_key = _load_ca(directory)
    key = ec.generate_private_key(ec.SECP256R1())
    start, end = _validity(days, not_before)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
               .issuer_name(ca_cert.subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(start).not_valid_after(end)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage([EKU.SERVER_AUTH if kind == "server"
                                                     else EKU.CLIENT_AUTH]), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                   ca_key.public_key()), critical=False))
    if kind == "server":
        builder = builder.add_extension(x509.SubjectAlternativeName(_san(sans or [name])),
                                        critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    key_path = os.path.join(directory, name + ".key")
    cert_path = os.path.join(directory, name + ".pem")
    _write(key_path, _key_pem(key), True)
    _write(cert_path, _cert_pem(cert), False)
    return cert_path, key_path


def main(argv=None):
    p = argparse.ArgumentParser(prog="mapi-admin certs", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    ca = sub.add_parser("ca", help="make DIR/ca.pem and DIR/ca.key")
    ca.add_argument("dir")
    ca.add_argument("--name", default="SCAMPI CA", help="the CA's common name")
    ca.add_argument("--days", type=int, default=CA_DAYS)
    for kind in ("server", "client"):
        s = sub.add_parser(kind, help="make DIR/NAME.pem and DIR/NAME.key, signed by DIR's CA")
        s.add_argument("dir")
        s.add_argument("name")
        s.add_argument("--days", type=int, default=DAYS)
        if kind == "server":
            s.add_argument("--san", action="append", default=[],
                           help="an address or host name clients connect to (repeat; default: NAME)")
    args = p.parse_args(argv)
    try:
        if args.what == "ca":
            made = [make_ca(args.dir, args.name, args.days)]
        else:
            made = list(issue(args.dir, args.name, args.what, getattr(args, "san", ()), args.days))
    except (OSError, ValueError) as exc:
        print("mapi-admin certs: %s" % exc, file=sys.stderr)
        return 1
    for path in made:
        print(path)
    return 0
