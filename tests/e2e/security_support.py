"""What the security tests share: charge point credentials, a CSMS per security profile and
what the CSMS saw of each connection attempt.

Every CSMS here runs on 127.0.0.1 and is reached as ``localhost``, the name its certificate
carries; the CA is made in the test (:mod:`tls_support`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from tls_support import Issued, TestCa

from evsed_devtools.harness import DevCsms, Evsed, wait_for

# The AuthorizationKey of the OCA test tool's example ("OCA_OCTT_admin_test", 19 bytes).
KEY = "4F43415F4F4354545F61646D696E5F74657374"
SERIAL = "EVSED-SN-0001"
CPO = "evsed test CPO"


def local(url: str) -> str:
    return url.replace("127.0.0.1", "localhost")


def connections(csms: DevCsms) -> list[dict[str, Any]]:
    """Every connection attempt the CSMS saw (Basic auth outcome, TLS, client certificate)."""
    records: list[dict[str, Any]] = csms.api("/api/connections")
    return records


def connection_mark(csms: DevCsms) -> tuple[int, int]:
    """Where the connection records and the StatusNotifications stand now."""
    return len(connections(csms)), len(csms.calls("CP01", "StatusNotification"))


def new_connection(
    csms: DevCsms, mark: tuple[int, int], what: str = "a new connection"
) -> dict[str, Any]:
    """The first connection attempt after ``mark`` that the CSMS accepted, once that connection
    carries the charger's messages (its statuses come first on every connection): the CSMS may
    still hold the old one for a moment after the upgrade of the new one."""
    before, statuses = mark
    found: dict[str, Any] = wait_for(
        lambda: next((r for r in connections(csms)[before:] if r["basic_auth"] != "wrong"), None),
        what=what,
    )
    wait_for(
        lambda: len(csms.calls("CP01", "StatusNotification")) > statuses,
        what=f"{what}: the statuses on it",
    )
    return found


def security_events(csms: DevCsms) -> list[str]:
    return [m["payload"]["type"] for m in csms.calls("CP01", "SecurityEventNotification")]


def hash_data(certificate_pem: str, algorithm: str = "SHA256") -> dict[str, str]:
    """certificateHashData of a root certificate, computed here the way the whitepaper says
    (issuer name DER, issuer public key bits, serial number in hex), independently of evsed."""
    certificate = x509.load_pem_x509_certificate(certificate_pem.encode("ascii"))
    digest = {"SHA256": hashlib.sha256, "SHA384": hashlib.sha384, "SHA512": hashlib.sha512}
    return {
        "hashAlgorithm": algorithm,
        "issuerNameHash": digest[algorithm](certificate.issuer.public_bytes()).hexdigest(),
        "issuerKeyHash": digest[algorithm](_public_key_bits(certificate)).hexdigest(),
        "serialNumber": format(certificate.serial_number, "x"),
    }


def _public_key_bits(certificate: x509.Certificate) -> bytes:
    """The subjectPublicKey BIT STRING's content of a self-signed root (its issuer's key):
    the curve point for an EC key, the PKCS#1 structure for RSA."""
    key = certificate.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        return key.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)


@dataclass
class Pki:
    """The test's CA, the CSMS's server certificate and a charge point certificate."""

    ca: TestCa
    server: Issued
    client: Issued

    @classmethod
    def make(cls, directory: Path) -> Pki:
        ca = TestCa(directory)
        return cls(
            ca, ca.issue_server("csms", ["localhost"]), ca.issue_client("cp", SERIAL, CPO, days=90)
        )

    def tls_args(self, *, client_ca: bool = False) -> tuple[str, ...]:
        args = ("--tls-cert", str(self.server.cert), "--tls-key", str(self.server.key))
        return args + (("--tls-client-ca", str(self.ca.cert)) if client_ca else ())


def profile_csms(
    start_csms: Callable[..., DevCsms], profile: int, pki: Pki | None, *extra: str
) -> DevCsms:
    """A CSMS for ``profile``: Basic auth with :data:`KEY` for 1 and 2, TLS for 2 and 3, a
    client certificate required for 3."""
    args: tuple[str, ...] = ()
    if profile in (1, 2):
        args += ("--auth-key", f"CP01={KEY}")
    if profile >= 2:
        assert pki is not None
        args += pki.tls_args(client_ca=profile == 3)
    return start_csms(*args, *extra)


def profile_evsed(
    start_evsed: Callable[..., Evsed],
    csms: DevCsms,
    profile: int,
    pki: Pki | None,
    **csms_keys: Any,
) -> Evsed:
    """The daemon provisioned for ``profile`` as a factory would do it, in its config."""
    keys: dict[str, Any] = {"security_profile": profile, "cpo_name": CPO}
    if profile in (1, 2):
        keys["authorization_key"] = KEY
    if profile == 1:
        keys["allow_unencrypted"] = True
    if profile >= 2:
        assert pki is not None
        keys["ca_file"] = str(pki.ca.cert)
    if profile == 3:
        assert pki is not None
        keys.update(client_cert=str(pki.client.cert), client_key=str(pki.client.key))
    keys.update(csms_keys)
    return start_evsed(local(csms.ws_url), charger={"serial_number": SERIAL}, csms=keys)
