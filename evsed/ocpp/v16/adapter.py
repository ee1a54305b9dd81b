"""The OCPP 1.6J adapter, built in dependency order.

First its session side (:class:`~evsed.ocpp.v16.sessions.V16Sessions`: configuration keys,
authorization, transaction recording), which the charger's connectors need and which needs
nothing of the charger. Then, once the charger exists, the client: operations, statuses, the
outbox's delivery, meter sampling, triggered messages, and the session loop on the websocket.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from evsed.config import Config
from evsed.diagnostics.service import RemoteDiagnostics
from evsed.ocpp.transport import CsmsLink
from evsed.ocpp.v16.data_transfer import DataTransferAnswer, DataTransfers, VendorExtensions
from evsed.ocpp.v16.delivery import OutboxDelivery
from evsed.ocpp.v16.firmware import FirmwareOperations
from evsed.ocpp.v16.operations import CsmsOperations
from evsed.ocpp.v16.pricing import Pricing
from evsed.ocpp.v16.sampler import MeterSampler
from evsed.ocpp.v16.security import SecurityOperations
from evsed.ocpp.v16.service import OcppV16Service, boot_request
from evsed.ocpp.v16.sessions import V16Sessions
from evsed.ocpp.v16.smart_charging import SmartCharging
from evsed.ocpp.v16.statuses import StatusReporter
from evsed.ocpp.v16.trigger import TriggeredMessages
from evsed.ota.manager import FirmwareManager
from evsed.ota.state import FirmwareStatus
from evsed.port import Charger, CsmsSessions
from evsed.security.certificates import CertificateStore
from evsed.security.services import SecurityServices
from evsed.store.db import Database
from evsed.store.health import StorageHealth
from evsed.store.outbox import Outbox
from evsed.tasks import cancel_and_wait

log = logging.getLogger(__name__)

SUBPROTOCOL = "ocpp1.6"  # OCPP-J 1.6 §3.1.2


class V16Adapter:
    """The factory the adapter registry hands out for ``csms.protocol = "ocpp1.6"``."""

    protocol = SUBPROTOCOL

    def sessions(
        self,
        config: Config,
        db: Database,
        storage: StorageHealth,
        outbox: Outbox,
        *,
        now: Callable[[], datetime],
    ) -> V16Sessions:
        return V16Sessions(config, db, storage, outbox, now=now)

    def client(
        self,
        config: Config,
        charger: Charger,
        sessions: CsmsSessions,
        outbox: Outbox,
        storage: StorageHealth,
        *,
        firmware: tuple[FirmwareManager, CertificateStore] | None,
        security: SecurityServices,
        diagnostics: RemoteDiagnostics,
        firmware_version: str,
        now: Callable[[], datetime],
    ) -> V16Client:
        assert isinstance(sessions, V16Sessions), "sessions of another OCPP version"
        return V16Client(
            config,
            charger,
            sessions,
            outbox,
            storage,
            firmware=firmware,
            security=security,
            diagnostics=diagnostics,
            firmware_version=firmware_version,
            now=now,
        )


class V16Client:
    """The charger's OCPP 1.6J client (implements :class:`evsed.ocpp.adapters.CsmsClient`)."""

    def __init__(
        self,
        config: Config,
        charger: Charger,
        sessions: V16Sessions,
        outbox: Outbox,
        storage: StorageHealth,
        *,
        firmware: tuple[FirmwareManager, CertificateStore] | None,
        security: SecurityServices,
        diagnostics: RemoteDiagnostics,
        firmware_version: str,
        now: Callable[[], datetime],
        wall_seconds: Callable[[], float] = time.time,
    ) -> None:
        keys = sessions.keys
        self._sessions = sessions
        self._outbox = outbox
        self.link = CsmsLink(
            csms_url(config),
            subprotocol=SUBPROTOCOL,
            reconnect_min_s=config.csms.reconnect_min_s,
            reconnect_max_s=config.csms.reconnect_max_s,
            ping_interval_s=keys.get_int("WebSocketPingInterval"),
            security=security.connection,
            max_message_bytes=config.csms.max_message_bytes,
        )
        self.security = SecurityOperations(
            config,
            security.db,
            security.connection,
            security.manufacturer_roots,
            security.events,
            sessions.calls,
            now=now,
        )
        self._firmware = (
            FirmwareOperations(firmware[0], firmware[1], now=now) if firmware is not None else None
        )
        self.delivery = OutboxDelivery(
            outbox, storage, keys, sessions.transactions, sessions.authorizer, charger
        )
        self.statuses = StatusReporter(
            charger,
            keys,
            storage,
            messages_sent=self._messages_sent,
            call_timeout_s=config.csms.call_timeout_s,
            now=now,
        )
        sessions.on_local_list_conflict(self.statuses.local_list_conflict)
        self._charger = charger
        self.sampler = MeterSampler(
            charger.connectors, sessions.transactions, outbox, keys, now, sessions.meter_values
        )
        # Vendor extensions (DataTransfer, §5.6): the pricing whitepaper's costmsg.
        extensions = VendorExtensions()
        self.pricing = Pricing(charger, keys, sessions.transactions)
        self.pricing.register(extensions)
        self.pricing.apply_default_price()
        self.data_transfers = DataTransfers(sessions.calls)
        self.ops = CsmsOperations(
            charger,
            sessions,
            firmware=self._firmware,
            extensions=extensions,
            diagnostics=diagnostics,
        )
        self.service = OcppV16Service(
            config,
            self.link,
            sessions.calls,
            keys,
            self.ops,
            TriggeredMessages(
                sessions.calls,
                charger.connectors,
                sessions.meter_values,
                statuses=self.statuses,
                transactions=sessions.transactions,
                boot_request=functools.partial(boot_request, config, firmware_version),
                firmware_status=self._firmware_status,
                certificates=self.security,
                diagnostics_status=diagnostics.diagnostics_status,
                log_status=diagnostics.log_status,
                now=now,
            ),
            SmartCharging(charger, keys, sessions.transactions, now=wall_seconds),
            self.security,
            self.statuses,
            self.delivery,
            firmware_version=firmware_version,
            frames=diagnostics.frames,
        )
        self.ops.apply_session_keys()
        self._loop = asyncio.get_running_loop()
        keys.subscribe(self._key_set)
        self._tasks: list[asyncio.Task[None]] = []

    # -- evsed.ocpp.adapters.CsmsClient -------------------------------------------------------

    async def run(self) -> None:
        self._tasks = [
            asyncio.create_task(self.service.run(), name="ocpp"),
            asyncio.create_task(self.sampler.run(), name="sampler"),
            asyncio.create_task(self.security.watch_expiry(), name="certificate-expiry"),
        ]
        await asyncio.gather(*self._tasks)

    async def drain(self, timeout: float) -> None:
        """Give queued messages and status changes a moment to reach the CSMS before the
        daemon stops; what does not make it goes out after the restart."""
        if not self._sessions.calls.online:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        store = self._outbox.store
        while loop.time() < deadline and (
            await asyncio.to_thread(store.pending) > 0 or self.statuses.pending
        ):
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        await self.link.close()
        await cancel_and_wait(self._tasks)

    def snapshot(self) -> dict[str, Any]:
        return {
            "protocol": SUBPROTOCOL,
            "url": self.link.display_url,
            "connection": str(self.link.state),
            "registration": self._sessions.calls.registration,
            "last_error": self.link.last_error,
            "security_profile": self.security.connection.profile,
        }

    def connector_status(self, connector_id: int) -> tuple[str, str]:
        return self.statuses.current_status(connector_id)

    def transaction_id(self, connector_id: int) -> int | None:
        return self._sessions.transactions.csms_transaction_id(connector_id)

    def set_network(self, up: bool) -> None:
        self.link.set_network(up)

    async def vendor_data(
        self, vendor_id: str, message_id: str | None, data: str | None
    ) -> tuple[str, str | None] | None:
        answer: DataTransferAnswer | None = await self.data_transfers.send(
            vendor_id, message_id, data
        )
        return None if answer is None else (answer.status, answer.data)

    # -- inside -------------------------------------------------------------------------------

    async def _messages_sent(self) -> None:
        await asyncio.gather(*(c.settled() for c in self._charger.connectors.values()))
        await self._outbox.idle()

    def _firmware_status(self) -> tuple[FirmwareStatus, int | None]:
        return self._firmware.status() if self._firmware else (FirmwareStatus.IDLE, None)

    def _key_set(self, key: str, _value: str) -> None:
        # Called in whichever thread changed the key (ChangeConfiguration runs in a worker).
        self._loop.call_soon_threadsafe(self._key_changed, key)

    def _key_changed(self, key: str) -> None:
        self.ops.apply_key(key)
        self.pricing.key_changed(key)
        self.service.key_changed(key)
        self.sampler.key_changed(key)


def csms_url(config: Config) -> str:
    """The configured URL with the charger id appended (OCPP-J 1.6 §3.1.1)."""
    return config.csms.url.rstrip("/") + "/" + config.charger.id


ADAPTER = V16Adapter()
