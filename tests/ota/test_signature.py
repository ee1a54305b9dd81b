"""SignedUpdateFirmware verification and the manufacturer root store (OCPP 1.6 Security
Whitepaper L01 / M05), against a small PKI made here with ``cryptography``."""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from evsed.ota.signature import FirmwareSignatureError, verify_firmware
from evsed.security.certificates import CertificateHashData, CertificateStore, fingerprint

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
LONG_AGO = datetime(2020, 1, 1, tzinfo=UTC)
FAR_AWAY = datetime(2040, 1, 1, tzinfo=UTC)

Key = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def certificate(
    name: str,
    key: Key,
    issuer: tuple[x509.Certificate, Key] | None = None,
    *,
    ca: bool,
    path_length: int | None = None,
    not_before: datetime = LONG_AGO,
    not_after: datetime = FAR_AWAY,
    digital_signature: bool = True,
    eku: list[x509.ObjectIdentifier] | None = None,
) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_name, signing_key = (issuer[0].subject, issuer[1]) if issuer else (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=digital_signature and not ca,
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
    )
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    return builder.sign(signing_key, hashes.SHA256())


def pem(*certificates: x509.Certificate) -> str:
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certificates)


def sign(key: Key, data: bytes) -> str:
    if isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    else:
        signature = key.sign(data, ec.ECDSA(hashes.SHA256()))
    return base64.b64encode(signature).decode()


@dataclass(frozen=True)
class Pki:
    root: x509.Certificate
    root_key: rsa.RSAPrivateKey
    intermediate: x509.Certificate
    intermediate_key: ec.EllipticCurvePrivateKey
    rsa_leaf: x509.Certificate  # issued by the root directly
    rsa_leaf_key: rsa.RSAPrivateKey
    ec_leaf: x509.Certificate  # issued by the intermediate
    ec_leaf_key: ec.EllipticCurvePrivateKey
    wrong_root: x509.Certificate
    wrong_leaf: x509.Certificate  # issued by wrong_root
    wrong_leaf_key: ec.EllipticCurvePrivateKey


@pytest.fixture(scope="module")
def pki() -> Pki:
    root_key = rsa_key()
    root = certificate("Manufacturer Root", root_key, ca=True)
    intermediate_key = ec_key()
    intermediate = certificate(
        "Manufacturer Firmware CA", intermediate_key, (root, root_key), ca=True, path_length=0
    )
    rsa_leaf_key = rsa_key()
    rsa_leaf = certificate(
        "Firmware signer RSA",
        rsa_leaf_key,
        (root, root_key),
        ca=False,
        eku=[ExtendedKeyUsageOID.CODE_SIGNING],
    )
    ec_leaf_key = ec_key()
    ec_leaf = certificate(
        "Firmware signer EC", ec_leaf_key, (intermediate, intermediate_key), ca=False
    )
    wrong_root_key = ec_key()
    wrong_root = certificate("Someone else's root", wrong_root_key, ca=True)
    wrong_leaf_key = ec_key()
    wrong_leaf = certificate("Stranger", wrong_leaf_key, (wrong_root, wrong_root_key), ca=False)
    return Pki(
        root,
        root_key,
        intermediate,
        intermediate_key,
        rsa_leaf,
        rsa_leaf_key,
        ec_leaf,
        ec_leaf_key,
        wrong_root,
        wrong_leaf,
        wrong_leaf_key,
    )


@pytest.fixture
def firmware(tmp_path: Path) -> Path:
    path = tmp_path / "update.raucb"
    # Larger than one read chunk, so the streaming hash loop runs more than once.
    path.write_bytes(bytes(range(256)) * 9000)
    return path


def failure(excinfo: pytest.ExceptionInfo[FirmwareSignatureError]) -> tuple[str, str]:
    return excinfo.value.kind, str(excinfo.value)


# --- signatures that must verify ---------------------------------------------------------


def test_rsa_pkcs1v15_signature_by_leaf_under_root_verifies(pki: Pki, firmware: Path) -> None:
    signature = sign(pki.rsa_leaf_key, firmware.read_bytes())
    verify_firmware(firmware, pem(pki.rsa_leaf), signature, [pki.root], now=NOW)


def test_ecdsa_signature_through_intermediate_in_the_pem_verifies(pki: Pki, firmware: Path) -> None:
    signature = sign(pki.ec_leaf_key, firmware.read_bytes())
    chain = pem(pki.ec_leaf, pki.intermediate)
    verify_firmware(firmware, chain, signature, [pki.wrong_root, pki.root], now=NOW)


def test_rsa_pss_signature_is_accepted(pki: Pki, firmware: Path) -> None:
    raw = pki.rsa_leaf_key.sign(
        firmware.read_bytes(),
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
        hashes.SHA256(),
    )
    signature = base64.b64encode(raw).decode()
    verify_firmware(firmware, pem(pki.rsa_leaf), signature, [pki.root], now=NOW)


def test_raw_r_s_ecdsa_signature_is_accepted(pki: Pki, firmware: Path) -> None:
    der = pki.ec_leaf_key.sign(firmware.read_bytes(), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    chain = pem(pki.ec_leaf, pki.intermediate)
    verify_firmware(firmware, chain, base64.b64encode(raw).decode(), [pki.root], now=NOW)


def test_hex_der_signing_certificate_of_whitepaper_edition_1_is_accepted(
    pki: Pki, firmware: Path
) -> None:
    hex_der = pki.rsa_leaf.public_bytes(serialization.Encoding.DER).hex().upper()
    signature = sign(pki.rsa_leaf_key, firmware.read_bytes())
    verify_firmware(firmware, hex_der, signature, [pki.root], now=NOW)


def test_signature_wrapped_over_lines_is_accepted(pki: Pki, firmware: Path) -> None:
    signature = sign(pki.rsa_leaf_key, firmware.read_bytes())
    wrapped = "\n".join(signature[i : i + 64] for i in range(0, len(signature), 64))
    verify_firmware(firmware, pem(pki.rsa_leaf), wrapped, [pki.root], now=NOW)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl tool")
@pytest.mark.parametrize("which", ["rsa", "ec"])
def test_signature_made_with_openssl_dgst_verifies(
    pki: Pki, firmware: Path, tmp_path: Path, which: str
) -> None:
    key, chain = (
        (pki.rsa_leaf_key, pem(pki.rsa_leaf))
        if which == "rsa"
        else (pki.ec_leaf_key, pem(pki.ec_leaf, pki.intermediate))
    )
    key_file = tmp_path / "signer.key.pem"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    raw = subprocess.run(
        ["openssl", "dgst", "-sha256", "-sign", str(key_file), str(firmware)],
        check=True,
        capture_output=True,
    ).stdout
    verify_firmware(firmware, chain, base64.b64encode(raw).decode(), [pki.root], now=NOW)


# --- InvalidFirmwareSignature ------------------------------------------------------------


def test_tampered_file_is_an_invalid_signature(pki: Pki, firmware: Path) -> None:
    signature = sign(pki.rsa_leaf_key, firmware.read_bytes())
    with firmware.open("r+b") as stream:
        stream.seek(100_000)
        stream.write(b"\xff")
    with pytest.raises(FirmwareSignatureError) as excinfo:
        verify_firmware(firmware, pem(pki.rsa_leaf), signature, [pki.root], now=NOW)
    kind, message = failure(excinfo)
    assert kind == "InvalidFirmwareSignature"
    assert "does not match the firmware" in message


def test_signature_by_a_different_key_is_an_invalid_signature(pki: Pki, firmware: Path) -> None:
    signature = sign(pki.wrong_leaf_key, firmware.read_bytes())
    chain = pem(pki.ec_leaf, pki.intermediate)
    with pytest.raises(FirmwareSignatureError) as excinfo:
        verify_firmware(firmware, chain, signature, [pki.root], now=NOW)
    assert excinfo.value.kind == "InvalidFirmwareSignature"


@pytest.mark.parametrize("garbage", ["not base64 at all!", "", "   ", "QUJD$"])
def test_garbage_base64_is_an_invalid_signature(pki: Pki, firmware: Path, garbage: str) -> None:
    with pytest.raises(FirmwareSignatureError) as excinfo:
        verify_firmware(firmware, pem(pki.rsa_leaf), garbage, [pki.root], now=NOW)
    assert excinfo.value.kind == "InvalidFirmwareSignature"


# --- InvalidFirmwareSigningCertificate ---------------------------------------------------


def test_certificate_under_a_wrong_root_is_an_invalid_certificate(pki: Pki, firmware: Path) -> None:
    signature = sign(pki.wrong_leaf_key, firmware.read_bytes())
    with pytest.raises(FirmwareSignatureError) as excinfo:
        verify_firmware(firmware, pem(pki.wrong_leaf), signature, [pki.root], now=NOW)
    kind, message = failure(excinfo)
    assert kind == "InvalidFirmwareSigningCertificate"
    assert "does not chain to an installed manufacturer root" in message


def test_expired_signing_certificate_is_an_invalid_certificate(pki: Pki, firmware: Path) -> None:
    key = ec_key()
    expired = certificate(
        "Old signer",
        key,
        (pki.root, pki.root_key),
        ca=False,
        not_after=NOW - timedelta(days=1),
    )
    signature = sign(key, firmware.read_bytes())
    with pytest.raises(FirmwareSignatureError) as excinfo:
        verify_firmware(firmware, pem(expired), signature, [pki.root], now=NOW)
    kind, message = failure(excinfo)
    assert kind == "InvalidFirmwareSigningCertificate"
    assert "expired" in message


def test_not_yet_valid_signing_certificate_is_an_invalid_certificate(
    pki: Pki, firmware: Path
) -> None:
    signature = sign(pki.rsa_leaf_key, firmware.read_bytes())
    with pytest.raises(FirmwareSignatureError) as excinfo:
        verify_firmware(
            firmware, pem(pki.rsa_leaf), signature, [pki.root], now=LONG_AGO - timedelta(days=1)
        )
    assert excinfo.value.kind == "InvalidFirmwareSigningCertificate"
    assert "not valid before" in str(excinfo.value)


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "-----BEGIN CERTIFICATE-----\nbm9wZQ==\n-----END CERTIFICATE-----\n",
        "hello, I am a certificate",
        "3082deadbeef",
    ],
)
def test_garbage_certificate_is_an_invalid_certificate(
    pki: Pki, firmware: Path, garbage: str
) -> None:
    signature = sign(pki.rsa_leaf_key, firmware.read_bytes())
    with pytest.raises(FirmwareSignatureError) as excinfo:
        verify_firmware(firmware, garbage, signature, [pki.root], now=NOW)
    assert excinfo.value.kind == "InvalidFirmwareSigningCertificate"


def test_leaf_without_its_intermediate_does_not_chain(pki: Pki, firmware: Path) -> None:
    signature = sign(pki.ec_leaf_key, firmware.read_bytes())
    with pytest.raises(FirmwareSignatureError) as excinfo:
        verify_firmware(firmware, pem(pki.ec_leaf), signature, [pki.root], now=NOW)
    assert excinfo.value.kind == "InvalidFirmwareSigningCertificate"


def test_issuer_that_is_not_a_ca_is_an_invalid_certificate(pki: Pki, firmware: Path) -> None:
    key = ec_key()
    # Issued by the RSA signing certificate (CA:FALSE), which chains to the root itself.
    sneaky = certificate("Sneaky signer", key, (pki.rsa_leaf, pki.rsa_leaf_key), ca=False)
    signature = sign(key, firmware.read_bytes())
    with pytest.raises(FirmwareSignatureError) as excinfo:
        verify_firmware(firmware, pem(sneaky, pki.rsa_leaf), signature, [pki.root], now=NOW)
    kind, message = failure(excinfo)
    assert kind == "InvalidFirmwareSigningCertificate"
    assert "not a CA certificate" in message


def test_path_length_constraint_is_enforced(pki: Pki, firmware: Path) -> None:
    # The intermediate says pathLen 0: no further CA may sit below it.
    sub_key = ec_key()
    sub_ca = certificate("Sub CA", sub_key, (pki.intermediate, pki.intermediate_key), ca=True)
    key = ec_key()
    leaf = certificate("Deep signer", key, (sub_ca, sub_key), ca=False)
    signature = sign(key, firmware.read_bytes())
    with pytest.raises(FirmwareSignatureError) as excinfo:
        verify_firmware(
            firmware, pem(leaf, sub_ca, pki.intermediate), signature, [pki.root], now=NOW
        )
    assert excinfo.value.kind == "InvalidFirmwareSigningCertificate"
    assert "intermediate CA" in str(excinfo.value)


def test_leaf_without_digital_signature_usage_is_refused(pki: Pki, firmware: Path) -> None:
    key = ec_key()
    leaf = certificate(
        "Encipher only", key, (pki.root, pki.root_key), ca=False, digital_signature=False
    )
    signature = sign(key, firmware.read_bytes())
    with pytest.raises(FirmwareSignatureError) as excinfo:
        verify_firmware(firmware, pem(leaf), signature, [pki.root], now=NOW)
    assert excinfo.value.kind == "InvalidFirmwareSigningCertificate"
    assert "digitalSignature" in str(excinfo.value)


def test_leaf_restricted_to_tls_server_use_is_refused(pki: Pki, firmware: Path) -> None:
    key = ec_key()
    leaf = certificate(
        "Web server", key, (pki.root, pki.root_key), ca=False, eku=[ExtendedKeyUsageOID.SERVER_AUTH]
    )
    signature = sign(key, firmware.read_bytes())
    with pytest.raises(FirmwareSignatureError) as excinfo:
        verify_firmware(firmware, pem(leaf), signature, [pki.root], now=NOW)
    assert "codeSigning" in str(excinfo.value)


def test_no_installed_root_is_an_invalid_certificate(pki: Pki, firmware: Path) -> None:
    signature = sign(pki.rsa_leaf_key, firmware.read_bytes())
    with pytest.raises(FirmwareSignatureError) as excinfo:
        verify_firmware(firmware, pem(pki.rsa_leaf), signature, [], now=NOW)
    assert excinfo.value.kind == "InvalidFirmwareSigningCertificate"
    assert "no manufacturer root" in str(excinfo.value)


def test_certificate_is_checked_before_the_signature(pki: Pki, firmware: Path) -> None:
    # Both are wrong; the certificate problem is what gets reported.
    with pytest.raises(FirmwareSignatureError) as excinfo:
        verify_firmware(firmware, pem(pki.wrong_leaf), "!!", [pki.root], now=NOW)
    assert excinfo.value.kind == "InvalidFirmwareSigningCertificate"


def test_missing_file_is_not_reported_as_a_bad_signature(pki: Pki, tmp_path: Path) -> None:
    signature = sign(pki.rsa_leaf_key, b"x")
    with pytest.raises(FileNotFoundError):
        verify_firmware(tmp_path / "gone", pem(pki.rsa_leaf), signature, [pki.root], now=NOW)


# --- CertificateStore (InstallCertificate ManufacturerRootCertificate) -------------------


def store(tmp_path: Path, extra: str = "", max_certificates: int | None = None) -> CertificateStore:
    return CertificateStore(
        tmp_path / "certs", extra, max_certificates=max_certificates, now=lambda: NOW
    )


def test_installed_root_is_stored_under_its_fingerprint_and_trusted(
    pki: Pki, tmp_path: Path, firmware: Path
) -> None:
    certs = store(tmp_path)
    assert certs.roots() == []
    assert certs.install(pem(pki.root)) == "Accepted"
    stored = tmp_path / "certs" / f"{fingerprint(pki.root)}.pem"
    assert stored.is_file()
    assert (
        fingerprint(pki.root)
        == hashlib.sha256(pki.root.public_bytes(serialization.Encoding.DER)).hexdigest()
    )
    assert certs.roots() == [pki.root]
    # What the firmware manager does: roots from the store into the verifier.
    signature = sign(pki.rsa_leaf_key, firmware.read_bytes())
    verify_firmware(firmware, pem(pki.rsa_leaf), signature, certs.roots(), now=NOW)


def test_installing_the_same_root_twice_is_accepted_once(pki: Pki, tmp_path: Path) -> None:
    certs = store(tmp_path)
    assert certs.install(pem(pki.root)) == "Accepted"
    assert certs.install(pem(pki.root)) == "Accepted"
    assert len(list((tmp_path / "certs").iterdir())) == 1


def test_intermediate_ca_may_be_installed(pki: Pki, tmp_path: Path) -> None:
    assert store(tmp_path).install(pem(pki.intermediate)) == "Accepted"


def test_non_ca_certificate_is_rejected(pki: Pki, tmp_path: Path) -> None:
    certs = store(tmp_path)
    assert certs.install(pem(pki.rsa_leaf)) == "Rejected"
    assert certs.roots() == []


@pytest.mark.parametrize(
    "garbage", ["", "junk", "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----"]
)
def test_garbage_is_rejected(tmp_path: Path, garbage: str) -> None:
    assert store(tmp_path).install(garbage) == "Rejected"


def test_more_than_one_certificate_is_rejected(pki: Pki, tmp_path: Path) -> None:
    assert store(tmp_path).install(pem(pki.root, pki.wrong_root)) == "Rejected"


def test_expired_root_is_rejected(tmp_path: Path) -> None:
    key = ec_key()
    old = certificate("Old root", key, ca=True, not_after=NOW - timedelta(seconds=1))
    assert store(tmp_path).install(pem(old)) == "Rejected"


def test_full_store_rejects(pki: Pki, tmp_path: Path) -> None:
    certs = store(tmp_path, max_certificates=1)
    assert certs.install(pem(pki.root)) == "Accepted"
    assert certs.install(pem(pki.wrong_root)) == "Rejected"


def test_storage_failure_is_failed(pki: Pki, tmp_path: Path) -> None:
    (tmp_path / "certs").write_text("a file where the directory should be")
    assert store(tmp_path).install(pem(pki.root)) == "Failed"


def test_configured_root_file_is_trusted_and_unreadable_files_are_skipped(
    pki: Pki, tmp_path: Path
) -> None:
    configured = tmp_path / "manufacturer.pem"
    configured.write_text(pem(pki.root, pki.wrong_root))
    certs = store(tmp_path, str(configured))
    assert certs.install(pem(pki.intermediate)) == "Accepted"
    (tmp_path / "certs" / "broken.pem").write_text("not a certificate")
    assert certs.roots() == [pki.intermediate, pki.root, pki.wrong_root]
    assert store(tmp_path, str(tmp_path / "missing.pem")).roots() == [pki.intermediate]


def test_hashes_identify_certificates_for_delete(pki: Pki, tmp_path: Path) -> None:
    configured = tmp_path / "manufacturer.pem"
    configured.write_text(pem(pki.wrong_root))
    certs = store(tmp_path, str(configured))
    certs.install(pem(pki.root))
    certs.install(pem(pki.intermediate))
    hashes_by_serial = {h.serial_number: h for h in certs.list_hashes()}
    root_hash = hashes_by_serial[format(pki.root.serial_number, "x")]
    # Self-signed RSA root: issuerKeyHash is over its own RSAPublicKey (the BIT STRING).
    assert (
        root_hash.issuer_key_hash
        == hashlib.sha256(
            pki.root.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.PKCS1
            )
        ).hexdigest()
    )
    assert root_hash.issuer_name_hash == hashlib.sha256(pki.root.issuer.public_bytes()).hexdigest()
    # The intermediate's issuer is the root, found among the known certificates.
    intermediate_hash = hashes_by_serial[format(pki.intermediate.serial_number, "x")]
    assert intermediate_hash.issuer_key_hash == root_hash.issuer_key_hash
    assert root_hash.to_ocpp()["hashAlgorithm"] == "SHA256"

    assert certs.delete(root_hash) == "Accepted"
    assert pki.root not in certs.roots()
    assert certs.delete(root_hash) == "NotFound"
    configured_hash = hashes_by_serial[format(pki.wrong_root.serial_number, "x")]
    assert certs.delete(configured_hash) == "Failed"
    upper = CertificateHashData(
        intermediate_hash.issuer_name_hash.upper(),
        intermediate_hash.issuer_key_hash.upper(),
        "0" + intermediate_hash.serial_number.upper(),
    )
    assert certs.delete(upper) == "Accepted"
    assert certs.roots() == [pki.wrong_root]
