"""Throwaway certificates for the TLS tests: a CA, its server and client certificates, and a stranger CA."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CLIENT_KEY_PASSWORD = "client-key-password"
"""The client's private key is stored encrypted with this, as an operator's often is."""


@dataclass(frozen=True)
class Pair:
    """A certificate and its private key, as PEM files."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class Certificates:
    ca: Path
    """The CA that signs the server and client certificates."""
    server: Pair
    """For ``localhost`` and ``127.0.0.1``."""
    other_server: Pair
    """Signed by the same CA for another name only (``broker.elsewhere.test``)."""
    client: Pair
    """A client certificate; its key is encrypted with `CLIENT_KEY_PASSWORD`."""
    stranger_ca: Path
    """A CA that signed none of these."""
    stranger_client: Pair
    """A client certificate signed by the stranger CA."""


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[str, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool = False,
    names: list[x509.GeneralName] | None = None,
    usage: list[x509.ObjectIdentifier] | None = None,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    issuer_name, issuer_key = issuer if issuer else (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                          key_encipherment=False, data_encipherment=False, key_agreement=False,
                          encipher_only=False, decipher_only=False),
            critical=True,
        )
    else:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False
        )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    if usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usage), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write_pair(folder: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey,
                password: str | None = None) -> Pair:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password.encode()) if password else serialization.NoEncryption()
    )
    cert_path, key_path = folder / f"{stem}.pem", folder / f"{stem}-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption))
    return Pair(cert_path, key_path)


def make_certificates(folder: Path) -> Certificates:
    """Write a fresh set of certificates into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_key, stranger_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("signgate test CA", ca_key, None, ca=True)
    stranger = _certificate("stranger CA", stranger_key, None, ca=True)
    server_usage = [ExtendedKeyUsageOID.SERVER_AUTH]
    client_usage = [ExtendedKeyUsageOID.CLIENT_AUTH]
    signed_by_ca = ("signgate test CA", ca_key)

    def pair(stem: str, issuer: tuple[str, ec.EllipticCurvePrivateKey], password: str | None = None,
             **extensions: object) -> Pair:
        key = ec.generate_private_key(ec.SECP256R1())
        return _write_pair(folder, stem, _certificate(stem, key, issuer, **extensions), key, password)  # type: ignore[arg-type]

    local_names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    certificates = Certificates(
        ca=folder / "ca.pem",
        server=pair("server", signed_by_ca, names=local_names, usage=server_usage),
        other_server=pair("other-server", signed_by_ca, names=[x509.DNSName("broker.elsewhere.test")],
                          usage=server_usage),
        client=pair("client", signed_by_ca, CLIENT_KEY_PASSWORD, names=[x509.DNSName("signgate-client")],
                    usage=client_usage),
        stranger_ca=folder / "stranger-ca.pem",
        stranger_client=pair("stranger-client", ("stranger CA", stranger_key), usage=client_usage),
    )
    certificates.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    certificates.stranger_ca.write_bytes(stranger.public_bytes(serialization.Encoding.PEM))
    return certificates
