"""Root certificates the charger trusts (OCPP 1.6 Security Whitepaper, use cases M03/M04/M05:
GetInstalledCertificateIds, DeleteCertificate, InstallCertificate): one store per
certificateType, ManufacturerRootCertificate (SignedUpdateFirmware) and
CentralSystemRootCertificate (the CSMS's TLS server certificate, security profiles 2 and 3).

Each installed certificate is one PEM file named by its SHA-256 fingerprint,
``<fingerprint>.pem``, in a directory on the data partition, so certificates survive A/B
updates and a rollback. Writes are atomic (temporary file, fsync, rename, fsync of the
directory): after a power cut a certificate is either fully there or not at all.

A configured file (part of the image: ``[ota] manufacturer_root``, ``[csms] ca_file``) is
trusted as well; it may hold several PEM certificates and cannot be deleted over OCPP.

Certificates are identified as in OCSP (RFC 6960) with SHA-256, SHA-384 or SHA-512, whichever
the CSMS names (edition 3 of the whitepaper).

Synchronous file I/O: call the methods through ``asyncio.to_thread``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

log = logging.getLogger(__name__)

InstallStatus = Literal["Accepted", "Rejected", "Failed"]
HASHES = {"SHA256": hashlib.sha256, "SHA384": hashlib.sha384, "SHA512": hashlib.sha512}
DeleteStatus = Literal["Accepted", "Failed", "NotFound"]


@dataclass(frozen=True, slots=True)
class CertificateHashData:
    """OCPP CertificateHashDataType (SHA256): identifies a certificate in
    GetInstalledCertificateIds.conf and DeleteCertificate.req."""

    issuer_name_hash: str
    issuer_key_hash: str
    serial_number: str
    hash_algorithm: str = "SHA256"

    def to_ocpp(self) -> dict[str, str]:
        return {
            "hashAlgorithm": self.hash_algorithm,
            "issuerNameHash": self.issuer_name_hash,
            "issuerKeyHash": self.issuer_key_hash,
            "serialNumber": self.serial_number,
        }


class CertificateStore:
    def __init__(
        self,
        directory: Path,
        extra_root_file: str = "",
        *,
        label: str = "manufacturer root",
        max_certificates: int | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """``label`` names the store's certificates in the log."""
        self.label = label
        self.directory = directory
        self.extra_root_file = extra_root_file
        self.max_certificates = max_certificates
        self._now = now

    def roots(self) -> list[x509.Certificate]:
        """Installed certificates, then those of the configured file. Unreadable files are
        logged and skipped: one bad file must not disable firmware updates altogether."""
        return [cert for cert, _ in self._installed()] + self._configured()

    def install(self, pem: str) -> InstallStatus:
        """InstallCertificate.req: Accepted, Rejected (not a usable CA certificate, or the store
        is full), Failed (valid certificate, but storing it failed)."""
        try:
            certificates = x509.load_pem_x509_certificates(pem.strip().encode("ascii"))
        except (ValueError, UnicodeEncodeError) as exc:
            log.warning("InstallCertificate rejected: not a PEM certificate (%s)", exc)
            return "Rejected"
        if len(certificates) != 1:
            log.warning(
                "InstallCertificate rejected: %d certificates, expected one", len(certificates)
            )
            return "Rejected"
        certificate = certificates[0]
        problem = self._unusable(certificate)
        if problem:
            log.warning(
                "InstallCertificate rejected: %s (%s)",
                problem,
                certificate.subject.rfc4514_string(),
            )
            return "Rejected"
        name = fingerprint(certificate) + ".pem"
        installed = self._installed()
        if any(path.name == name for _, path in installed):
            log.info("%s %s is already installed", self.label, name)
            return "Accepted"
        if self.max_certificates is not None and len(installed) >= self.max_certificates:
            log.warning(
                "InstallCertificate rejected: store full (%d certificates)", self.max_certificates
            )
            return "Rejected"
        try:
            _write_atomically(self.directory / name, certificate.public_bytes(Encoding.PEM))
        except OSError as exc:
            log.error("InstallCertificate failed: cannot store %s: %s", name, exc)
            return "Failed"
        log.info("%s installed: %s (%s)", self.label, certificate.subject.rfc4514_string(), name)
        return "Accepted"

    def list_hashes(self, algorithm: str = "SHA256") -> list[CertificateHashData]:
        """GetInstalledCertificateIds: installed and configured certificates."""
        everything = self.roots()
        return [hash_data(cert, everything, algorithm) for cert in everything]

    def delete(
        self,
        wanted: CertificateHashData,
        in_use: Callable[[x509.Certificate], bool] = lambda _: False,
    ) -> DeleteStatus:
        """DeleteCertificate.req. Certificates from the configured file cannot be deleted
        (Failed): they are part of the read-only image; nor one that ``in_use`` says the
        current connection relies on (M04.FR.06)."""
        everything = self.roots()
        for certificate, path in self._installed():
            if _matches(certificate, everything, wanted):
                if in_use(certificate):
                    log.warning(
                        "DeleteCertificate refused: %s %s is in use",
                        self.label,
                        certificate.subject.rfc4514_string(),
                    )
                    return "Failed"
                try:
                    path.unlink()
                    _fsync_directory(self.directory)
                except OSError as exc:
                    log.error("DeleteCertificate failed: %s: %s", path, exc)
                    return "Failed"
                log.info("%s deleted: %s", self.label, certificate.subject.rfc4514_string())
                return "Accepted"
        for certificate in self._configured():
            if _matches(certificate, everything, wanted):
                log.warning(
                    "DeleteCertificate refused: %s comes from %s",
                    certificate.subject.rfc4514_string(),
                    self.extra_root_file,
                )
                return "Failed"
        return "NotFound"

    def _unusable(self, certificate: x509.Certificate) -> str:
        try:
            constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
        except x509.ExtensionNotFound:
            return "not a CA certificate (no basicConstraints)"
        except ValueError as exc:
            return f"malformed extensions: {exc}"
        if not constraints.value.ca:
            return "not a CA certificate (basicConstraints CA:FALSE)"
        try:
            usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
        except x509.ExtensionNotFound:
            usage = None
        if usage is not None and not usage.key_cert_sign:
            return "keyUsage does not allow keyCertSign"
        now = self._now()
        if now > certificate.not_valid_after_utc:
            return f"expired at {certificate.not_valid_after_utc.isoformat()}"
        if now < certificate.not_valid_before_utc:
            return f"not valid before {certificate.not_valid_before_utc.isoformat()}"
        return ""

    def _installed(self) -> list[tuple[x509.Certificate, Path]]:
        if not self.directory.is_dir():
            return []
        found = []
        for path in sorted(self.directory.glob("*.pem")):
            try:
                found.append((x509.load_pem_x509_certificate(path.read_bytes()), path))
            except (OSError, ValueError) as exc:
                log.warning("ignoring unreadable %s %s: %s", self.label, path, exc)
        return found

    def _configured(self) -> list[x509.Certificate]:
        if not self.extra_root_file:
            return []
        try:
            return x509.load_pem_x509_certificates(Path(self.extra_root_file).read_bytes())
        except (OSError, ValueError) as exc:
            log.warning("ignoring %s file %s: %s", self.label, self.extra_root_file, exc)
            return []


def fingerprint(certificate: x509.Certificate) -> str:
    """SHA-256 over the DER encoding, lowercase hex (what ``openssl x509 -fingerprint
    -sha256`` prints, without colons)."""
    return hashlib.sha256(certificate.public_bytes(Encoding.DER)).hexdigest()


def hash_data(
    certificate: x509.Certificate, known: list[x509.Certificate], algorithm: str = "SHA256"
) -> CertificateHashData:
    """issuerNameHash over the DER issuer name; issuerKeyHash over the issuer's public key bits
    (as in an OCSP CertID, RFC 6960) when the issuer is the certificate itself or among
    ``known``; otherwise over the authorityKeyIdentifier, which still names the issuer's key
    consistently between GetInstalledCertificateIds and DeleteCertificate. ``algorithm`` is
    SHA256, SHA384 or SHA512 (ValueError otherwise)."""
    digest = HASHES.get(algorithm.upper())
    if digest is None:
        raise ValueError(f"unknown hash algorithm {algorithm!r}")
    return CertificateHashData(
        issuer_name_hash=digest(certificate.issuer.public_bytes()).hexdigest(),
        issuer_key_hash=digest(_issuer_key_bits(certificate, known)).hexdigest(),
        serial_number=format(certificate.serial_number, "x"),
        hash_algorithm=algorithm.upper(),
    )


def _matches(
    certificate: x509.Certificate, known: list[x509.Certificate], wanted: CertificateHashData
) -> bool:
    """Issuer name and serial number identify a certificate (RFC 5280 4.1.2.2). The key hash is
    not compared: it depends on whether the issuer is installed, which may have changed since
    GetInstalledCertificateIds listed it."""
    if wanted.hash_algorithm.upper() not in HASHES:
        return False
    own = hash_data(certificate, known, wanted.hash_algorithm)
    return (
        wanted.issuer_name_hash.lower() == own.issuer_name_hash
        and wanted.serial_number.lower().lstrip("0") == own.serial_number.lstrip("0")
    )


def _issuer_key_bits(certificate: x509.Certificate, known: list[x509.Certificate]) -> bytes:
    for issuer in [certificate, *known]:
        if issuer.subject == certificate.issuer and _signed(certificate, issuer):
            return _subject_public_key_bits(issuer)
    return _authority_key_id(certificate)


def _signed(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        certificate.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _authority_key_id(certificate: x509.Certificate) -> bytes:
    try:
        aki = certificate.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
    except x509.ExtensionNotFound:
        return certificate.issuer.public_bytes()
    return aki.value.key_identifier or certificate.issuer.public_bytes()


def _subject_public_key_bits(certificate: x509.Certificate) -> bytes:
    """The subjectPublicKey BIT STRING contents of the SubjectPublicKeyInfo, without the
    unused-bits octet: SPKI ::= SEQUENCE { algorithm SEQUENCE, subjectPublicKey BIT STRING }."""
    spki = certificate.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    _, body, _ = _der_element(spki, 0)  # outer SEQUENCE
    _, _, after_algorithm = _der_element(spki, body)  # AlgorithmIdentifier
    _, bits, end = _der_element(spki, after_algorithm)  # BIT STRING
    return spki[bits + 1 : end]


def _der_element(data: bytes, offset: int) -> tuple[int, int, int]:
    """(offset of the tag, offset of the contents, offset after the element) of one DER TLV."""
    length = data[offset + 1]
    contents = offset + 2
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(data[contents : contents + count], "big")
        contents += count
    return offset, contents, contents + length


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
