"""A certificate authority made in the test, and what Prometheus' ``--web.config.file`` needs.

``CertificateAuthority()`` is a fresh self-signed CA (``cryptography``); ``issue`` signs a server
certificate for 127.0.0.1. ``web_config`` writes the server's files and returns Prometheus' web
configuration (exporter-toolkit format, as Prometheus 2.42 reads it: ``tls_server_config``
``cert_file``/``key_file``, ``basic_auth_users`` with bcrypt hashes).
"""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path
from typing import Any

import bcrypt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    pkcs8 = serialization.PrivateFormat.PKCS8
    return key.private_bytes(serialization.Encoding.PEM, pkcs8, serialization.NoEncryption())


class CertificateAuthority:
    """A self-signed CA that can issue server certificates."""

    def __init__(self, name: str = "thermostat-test-ca") -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        self.certificate = (
            x509.CertificateBuilder().subject_name(_name(name)).issuer_name(_name(name))
            .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )  # fmt: skip

    @property
    def pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()

    def issue(self, host: str = "127.0.0.1") -> tuple[bytes, bytes]:
        """(certificate PEM, key PEM) for a server at ``host``, signed by this CA."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder().subject_name(_name(host)).issuer_name(self.certificate.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]), critical=False)
            .sign(self.key, hashes.SHA256())
        )  # fmt: skip
        return certificate.public_bytes(serialization.Encoding.PEM), _pem_key(key)


def web_config(directory: Path, ca: CertificateAuthority, users: dict[str, str]) -> dict[str, Any]:
    """Prometheus' web configuration serving TLS with a certificate from ``ca``, basic auth for ``users``."""
    certificate, key = ca.issue()
    (directory / "server.crt").write_bytes(certificate)
    (directory / "server.key").write_bytes(key)
    (directory / "ca.crt").write_text(ca.pem, encoding="utf-8")
    # Cost 4, bcrypt's least: the hash is checked on every request, and the test sends many.
    hashed = {user: bcrypt.hashpw(secret.encode(), bcrypt.gensalt(rounds=4)).decode() for user, secret in users.items()}
    return {
        "tls_server_config": {"cert_file": str(directory / "server.crt"), "key_file": str(directory / "server.key")},
        "basic_auth_users": hashed,
    }
