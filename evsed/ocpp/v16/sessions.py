"""The OCPP 1.6 adapter's session side: what the charger's connectors ask of the CSMS client.

It needs nothing of the charger, so it is built first, and the charger is built with it:
authorizing id tags (Authorize, the cache and the local list, §3.5, §4.1), deciding whether a
presented tag may stop a transaction (same parentIdTag, §3.5.1), and recording transactions
with their 1.6 messages. It also owns the configuration keys and the connection holder, which
the rest of the adapter (built once the charger exists) shares.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from evsed.charging.events import StopReason
from evsed.config import Config
from evsed.ocpp.v16.authorization import Authorizer
from evsed.ocpp.v16.calls import CsmsCalls
from evsed.ocpp.v16.charge_point import served_actions, supported_profiles
from evsed.ocpp.v16.configuration import ConfigurationKeys
from evsed.ocpp.v16.metering import SUPPORTED_MEASURANDS, MeterValueBuilder
from evsed.ocpp.v16.pricing import languages, pricing_keys
from evsed.ocpp.v16.settings import KeyAuthSettings, key_defaults
from evsed.ocpp.v16.transactions import V16Transactions
from evsed.store.auth import AuthStore
from evsed.store.db import Database
from evsed.store.health import StorageHealth
from evsed.store.outbox import Outbox
from evsed.store.transactions import TransactionRecord
from hal.types import MeterReading

log = logging.getLogger(__name__)


class V16Sessions:
    """Implements :class:`evsed.port.CsmsSessions` for OCPP 1.6."""

    def __init__(
        self,
        config: Config,
        db: Database,
        storage: StorageHealth,
        outbox: Outbox,
        *,
        now: Callable[[], datetime],
    ) -> None:
        self.keys = ConfigurationKeys(
            db,
            defaults=key_defaults(config),
            number_of_connectors=len(config.connectors),
            supported_profiles=supported_profiles(
                served_actions(firmware_updates=config.ota.enabled)
            ),
            measurands=SUPPORTED_MEASURANDS,
            extra_keys=pricing_keys(languages(config.pricing.languages)),
        )
        self.calls = CsmsCalls()
        self.meter_values = MeterValueBuilder(
            self.keys.get_csl, {c.id: c.phases for c in config.connectors}
        )
        self.transactions = V16Transactions(
            outbox, wall_clock=now, meter_values=self.meter_values, storage=storage
        )
        self.authorizer = Authorizer(
            AuthStore(db),
            KeyAuthSettings(self.keys),
            ask_csms=self.calls.authorize,
            online=self.calls.is_online,
            now=now,
            on_local_list_conflict=self._local_list_conflict,
        )
        self._parents: dict[int, str | None] = {}  # connector -> parentIdTag of its session
        self._conflict_listeners: list[Callable[[str], None]] = []

    @property
    def registered(self) -> bool:
        return self.calls.registered

    def on_local_list_conflict(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(id_tag)`` when the CSMS contradicts the local list (§3.5.2)."""
        self._conflict_listeners.append(listener)

    def remote_started(self, connector_id: int) -> None:
        """A remote start was accepted: the session has no local parentIdTag."""
        self._parents[connector_id] = None

    # -- evsed.port.SessionHost ---------------------------------------------------------------

    async def authorize(self, connector_id: int, id_tag: str) -> bool:
        decision = await self.authorizer.authorize(id_tag)
        if decision.accepted:
            self._parents[connector_id] = decision.parent_id_tag
        log.info(
            "connector %d: authorization %s (%s)",
            connector_id,
            decision.status,
            decision.source,
            extra={"connector": connector_id},
        )
        return decision.accepted

    async def may_stop(self, connector_id: int, started_tag: str, presented_tag: str) -> bool:
        parent = self._parents.get(connector_id)
        allowed = await self.authorizer.may_stop(started_tag, parent, presented_tag)
        if allowed:
            # §6.51: StopTransaction.req carries the idTag that requested the stop.
            self.transactions.stopped_by(connector_id, presented_tag)
        return allowed

    async def start(
        self,
        connector_id: int,
        id_tag: str,
        reading: MeterReading | None,
        reservation_id: int | None = None,
    ) -> None:
        await self.transactions.start(connector_id, id_tag, reading, reservation_id)

    def group_of(self, connector_id: int) -> str | None:
        return self._parents.get(connector_id)

    async def stop(
        self, connector_id: int, reason: StopReason, reading: MeterReading | None
    ) -> None:
        await self.transactions.stop(connector_id, reason, reading)

    def transaction_open(self, connector_id: int) -> bool:
        return self.transactions.transaction_open(connector_id)

    async def stop_left_open(
        self, record: TransactionRecord, reason: StopReason, reading: MeterReading | None
    ) -> None:
        await self.transactions.stop_left_open(record, reason, reading)

    def _local_list_conflict(self, id_tag: str) -> None:
        for listener in list(self._conflict_listeners):
            listener(id_tag)
