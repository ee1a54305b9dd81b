"""Certificates made in the test with ``cryptography``: a local CA and the certificates it
signs, written as PEM files. Nothing here is used outside the tests."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DAY = datetime.timedelta(days=1)


@dataclass(frozen=True)
class Issued:
    cert: Path  # PEM certificate
    key: Path  # PEM private key (unencrypted)


class TestCa:
    """A certificate authority of one test, writing its files under ``directory``."""

    __test__ = False

    def __init__(
        self,
        directory: Path,
        name: str = "evsed test CA",
        *,
        not_after: datetime.datetime | None = None,
        ca: bool = True,
    ) -> None:
        """``not_after`` in the past makes an expired CA; ``ca=False`` a certificate that is
        not a CA (both are roots a charger must refuse)."""
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self._key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.UTC)
        self._name = subject
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - 2 * DAY)
            .not_valid_after(not_after or now + 30 * DAY)
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=ca,
                    crl_sign=ca,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self._key, hashes.SHA256())
        )
        self.cert = directory / "ca.pem"
        self.cert.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))

    @property
    def pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")

    def issue_client(
        self, file_stem: str, common_name: str, organization: str, *, days: int = 10
    ) -> Issued:
        """A charge point certificate (security profile 3): CN = its serial number, O = the
        CPO, clientAuth, no subjectAltName (Security Whitepaper A00.FR.511)."""
        key = ec.generate_private_key(ec.SECP256R1())
        cert = self._leaf(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
                ]
            ),
            key.public_key(),
            ExtendedKeyUsageOID.CLIENT_AUTH,
            days,
        )
        return self._write(file_stem, cert, key)

    def sign_csr(self, csr_pem: str, *, days: int = 10) -> str:
        """A client certificate for a certificate request (what a CPO's CA does on
        SignCertificate), PEM."""
        csr = x509.load_pem_x509_csr(csr_pem.encode("ascii"))
        cert = self._leaf(csr.subject, csr.public_key(), ExtendedKeyUsageOID.CLIENT_AUTH, days)
        return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")

    def _leaf(
        self,
        subject: x509.Name,
        public_key: Any,
        usage: x509.ObjectIdentifier,
        days: int = 10,
    ) -> x509.Certificate:
        now = datetime.datetime.now(datetime.UTC)
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self._name)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - DAY)
            .not_valid_after(now + days * DAY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .sign(self._key, hashes.SHA256())
        )

    def _write(self, file_stem: str, cert: x509.Certificate, key: Any) -> Issued:
        issued = Issued(self.directory / f"{file_stem}.pem", self.directory / f"{file_stem}.key")
        issued.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        issued.key.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return issued

    def issue_server(
        self,
        file_stem: str,
        names: list[str],
        *,
        not_before: datetime.datetime | None = None,
        not_after: datetime.datetime | None = None,
    ) -> Issued:
        """A TLS server certificate for DNS names and IP addresses ``names``."""
        now = datetime.datetime.now(datetime.UTC)
        key = ec.generate_private_key(ec.SECP256R1())
        alt: list[x509.GeneralName] = []
        for name in names:
            try:
                alt.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                alt.append(x509.DNSName(name))
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(self._name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or now - DAY)
            .not_valid_after(not_after or now + 10 * DAY)
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        return self._write(file_stem, cert, key)
