"""TLS client contexts for the CSMS connection, and what a failed handshake means.

Security profiles 2 and 3 (Security Whitepaper A00.FR.307-322, 411-426): TLS 1.2 or newer, the
CSMS certificate verified against the installed CentralSystemRootCertificates with its host
name checked (the subjectAltName, or the commonName when there is none: A00.FR.308 names the
commonName), no TLS compression, and for TLS 1.2 only the whitepaper's AEAD cipher suites
(ECDHE-ECDSA and RSA with AES-GCM; ECDHE-RSA with AES-GCM as well, for forward secrecy with an
RSA certificate). TLS 1.3 suites are all AEAD. Profile 3 adds the charge point certificate as
the client certificate. The server name (SNI) is sent by the websocket client.

Profiles 0 and 1 over ``wss://`` verify against the system trust store (and the installed
roots, if any), as a plain HTTPS client would.
"""

from __future__ import annotations

import socket
import ssl
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from evsed.security.events import SecurityEvent

TLS12_CIPHERS = ":".join(
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "AES128-GCM-SHA256",
        "AES256-GCM-SHA384",
    )
)


def client_context(
    roots: list[x509.Certificate],
    *,
    system_store: bool,
    client_cert: Path | None = None,
    client_key: Path | None = None,
) -> ssl.SSLContext:
    """A verifying client context trusting ``roots`` (and the system store if asked)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies, checks host names
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION
    context.set_ciphers(TLS12_CIPHERS)
    context.hostname_checks_common_name = True
    if system_store:
        context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    if roots:
        context.load_verify_locations(cadata="".join(_pem(cert) for cert in roots))
    if client_cert is not None and client_key is not None:
        context.load_cert_chain(client_cert, client_key)
    return context


def _pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(Encoding.PEM).decode("ascii")


def handshake_event(exc: BaseException) -> tuple[SecurityEvent, str] | None:
    """The security event a failed connection attempt stands for, with a technician's
    description; None for failures that say nothing about security (refused, timed out)."""
    chain = [exc]
    while chain[-1].__cause__ is not None or chain[-1].__context__ is not None:
        following = chain[-1].__cause__ or chain[-1].__context__
        if following is None or following in chain:
            break
        chain.append(following)
    for error in chain:
        if isinstance(error, ssl.SSLCertVerificationError):
            message = error.verify_message or str(error)
            if "hostname" in message.lower() or "ip address mismatch" in message.lower():
                return SecurityEvent.CSMS_FAILED_TO_AUTHENTICATE, f"TLS: {message}"
            return SecurityEvent.INVALID_CSMS_CERTIFICATE, f"TLS: {message}"
        if isinstance(error, ssl.SSLError):
            reason = (error.reason or str(error)).upper()
            if "PROTOCOL_VERSION" in reason or "UNSUPPORTED_PROTOCOL" in reason:
                return SecurityEvent.INVALID_TLS_VERSION, f"TLS: {error.reason or error}"
            if "HANDSHAKE_FAILURE" in reason or "NO_SHARED_CIPHER" in reason or "CIPHER" in reason:
                return SecurityEvent.INVALID_TLS_CIPHER_SUITE, f"TLS: {error.reason or error}"
    status = _http_status(exc)
    if status in (401, 403):
        return SecurityEvent.FAILED_TO_AUTHENTICATE_AT_CSMS, f"the CSMS answered HTTP {status}"
    return None


def _http_status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    return int(status) if isinstance(status, int) else None


PROBE_TIMEOUT_S = 5.0
_OLD_VERSIONS = frozenset({"SSLv3", "TLSv1", "TLSv1.1"})


def probe(url: str) -> tuple[SecurityEvent, str] | None:
    """What a CSMS that dropped our handshake offers. A server that refuses a TLS version or
    every suite may close the connection without an alert, which says nothing; this second
    handshake accepts any version and suite, verifies nothing, sends nothing after the
    handshake and closes. Blocking: call it in a thread."""
    parts = urlsplit(url)
    if parts.scheme != "wss" or not parts.hostname:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    context.set_ciphers("ALL:@SECLEVEL=0")
    try:
        with (
            socket.create_connection((parts.hostname, parts.port or 443), PROBE_TIMEOUT_S) as raw,
            context.wrap_socket(raw, server_hostname=parts.hostname) as tls,
        ):
            version, cipher = tls.version(), tls.cipher()
    except (OSError, ValueError):
        return None
    if version in _OLD_VERSIONS:
        return SecurityEvent.INVALID_TLS_VERSION, f"TLS: the CSMS offers only {version}"
    suite = cipher[0] if cipher else ""
    if version == "TLSv1.2" and suite not in TLS12_CIPHERS.split(":"):
        return SecurityEvent.INVALID_TLS_CIPHER_SUITE, f"TLS: the CSMS offers only {suite}"
    return None
