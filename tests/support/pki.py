"""A private certificate authority for TLS tests: a CA, a server certificate for 127.0.0.1 and
localhost, a client certificate (mutual TLS), and a second CA that signed none of them.

Written with the ``cryptography`` package (PEM files, readable by every user: a RabbitMQ node
runs as ``rabbitmq``).
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Pki:
    folder: Path
    ca: Path  # the CA that signed the server and client certificates
    other_ca: Path  # a CA that signed nothing here: verification against it fails
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(
    subject: str, issuer: x509.Name, key: ec.EllipticCurvePrivateKey
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
    )


def _ca(common_name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        _builder(common_name, _name(common_name), key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _leaf(
    common_name: str,
    usage: x509.ObjectIdentifier,
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        _builder(common_name, ca[0].subject, key)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .sign(ca[1], hashes.SHA256())
    )
    return cert, key


def _write(
    folder: Path, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey | None = None
) -> tuple[Path, Path | None]:
    cert_path = folder / f"{name}.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    cert_path.chmod(0o644)
    if key is None:
        return cert_path, None
    key_path = folder / f"{name}-key.pem"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o644)  # test keys: the RabbitMQ node (user rabbitmq) reads them too
    return cert_path, key_path


def make(folder: Path) -> Pki:
    """Write the CA, the other CA, the server's and the client's certificates and keys."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o755)
    ca = _ca("replicator test CA")
    other = _ca("some other CA")
    server = _leaf("localhost", ExtendedKeyUsageOID.SERVER_AUTH, ca)
    client = _leaf("replicator test client", ExtendedKeyUsageOID.CLIENT_AUTH, ca)
    ca_path, _ = _write(folder, "ca", ca[0])
    other_path, _ = _write(folder, "other-ca", other[0])
    server_cert, server_key = _write(folder, "server", *server)
    client_cert, client_key = _write(folder, "client", *client)
    assert server_key is not None and client_key is not None
    return Pki(folder, ca_path, other_path, server_cert, server_key, client_cert, client_key)
