"""Firmware signature check for SignedUpdateFirmware (OCPP 1.6 Security Whitepaper, use case
L01 "Secure firmware update"; messages SignedUpdateFirmware.req and
SignedFirmwareStatusNotification).

What the central system sends, and what we expect of it:

- ``signingCertificate``: the firmware signing certificate, PEM (whitepaper edition 2 and
  later). It may be followed by the intermediate CA certificates that lead to a manufacturer
  root, leaf first. Edition 1 sent the certificate as hex-encoded DER; that is accepted too.
- ``signature``: base64 of the signature over the *whole downloaded file*, hashed with
  SHA-256, made with the signing certificate's private key:

  * RSA: PKCS#1 v1.5 (what ``openssl dgst -sha256 -sign key.pem`` produces). RSA-PSS with
    MGF1-SHA-256 and any salt length is accepted as well, because some readings of the
    whitepaper and OCPP 2.0.1 name PSS.
  * ECDSA (any curve the ``cryptography`` package supports, P-256 in practice): the DER
    ``SEQUENCE {r, s}`` that OpenSSL produces; the raw ``r || s`` form of some HSMs is
    accepted when its length matches the curve.

The certificate is checked against the manufacturer root certificates (installed with
InstallCertificate, see :mod:`evsed.security.certificates`), RFC 5280 style but without
revocation (no CRL/OCSP): every link's signature, issuer/subject names, validity at ``now``
for every certificate including the root, issuers must be CAs (basicConstraints CA:TRUE,
keyCertSign when keyUsage is present, pathLenConstraint honoured), the leaf needs
digitalSignature when keyUsage is present and codeSigning when extendedKeyUsage is present,
and no certificate may carry a critical extension we do not understand.

A failure raises :class:`FirmwareSignatureError`; its ``kind`` is the SecurityEventNotification
type to send: ``InvalidFirmwareSigningCertificate`` for anything wrong with the certificate or
chain (the whitepaper also answers SignedUpdateFirmware.conf with InvalidCertificate then),
``InvalidFirmwareSignature`` when the certificate is fine but the signature does not match the
file (report SignedFirmwareStatusNotification InvalidSignature).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, Literal, NoReturn, TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID

from evsed.errors import EvsedError

FailureKind = Literal["InvalidFirmwareSigningCertificate", "InvalidFirmwareSignature"]
INVALID_CERTIFICATE: Final = "InvalidFirmwareSigningCertificate"
INVALID_SIGNATURE: Final = "InvalidFirmwareSignature"

_Ext = TypeVar("_Ext", bound=x509.ExtensionType)

_CHUNK = 1 << 20  # bytes hashed per read: constant memory for bundles of hundreds of MiB
_MAX_CHAIN = 8  # leaf plus intermediates below the root; longer chains are refused
# Extensions whose meaning this module honours or that cannot widen what a certificate may do.
_UNDERSTOOD = frozenset(
    {
        ExtensionOID.BASIC_CONSTRAINTS,
        ExtensionOID.KEY_USAGE,
        ExtensionOID.EXTENDED_KEY_USAGE,
        ExtensionOID.SUBJECT_KEY_IDENTIFIER,
        ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
        ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
        ExtensionOID.CERTIFICATE_POLICIES,
    }
)


class FirmwareSignatureError(EvsedError):
    """A signed firmware failed verification; ``kind`` names the security event to report."""

    def __init__(self, kind: FailureKind, message: str) -> None:
        self.kind: FailureKind = kind
        super().__init__(message)


def verify_firmware(
    path: Path,
    signing_certificate_pem: str,
    signature_b64: str,
    roots: Sequence[x509.Certificate],
    *,
    now: datetime,
) -> None:
    """Check the signing certificate against ``roots``, then the signature over ``path``.

    Raises :class:`FirmwareSignatureError` on any failure and ``OSError`` when the file cannot
    be read (a local problem, not a signature problem). Blocking: hashes the whole file, so
    call it through ``asyncio.to_thread``.
    """
    leaf = verify_signing_certificate(signing_certificate_pem, roots, now=now)
    signature = _decode_signature(signature_b64)
    digest = _sha256_file(path)
    _verify_digest(leaf, signature, digest)


def verify_signing_certificate(
    signing_certificate_pem: str, roots: Sequence[x509.Certificate], *, now: datetime
) -> x509.Certificate:
    """Validate the signing certificate (and the intermediates sent with it) up to a root.

    Usable on its own when SignedUpdateFirmware.req arrives, to answer InvalidCertificate
    before downloading anything. Returns the leaf certificate.
    """
    certificates = _parse_certificates(signing_certificate_pem)
    if not roots:
        _bad_certificate("no manufacturer root certificate is installed")
    when = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
    leaf, intermediates = certificates[0], certificates[1:]
    chain = _build_chain(leaf, intermediates, roots)
    for position, certificate in enumerate(chain):
        _check_validity(certificate, when, _role(position, len(chain)))
        _check_critical_extensions(certificate, _role(position, len(chain)))
    _check_leaf_usage(leaf)
    for position, issuer in enumerate(chain[1:], start=1):
        # position - 1 = CA certificates between this issuer and the leaf
        _check_issuer(issuer, _role(position, len(chain)), below=position - 1)
    return leaf


def _parse_certificates(text: str) -> list[x509.Certificate]:
    data = text.strip()
    if not data:
        _bad_certificate("no signing certificate was sent")
    if "-----BEGIN" in data:
        try:
            return x509.load_pem_x509_certificates(data.encode("ascii"))
        except (ValueError, UnicodeEncodeError) as exc:
            _bad_certificate(f"signing certificate is not valid PEM: {exc}")
    try:
        der = bytes.fromhex(data)
    except ValueError:
        _bad_certificate("signing certificate is neither PEM nor hex-encoded DER")
    try:
        return [x509.load_der_x509_certificate(der)]
    except ValueError as exc:
        _bad_certificate(f"signing certificate (hex DER) cannot be parsed: {exc}")


def _build_chain(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    roots: Sequence[x509.Certificate],
) -> list[x509.Certificate]:
    """Leaf first, trusted root last. A root sent as the signing certificate is its own chain."""
    root_ders = {_der(root) for root in roots}
    if _der(leaf) in root_ders:
        return [leaf]
    chain = [leaf]
    candidates = [c for c in intermediates if _der(c) not in root_ders]
    while len(chain) <= _MAX_CHAIN:
        current = chain[-1]
        for root in roots:
            if _issued_by(current, root):
                return [*chain, root]
        issuer = next(
            (c for c in candidates if c not in chain and _issued_by(current, c)),
            None,
        )
        if issuer is None:
            break
        chain.append(issuer)
    last = chain[-1]
    if len(chain) > _MAX_CHAIN:
        _bad_certificate(f"certificate chain longer than {_MAX_CHAIN} certificates")
    _bad_certificate(
        "signing certificate does not chain to an installed manufacturer root "
        f"(no trusted issuer for {last.subject.rfc4514_string()!r}, "
        f"issued by {last.issuer.rfc4514_string()!r})"
    )


def _issued_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Name match and a valid signature by ``issuer``'s key (RSA, RSA-PSS, ECDSA, EdDSA)."""
    try:
        certificate.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _role(position: int, length: int) -> str:
    if position == 0:
        return "signing certificate"
    return "root certificate" if position == length - 1 else "intermediate certificate"


def _check_validity(certificate: x509.Certificate, now: datetime, role: str) -> None:
    not_before = certificate.not_valid_before_utc
    not_after = certificate.not_valid_after_utc
    name = certificate.subject.rfc4514_string()
    if now < not_before:
        _bad_certificate(f"{role} {name!r} is not valid before {not_before.isoformat()}")
    if now > not_after:
        _bad_certificate(f"{role} {name!r} expired at {not_after.isoformat()}")


def _check_critical_extensions(certificate: x509.Certificate, role: str) -> None:
    try:
        extensions = list(certificate.extensions)
    except ValueError as exc:  # duplicate or malformed extensions
        _bad_certificate(f"{role} has malformed extensions: {exc}")
    for extension in extensions:
        if extension.critical and extension.oid not in _UNDERSTOOD:
            _bad_certificate(
                f"{role} {certificate.subject.rfc4514_string()!r} has an unsupported critical "
                f"extension {extension.oid.dotted_string}"
            )


def _check_leaf_usage(leaf: x509.Certificate) -> None:
    key_usage = _extension(leaf, x509.KeyUsage)
    if key_usage is not None and not key_usage.digital_signature:
        _bad_certificate("signing certificate's keyUsage does not allow digitalSignature")
    eku = _extension(leaf, x509.ExtendedKeyUsage)
    if eku is not None and not {
        ExtendedKeyUsageOID.CODE_SIGNING,
        ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,
    } & set(eku):
        _bad_certificate("signing certificate's extendedKeyUsage does not include codeSigning")


def _check_issuer(issuer: x509.Certificate, role: str, *, below: int) -> None:
    name = issuer.subject.rfc4514_string()
    constraints = _extension(issuer, x509.BasicConstraints)
    if constraints is None or not constraints.ca:
        _bad_certificate(f"{role} {name!r} is not a CA certificate (basicConstraints CA:TRUE)")
    if constraints.path_length is not None and below > constraints.path_length:
        _bad_certificate(
            f"{role} {name!r} allows {constraints.path_length} intermediate CA(s) below it, "
            f"the chain has {below}"
        )
    key_usage = _extension(issuer, x509.KeyUsage)
    if key_usage is not None and not key_usage.key_cert_sign:
        _bad_certificate(f"{role} {name!r} keyUsage does not allow keyCertSign")


def _extension(certificate: x509.Certificate, kind: type[_Ext]) -> _Ext | None:
    try:
        return certificate.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _decode_signature(signature_b64: str) -> bytes:
    text = "".join(signature_b64.split())  # tolerate line breaks from PEM-style wrapping
    if not text:
        _bad_signature("no firmware signature was sent")
    try:
        signature = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        _bad_signature(f"firmware signature is not valid base64: {exc}")
    if not signature:
        _bad_signature("firmware signature is empty")
    return signature


def _sha256_file(path: Path) -> bytes:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.digest()


def _verify_digest(leaf: x509.Certificate, signature: bytes, digest: bytes) -> None:
    key = leaf.public_key()
    prehashed = Prehashed(hashes.SHA256())
    if isinstance(key, rsa.RSAPublicKey):
        schemes: list[padding.AsymmetricPadding] = [
            padding.PKCS1v15(),
            padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO),
        ]
        for scheme in schemes:
            try:
                key.verify(signature, digest, scheme, prehashed)
            except InvalidSignature:
                continue
            return
        _bad_signature(f"RSA signature does not match the firmware ({key.key_size}-bit key)")
    if isinstance(key, ec.EllipticCurvePublicKey):
        for candidate in _ecdsa_encodings(signature, key.curve.key_size):
            try:
                key.verify(candidate, digest, ec.ECDSA(prehashed))
            except InvalidSignature:
                continue
            return
        _bad_signature(f"ECDSA signature does not match the firmware (curve {key.curve.name})")
    _bad_certificate(
        f"signing certificate has a {type(key).__name__} key; only RSA and ECDSA are supported"
    )


def _ecdsa_encodings(signature: bytes, curve_bits: int) -> list[bytes]:
    """DER as sent; plus the DER form of a raw ``r || s`` signature of the curve's size."""
    encodings = [signature]
    size = (curve_bits + 7) // 8
    if len(signature) == 2 * size:
        r = int.from_bytes(signature[:size], "big")
        s = int.from_bytes(signature[size:], "big")
        encodings.append(encode_dss_signature(r, s))
    return encodings


def _der(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(Encoding.DER)


def _bad_certificate(message: str) -> NoReturn:
    raise FirmwareSignatureError(INVALID_CERTIFICATE, message)


def _bad_signature(message: str) -> NoReturn:
    raise FirmwareSignatureError(INVALID_SIGNATURE, message)
