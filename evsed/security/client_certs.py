"""The charge point certificate (security profile 3): key pairs made here, certificate requests,
and the signed certificate the CSMS returns (Security Whitepaper A02, A03).

- :func:`new_request` makes a P-256 key pair in the state directory (``pending.key``, 0600;
  it never leaves the charger, A02.FR.05) and a PKCS #10 request (RFC 2986, PEM) whose subject
  is CN = the charger's serial number, O = CpoName (A00.FR.511, A02.FR.13).
- :func:`check_signed` checks a CertificateSigned chain before it is kept (A02.FR.06): PEM,
  the leaf's public key is the pending key's, serial number present, CN and O as requested,
  within its validity period (or not yet valid: then it is used from its start, A02.FR.08),
  every certificate issued by the next, the last by an installed CentralSystemRootCertificate
  (the CPO hierarchy), intermediates being CA certificates.
- :func:`install_signed` keeps the new certificate beside the one in use (``client-new.pem``,
  ``client-new.key``); :func:`promote` makes it the one in use once a connection with it has
  worked, keeping the old pair as ``client-old.*`` (A02.FR.10: kept as a fallback).
- :func:`renewal_due` says when the certificate in use expires within the renewal margin
  (A03: one month).

Synchronous file I/O: call through a worker thread.
"""

from __future__ import annotations

import datetime
import itertools
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from evsed.security.credentials import CLIENT_CERT, CLIENT_KEY, PENDING_KEY, write_private

NEW_CERT, NEW_KEY = "client-new.pem", "client-new.key"
OLD_CERT, OLD_KEY = "client-old.pem", "client-old.key"
RENEWAL_MARGIN = datetime.timedelta(days=30)


class SignedCertificateError(ValueError):
    """A signed certificate that is not kept; the message says why (no secret in it)."""


@dataclass(frozen=True, slots=True)
class Identity:
    serial_number: str  # the charger's, in the certificate's CN
    cpo_name: str  # CpoName, in its O


def new_request(directory: Path, identity: Identity) -> str:
    """A new key pair (kept as ``pending.key``) and its certificate request, PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, identity.serial_number),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, identity.cpo_name),
        ]
    )
    request = (
        x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    )
    write_private(
        directory / PENDING_KEY,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    return request.public_bytes(serialization.Encoding.PEM).decode("ascii")


def check_signed(
    directory: Path,
    chain_pem: str,
    roots: list[x509.Certificate],
    identity: Identity,
    now: datetime.datetime,
) -> list[x509.Certificate]:
    """The chain, leaf first, if it may be kept; SignedCertificateError otherwise."""
    try:
        chain = x509.load_pem_x509_certificates(chain_pem.strip().encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise SignedCertificateError("not a PEM certificate chain") from None
    pending = directory / PENDING_KEY
    try:
        key = serialization.load_pem_private_key(pending.read_bytes(), password=None)
    except FileNotFoundError:
        raise SignedCertificateError("no certificate request is outstanding") from None
    leaf = chain[0]
    if leaf.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) != key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ):
        raise SignedCertificateError("the certificate is not for the key of our request")
    _check_subject(leaf, identity)
    if leaf.not_valid_after_utc <= now:
        raise SignedCertificateError(f"expired at {leaf.not_valid_after_utc.isoformat()}")
    for issued, issuer in itertools.pairwise(chain):
        if issuer.not_valid_after_utc <= now:
            raise SignedCertificateError("an intermediate certificate has expired")
        if not _is_ca(issuer):
            raise SignedCertificateError("an intermediate certificate is not a CA")
        if not _issued_by(issued, issuer):
            raise SignedCertificateError("the chain is not in order (issuer does not sign it)")
    top = chain[-1]
    if not any(_same(top, root) or _issued_by(top, root) for root in roots):
        raise SignedCertificateError("not issued under an installed CSMS root certificate")
    return chain


def _check_subject(leaf: x509.Certificate, identity: Identity) -> None:
    if not leaf.serial_number:
        raise SignedCertificateError("the certificate has no serial number")
    names = {
        oid: [a.value for a in leaf.subject.get_attributes_for_oid(oid)]
        for oid in (NameOID.COMMON_NAME, NameOID.ORGANIZATION_NAME)
    }
    if names[NameOID.COMMON_NAME] != [identity.serial_number]:
        raise SignedCertificateError("its commonName is not the charger's serial number")
    if identity.cpo_name and names[NameOID.ORGANIZATION_NAME] != [identity.cpo_name]:
        raise SignedCertificateError("its organizationName is not CpoName")


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        return bool(certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _issued_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    if certificate.issuer != issuer.subject:
        return False
    try:
        certificate.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _same(a: x509.Certificate, b: x509.Certificate) -> bool:
    return a.public_bytes(serialization.Encoding.DER) == b.public_bytes(serialization.Encoding.DER)


def install_signed(directory: Path, chain: list[x509.Certificate]) -> None:
    """Keep the new certificate and its key for the next connection (the pending key
    becomes ``client-new.key``)."""
    pem = b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in chain)
    key = (directory / PENDING_KEY).read_bytes()
    write_private(directory / NEW_KEY, key)
    write_private(directory / NEW_CERT, pem)
    (directory / PENDING_KEY).unlink()


def new_pair(directory: Path, now: datetime.datetime) -> tuple[Path, Path] | None:
    """The new certificate and key, when there are some that are valid from ``now``."""
    cert, key = directory / NEW_CERT, directory / NEW_KEY
    if not (cert.exists() and key.exists()):
        return None
    leaf = x509.load_pem_x509_certificate(cert.read_bytes())
    if leaf.not_valid_before_utc > now or leaf.not_valid_after_utc <= now:
        return None
    return cert, key


def promote(directory: Path) -> None:
    """The new pair connected: it becomes the pair in use, the former one is kept as old."""
    for current, old in ((CLIENT_CERT, OLD_CERT), (CLIENT_KEY, OLD_KEY)):
        if (directory / current).exists():
            os.replace(directory / current, directory / old)
    os.replace(directory / NEW_KEY, directory / CLIENT_KEY)
    os.replace(directory / NEW_CERT, directory / CLIENT_CERT)
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def discard_new(directory: Path) -> None:
    """The new pair never connected: forget it (the pair in use stays)."""
    for name in (NEW_CERT, NEW_KEY):
        (directory / name).unlink(missing_ok=True)


def expiry(cert: Path) -> datetime.datetime:
    return x509.load_pem_x509_certificate(cert.read_bytes()).not_valid_after_utc


def renewal_due(cert: Path | None, now: datetime.datetime) -> bool:
    """Whether the certificate in use expires within :data:`RENEWAL_MARGIN` of ``now``."""
    if cert is None or not cert.exists():
        return False
    return expiry(cert) - now <= RENEWAL_MARGIN
