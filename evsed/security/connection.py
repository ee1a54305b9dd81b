"""How the charger connects to the CSMS under its security profile, and what each attempt
teaches (Security Whitepaper section 2, A01, A02, A05).

For every connection attempt :meth:`ConnectionSecurity.settings` builds the URL, TLS context
and headers from the credentials in force:

- profile 0: the URL as configured (``wss://`` verified against the system trust store);
- profile 1: HTTP Basic auth (user = charger id, password = the AuthorizationKey's bytes);
- profile 2: TLS verified against the CentralSystemRootCertificates only, plus Basic auth
  (a ``ws://`` URL, when the profile was raised from 0 or 1, is used as ``wss://``);
- profile 3: TLS with the charge point certificate as the client certificate (a newly signed
  one, once valid, is tried first and becomes the one in use when it has connected).

A failed attempt that says something about security raises its security event (at most once
per :data:`EVENT_EVERY_S` per kind: a CSMS with a bad certificate is tried again and again).
New settings (a raised profile, a new AuthorizationKey, a new client certificate) that fail
:data:`FALLBACK_AFTER` attempts in a row are given up for the last ones that connected
(A05.FR.08), which is a security event too; once they have connected they are kept, and the
old ones are never tried again (A05.FR.09).
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from cryptography import x509

from evsed.security import client_certs
from evsed.security.certificates import CertificateStore
from evsed.security.credentials import Credentials, SecuritySettings
from evsed.security.events import LoggedEvent, SecurityEvent, SecurityEvents
from evsed.security.tls import client_context, handshake_event, probe

log = logging.getLogger(__name__)

FALLBACK_AFTER = 3
EVENT_EVERY_S = 600.0


@dataclass(frozen=True, slots=True)
class LinkSettings:
    url: str
    ssl: ssl.SSLContext | None
    headers: dict[str, str] | None


class ConnectionSecurity:
    def __init__(
        self,
        url: str,
        charger_id: str,
        credentials: Credentials,
        csms_roots: CertificateStore,
        events: SecurityEvents,
        *,
        now: Callable[[], datetime.datetime],
    ) -> None:
        self._url = url
        self._charger_id = charger_id
        self.credentials = credentials
        self.roots = csms_roots
        self._events = events
        self._now = now
        self._failures = 0
        self._attempt_url = ""
        self._probed_at: float | None = None
        self._trying_new_cert = False
        self.server_issuer: x509.Name | None = None  # of the CSMS certificate last seen
        self._reconnect: Callable[[], None] = lambda: None

    @property
    def profile(self) -> int:
        return self.credentials.active.profile

    def on_reconnect_needed(self, reconnect: Callable[[], None]) -> None:
        """``reconnect()`` closes the connection so that the next one uses new settings."""
        self._reconnect = reconnect

    # -- per attempt --------------------------------------------------------------------------

    async def settings(self) -> LinkSettings:
        return await asyncio.to_thread(self._settings)

    def _settings(self) -> LinkSettings:
        active = self.credentials.active
        url = self._url
        headers: dict[str, str] | None = None
        if active.profile >= 1:
            url = _without_userinfo(url)
        if active.profile >= 2 and url.startswith("ws://"):
            # Raised over OCPP from a plain profile: the same endpoint, over TLS (1.6 has no
            # way to give a new URL).
            url = "wss://" + url.removeprefix("ws://")
        if active.profile in (1, 2) and active.authorization_key:
            headers = {"Authorization": basic_auth(self._charger_id, active)}
        context: ssl.SSLContext | None = None
        self._attempt_url = url
        if url.startswith("wss://"):
            context = self._context(active.profile)
        return LinkSettings(url, context, headers)

    def _context(self, profile: int) -> ssl.SSLContext:
        roots = self.roots.roots()
        if profile < 2:
            return client_context(roots, system_store=True)
        cert = key = None
        self._trying_new_cert = False
        if profile == 3:
            fresh = client_certs.new_pair(self.credentials.directory, self._now())
            if fresh is not None:
                cert, key = fresh
                self._trying_new_cert = True
            else:
                cert, key = self.credentials.client_cert, self.credentials.client_key
        return client_context(roots, system_store=False, client_cert=cert, client_key=key)

    def _probe_due(self) -> bool:
        """At most one TLS probe (:func:`evsed.security.tls.probe`) per event interval."""
        now = time.monotonic()
        if self._probed_at is not None and now - self._probed_at < EVENT_EVERY_S:
            return False
        self._probed_at = now
        return True

    async def failed(self, exc: BaseException) -> None:
        """An attempt failed with ``exc``: its security event, and perhaps a fallback."""
        found = handshake_event(exc)
        if found is None and self._attempt_url.startswith("wss://") and self._probe_due():
            found = await asyncio.to_thread(probe, self._attempt_url)
        if found is not None:
            event, info = found
            self._events.record_limited(event, str(event), info, every_s=EVENT_EVERY_S)
        self._failures += 1
        if self._failures < FALLBACK_AFTER:
            return
        if self._trying_new_cert:
            await asyncio.to_thread(client_certs.discard_new, self.credentials.directory)
            self._trying_new_cert = False
            self._failures = 0
            await self._events.record(
                SecurityEvent.INVALID_CHARGE_POINT_CERTIFICATE,
                "the newly signed certificate did not connect; the one before stays in use",
            )
            return
        restored = await asyncio.to_thread(self.credentials.fall_back)
        if restored is not None:
            self._failures = 0
            await self._events.record(
                SecurityEvent.RECONFIGURATION,
                f"new security settings did not connect: back to profile {restored.profile}",
            )
            await self._events.record(LoggedEvent.SECURITY_PROFILE_FALLBACK, str(restored.profile))

    async def connected(self, server_certificate: bytes | None) -> None:
        """An attempt succeeded (the websocket is open)."""
        self._failures = 0
        if server_certificate:
            self.server_issuer = x509.load_der_x509_certificate(server_certificate).issuer
        if self._trying_new_cert:
            await asyncio.to_thread(client_certs.promote, self.credentials.directory)
            self._trying_new_cert = False
            await self._events.record(
                LoggedEvent.CHARGE_POINT_CERTIFICATE_INSTALLED, "the new certificate connected"
            )
        if await asyncio.to_thread(self.credentials.connected):
            await self._events.record(
                LoggedEvent.CONNECTED_WITH_NEW_SETTINGS, f"profile {self.profile}"
            )

    # -- changes ------------------------------------------------------------------------------

    async def change(self, settings: SecuritySettings, what: str) -> None:
        """New credentials: stored and told as a security event; used from the next
        connection (the caller reconnects once its answer is out)."""
        await asyncio.to_thread(self.credentials.change, settings)
        self._failures = 0
        await self._events.record(SecurityEvent.RECONFIGURATION, what)

    def reconnect(self) -> None:
        """Use settings that changed on disk (a new client certificate) from now on."""
        self._failures = 0
        self._reconnect()

    def root_in_use(self, certificate: x509.Certificate) -> bool:
        """Whether the CSMS's certificate, as last seen, was issued under ``certificate``
        (the root relied on by the current connection, M04.FR.06)."""
        return self.profile >= 2 and self.server_issuer == certificate.subject


def basic_auth(charger_id: str, settings: SecuritySettings) -> str:
    """The Authorization header of Basic auth (RFC 7617): the id, a colon, the key's bytes."""
    token = base64.b64encode(charger_id.encode() + b":" + settings.password).decode("ascii")
    return f"Basic {token}"


def _without_userinfo(url: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=host))
