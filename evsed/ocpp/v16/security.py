"""The Security Whitepaper's operations in OCPP 1.6J: its configuration keys, certificates, the
charge point certificate, and the security events' message.

Configuration keys (whitepaper section 7), served beside the §9 keys:

- SecurityProfile (RW): only raised (A05.FR.01), and only when its prerequisites hold: an
  AuthorizationKey for 1 and 2 (A05.FR.02), a valid CentralSystemRootCertificate for 2 and 3
  (A05.FR.03), a valid charge point certificate for 3 (A05.FR.04); ``csms.allow_unencrypted``
  for 1 over ``ws://``. Accepted: the charger reconnects with it once the answer is out
  (A05.FR.06); a ``ws://`` URL is then used as ``wss://``.
- AuthorizationKey (W): 32 to 40 hexadecimal digits; never returned by GetConfiguration (it is
  listed as unknown when asked for), never logged (A01.FR.12); the change is in the security
  log (A01.FR.11) and the charger reconnects with it when profile 1 or 2 is in force.
- CpoName (RW), the O of certificate requests; CertificateSignedMaxChainSize (R, 10000),
  CertificateStoreMaxLength (R: root certificates of both kinds together),
  AdditionalRootCertificateCheck (R, false).

A key change that is not Accepted keeps the old credentials (A01 failure postcondition).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from ocpp.routing import after, on
from ocpp.v16 import call, call_result
from ocpp.v16.enums import Action

from evsed.config import Config
from evsed.ocpp.v16.calls import CsmsCalls
from evsed.security import client_certs
from evsed.security.certificates import CertificateHashData, CertificateStore
from evsed.security.client_certs import Identity, SignedCertificateError
from evsed.security.connection import ConnectionSecurity
from evsed.security.credentials import SecuritySettings, valid_authorization_key
from evsed.security.events import LoggedEvent, SecurityEvent, SecurityEvents
from evsed.store import kv
from evsed.store.db import Database

log = logging.getLogger(__name__)

SECURITY_PROFILE = "SecurityProfile"
AUTHORIZATION_KEY = "AuthorizationKey"
CPO_NAME = "CpoName"
MAX_CHAIN = "CertificateSignedMaxChainSize"
STORE_MAX = "CertificateStoreMaxLength"
ROOT_CHECK = "AdditionalRootCertificateCheck"
MAX_CHAIN_CHARS = 10000
MAX_ROOTS = 20
MAX_CPO_NAME = 64
CPO_NAME_KV = "security.cpo_name"
CSMS_ROOT = "CentralSystemRootCertificate"
MANUFACTURER_ROOT = "ManufacturerRootCertificate"
RENEWAL_CHECK_S = 6 * 3600.0
ONLINE_POLL_S = 2.0
INVALID_EVERY_S = 600.0  # at most one InvalidMessages / AttemptedReplayAttacks event per this
# Read-only keys and their values (the writable ones are computed).
_FIXED = {MAX_CHAIN: str(MAX_CHAIN_CHARS), STORE_MAX: str(MAX_ROOTS), ROOT_CHECK: "false"}
# The whitepaper's keys, in the order GetConfiguration lists them.
KEYS = (SECURITY_PROFILE, AUTHORIZATION_KEY, CPO_NAME, MAX_CHAIN, STORE_MAX, ROOT_CHECK)


def key_access(name: str) -> str:
    """How the CSMS may use one of :data:`KEYS`: "R" (read-only), "RW", or "W" for the
    write-only AuthorizationKey (never returned by GetConfiguration, A01.FR.12)."""
    if name == AUTHORIZATION_KEY:
        return "W"
    return "R" if name in _FIXED else "RW"


class SecurityOperations:
    def __init__(
        self,
        config: Config,
        db: Database,
        connection: ConnectionSecurity,
        manufacturer_roots: CertificateStore,
        events: SecurityEvents,
        calls: CsmsCalls,
        *,
        now: Callable[[], datetime],
    ) -> None:
        self._config = config
        self._db = db
        self.connection = connection
        self._stores = {CSMS_ROOT: connection.roots, MANUFACTURER_ROOT: manufacturer_roots}
        self.events = events
        self._calls = calls
        self._now = now
        stored = kv.get(db, CPO_NAME_KV)
        self.cpo_name = stored if stored is not None else config.csms.cpo_name
        self.reconnect_after_answer = False
        self.max_message_bytes = config.csms.max_message_bytes
        self.invalid_messages = 0
        self.replays = 0
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- hostile input -----------------------------------------------------------------------

    def invalid_message(self, what: str) -> None:
        """A frame from the CSMS that is not a valid OCPP message (it was answered with a
        CALLERROR where it could be): counted, and a security event now and then."""
        self.invalid_messages += 1
        self.events.record_limited(
            SecurityEvent.INVALID_MESSAGES,
            "invalid-messages",
            f"{self.invalid_messages} invalid message(s) from the CSMS; the last: {what}",
            every_s=INVALID_EVERY_S,
        )

    def replayed(self, action: str) -> None:
        """A CALL that reused the message id of an earlier, different CALL."""
        self.replays += 1
        self.events.record_limited(
            SecurityEvent.REPLAY_ATTACK,
            "replay",
            f"{self.replays} CALL(s) reused an earlier message id; the last: {action[:40]}",
            every_s=INVALID_EVERY_S,
        )

    # -- configuration keys -------------------------------------------------------------------

    def owns(self, key: str) -> bool:
        return key.casefold() in {k.casefold() for k in KEYS}

    def entries(self, requested: list[str] | None) -> tuple[list[dict[str, Any]], list[str]]:
        """GetConfiguration entries of our keys: all readable ones for None, else the ones
        asked for (AuthorizationKey is write-only: unknown)."""
        names = [k for k in KEYS if key_access(k) != "W"]
        if requested is not None:
            folded = {r.casefold() for r in requested}
            names = [k for k in names if k.casefold() in folded]
        return [self._entry(name) for name in names], []

    def _entry(self, name: str) -> dict[str, Any]:
        if name == SECURITY_PROFILE:
            value = str(self.connection.profile)
        elif name == CPO_NAME:
            value = self.cpo_name
        else:
            value = _FIXED[name]
        return {"key": name, "readonly": key_access(name) == "R", "value": value}

    async def change_key(self, key: str, value: str) -> str:
        name = next(k for k in KEYS if k.casefold() == key.casefold())
        if key_access(name) == "R":
            return "Rejected"
        if name == CPO_NAME:
            return await self._change_cpo_name(value)
        if name == AUTHORIZATION_KEY:
            return await self._change_authorization_key(value)
        return await self._change_profile(value)

    async def _change_cpo_name(self, value: str) -> str:
        if not value or len(value) > MAX_CPO_NAME or not value.isprintable():
            return "Rejected"
        await asyncio.to_thread(kv.put, self._db, CPO_NAME_KV, value)
        self.cpo_name = value
        await self.events.record(SecurityEvent.RECONFIGURATION, f"CpoName set to {value}")
        return "Accepted"

    async def _change_authorization_key(self, value: str) -> str:
        if not valid_authorization_key(value):
            log.info("ChangeConfiguration AuthorizationKey: rejected, not 16 to 20 bytes in hex")
            return "Rejected"
        active = self.connection.credentials.active
        settings = SecuritySettings(active.profile, value.upper())
        await self.connection.change(settings, "AuthorizationKey changed")
        self.reconnect_after_answer = active.profile in (1, 2)
        return "Accepted"

    async def _change_profile(self, value: str) -> str:
        if not value.isdigit() or int(value) not in (1, 2, 3):
            return "Rejected"
        wanted = int(value)
        problem = await asyncio.to_thread(self._profile_problem, wanted)
        if problem:
            log.info("ChangeConfiguration SecurityProfile %d: rejected, %s", wanted, problem)
            return "Rejected"
        active = self.connection.credentials.active
        await self.connection.change(
            SecuritySettings(wanted, active.authorization_key),
            f"security profile raised from {active.profile} to {wanted}",
        )
        self.reconnect_after_answer = True
        return "Accepted"

    def _profile_problem(self, wanted: int) -> str:
        active = self.connection.credentials.active
        url = self._config.csms.url
        if wanted <= active.profile:
            return f"not above the profile in force ({active.profile})"
        if wanted in (1, 2) and not active.authorization_key:
            return "no AuthorizationKey is set"
        if wanted == 1 and url.startswith("ws://") and not self._config.csms.allow_unencrypted:
            return "csms.allow_unencrypted is false"
        now = self._now()
        if wanted >= 2 and not any(
            c.not_valid_before_utc <= now < c.not_valid_after_utc
            for c in self.connection.roots.roots()
        ):
            return "no valid CentralSystemRootCertificate is installed"
        if wanted == 3 and not self._client_certificate_valid():
            return "no valid charge point certificate is installed"
        return ""

    def _client_certificate_valid(self) -> bool:
        directory = self.connection.credentials.directory
        if client_certs.new_pair(directory, self._now()) is not None:
            return True
        cert, key = self.connection.credentials.client_cert, self.connection.credentials.client_key
        if cert is None or key is None or not cert.exists() or not key.exists():
            return False
        return client_certs.expiry(cert) > self._now()

    # -- root certificates (M03, M04, M05) ----------------------------------------------------

    async def install_certificate(self, kind: str, pem: str) -> str:
        store = self._stores.get(kind)
        if store is None:
            return "Rejected"
        total = sum(len(s.roots()) for s in self._stores.values())
        if total >= MAX_ROOTS:
            log.warning("InstallCertificate rejected: %d root certificates installed", total)
            return "Rejected"
        status = await asyncio.to_thread(store.install, pem)
        if status == "Accepted":
            await self.events.record(LoggedEvent.CERTIFICATE_INSTALLED, kind)
        elif status == "Rejected" and kind == CSMS_ROOT:
            # OCA TC_078: a CSMS root that cannot be used is a security event.
            await self.events.record(
                SecurityEvent.INVALID_CSMS_CERTIFICATE, "InstallCertificate: not a usable root"
            )
        return status

    def installed(self, kind: str) -> tuple[str, list[dict[str, str]]]:
        store = self._stores.get(kind)
        hashes = [h.to_ocpp() for h in store.list_hashes()] if store is not None else []
        return ("Accepted" if hashes else "NotFound"), hashes

    async def delete_certificate(self, data: dict[str, Any]) -> str:
        wanted = CertificateHashData(
            issuer_name_hash=str(data["issuer_name_hash"]),
            issuer_key_hash=str(data["issuer_key_hash"]),
            serial_number=str(data["serial_number"]),
            hash_algorithm=str(data["hash_algorithm"]),
        )
        roots = self.connection.roots

        def in_use(certificate: Any) -> bool:
            last = len(roots.roots()) <= 1 and self.connection.profile >= 2
            return last or self.connection.root_in_use(certificate)

        for kind, store in self._stores.items():
            protect = in_use if kind == CSMS_ROOT else (lambda _: False)
            status = await asyncio.to_thread(store.delete, wanted, protect)
            if status != "NotFound":
                if status == "Accepted":
                    await self.events.record(LoggedEvent.CERTIFICATE_DELETED, kind)
                return status
        return "NotFound"

    # -- the charge point certificate (A02, A03) ----------------------------------------------

    def identity(self) -> Identity:
        charger = self._config.charger
        return Identity(charger.serial_number or charger.id, self.cpo_name)

    def can_request_certificate(self) -> bool:
        return bool(self.cpo_name)

    def request_certificate_later(self, why: str) -> None:
        task = asyncio.create_task(self.request_certificate(why))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def request_certificate(self, why: str) -> bool:
        """A new key pair and SignCertificate.req; True when the CSMS accepted the request."""
        directory = self.connection.credentials.directory
        csr = await asyncio.to_thread(client_certs.new_request, directory, self.identity())
        await self.events.record(LoggedEvent.CHARGE_POINT_CERTIFICATE_REQUESTED, why)
        answer = await self._calls.call_now(call.SignCertificate(csr=csr))
        accepted = answer is not None and answer.status == "Accepted"
        if not accepted:
            log.warning("SignCertificate was not accepted by the CSMS (%s)", why)
        return accepted

    async def certificate_signed(self, chain: str) -> str:
        if len(chain) > MAX_CHAIN_CHARS:
            await self.events.record(
                SecurityEvent.INVALID_CHARGE_POINT_CERTIFICATE,
                f"certificate chain of {len(chain)} characters (at most {MAX_CHAIN_CHARS})",
            )
            return "Rejected"
        directory = self.connection.credentials.directory
        try:
            certificates = await asyncio.to_thread(
                client_certs.check_signed,
                directory,
                chain,
                self.connection.roots.roots(),
                self.identity(),
                self._now(),
            )
        except SignedCertificateError as exc:
            await self.events.record(SecurityEvent.INVALID_CHARGE_POINT_CERTIFICATE, str(exc))
            return "Rejected"
        await asyncio.to_thread(client_certs.install_signed, directory, certificates)
        log.info(
            "charge point certificate received, valid until %s", certificates[0].not_valid_after_utc
        )
        if self.connection.profile == 3:
            self.reconnect_after_answer = True
        else:
            await asyncio.to_thread(client_certs.promote, directory)
            await self.events.record(LoggedEvent.CHARGE_POINT_CERTIFICATE_INSTALLED, "stored")
        return "Accepted"

    async def watch_expiry(self) -> None:
        """Ask for a new charge point certificate a month before the one in use expires
        (A03): checked once connected, then every few hours."""
        while True:
            while not self._calls.online:
                await asyncio.sleep(ONLINE_POLL_S)
            cert = self.connection.credentials.client_cert
            due = await asyncio.to_thread(client_certs.renewal_due, cert, self._now())
            if due and self.can_request_certificate():
                await self.request_certificate("the charge point certificate expires soon")
            await asyncio.sleep(RENEWAL_CHECK_S)

    def answered(self) -> None:
        """A ChangeConfiguration or CertificateSigned answer went out: reconnect if it asked
        for new settings."""
        if self.reconnect_after_answer:
            self.reconnect_after_answer = False
            self.connection.reconnect()


class SecurityHandlers:
    """Mixed into :class:`evsed.ocpp.v16.charge_point.V16ChargePoint`."""

    _security: SecurityOperations

    @on(Action.install_certificate)
    async def on_install_certificate(
        self, certificate_type: str, certificate: str, **_: Any
    ) -> call_result.InstallCertificate:
        status = await self._security.install_certificate(certificate_type, certificate)
        return call_result.InstallCertificate(status=status)

    @on(Action.get_installed_certificate_ids)
    def on_get_installed_certificate_ids(
        self, certificate_type: str, **_: Any
    ) -> call_result.GetInstalledCertificateIds:
        status, hashes = self._security.installed(certificate_type)
        return call_result.GetInstalledCertificateIds(
            status=status, certificate_hash_data=hashes or None
        )

    @on(Action.delete_certificate)
    async def on_delete_certificate(
        self, certificate_hash_data: dict[str, Any], **_: Any
    ) -> call_result.DeleteCertificate:
        status = await self._security.delete_certificate(certificate_hash_data)
        return call_result.DeleteCertificate(status=status)

    @on(Action.certificate_signed)
    async def on_certificate_signed(
        self, certificate_chain: str, **_: Any
    ) -> call_result.CertificateSigned:
        status = await self._security.certificate_signed(certificate_chain)
        return call_result.CertificateSigned(status=status)

    @after(Action.certificate_signed)
    def after_certificate_signed(self, **_: Any) -> None:
        self._security.answered()
