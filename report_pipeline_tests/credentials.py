"""Credentials a test session makes for the real Trino's HTTPS listener: a self-signed certificate,
a bcrypt password file (Trino's file authenticator) and an RSA key pair for JWTs."""

from __future__ import annotations

import datetime as dt
import ipaddress
import secrets
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from report_pipeline.trino_server import SecureAccess

USER = "analyst"


@dataclass(frozen=True)
class TestCredentials:
    secure: SecureAccess
    ca_bundle: Path  # the certificate itself: it signs nothing else
    password: str
    jwt_private_key: rsa.RSAPrivateKey

    def token(self, user: str = USER, lifetime_seconds: int = 600) -> str:
        now = dt.datetime.now(dt.UTC)
        return jwt.encode(
            {"sub": user, "iat": now, "exp": now + dt.timedelta(seconds=lifetime_seconds)},
            self.jwt_private_key,
            algorithm="RS256",
        )


def _pem_key(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def make_credentials(folder: Path, https_port: int) -> TestCredentials:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certificate_pem = certificate.public_bytes(serialization.Encoding.PEM)
    keystore, ca_bundle = folder / "server.pem", folder / "ca.pem"
    keystore.write_bytes(_pem_key(key) + certificate_pem)
    ca_bundle.write_bytes(certificate_pem)

    password = secrets.token_urlsafe(16)
    password_file = folder / "password.db"
    # Trino's file authenticator reads $2y$ bcrypt hashes with a cost of at least 8
    hashed = (
        bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=10))
        .decode()
        .replace("$2b$", "$2y$", 1)
    )
    password_file.write_text(f"{USER}:{hashed}\n")

    jwt_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwt_public = folder / "jwt-public.pem"
    jwt_public.write_bytes(
        jwt_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    for path in (keystore, password_file):
        path.chmod(0o600)
    return TestCredentials(
        SecureAccess(https_port, keystore, password_file, jwt_public), ca_bundle, password, jwt_key
    )
