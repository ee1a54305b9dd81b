"""What the charge point does for each OCPP 1.6 Core and Local Auth List operation.

The handlers in :mod:`evsed.ocpp.v16.charge_point` only decode and answer; the decisions live
here, next to the connectors, the configuration keys and the authorization service. Anything
that takes time (stopping transactions before a reset) runs as a task after the answer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from typing import Any, Literal

from evsed.charging.events import (
    AvailabilityChanged,
    RemoteStartRequested,
    SettingsChanged,
    StopReason,
    StopRequested,
)
from evsed.charging.state import Settings
from evsed.connector import ConnectorRunner
from evsed.ocpp.v16.authorization import Authorizer
from evsed.ocpp.v16.configuration import ConfigurationKeys
from evsed.ocpp.v16.metering import SUPPORTED_MEASURANDS
from evsed.ocpp.v16.transactions import V16Transactions

log = logging.getLogger(__name__)

RESET_STOP_WAIT_S = 10.0  # EV_STOP_GRACE_S plus margin: transactions end before the restart
MEASURAND_KEYS = frozenset(
    {"MeterValuesSampledData", "MeterValuesAlignedData", "StopTxnSampledData", "StopTxnAlignedData"}
)
# Keys whose value the connectors' state machines use (see settings_from_keys).
SESSION_KEYS = frozenset(
    {
        "ConnectionTimeOut",
        "StopTransactionOnEVSideDisconnect",
        "AuthorizeRemoteTxRequests",
        "UnlockConnectorOnEVSideDisconnect",
    }
)

ResetType = Literal["Soft", "Hard", "Reboot"]  # Reboot: after a firmware install


class CsmsOperations:
    """The charge point's side of the CSMS-initiated operations (OCPP 1.6 §5)."""

    def __init__(
        self,
        connectors: dict[int, ConnectorRunner],
        transactions: V16Transactions,
        keys: ConfigurationKeys,
        authorizer: Authorizer,
        *,
        csms_transaction_id: Callable[[int], int | None],
        persist_availability: Callable[[int, bool], None],
        request_restart: Callable[[ResetType], None],
    ) -> None:
        self._connectors = connectors
        self._tx = transactions
        self._keys = keys
        self._auth = authorizer
        self._csms_tx_id = csms_transaction_id
        self._persist_availability = persist_availability
        self._request_restart = request_restart
        self._parents: dict[int, str | None] = {}  # connector -> parentIdTag of its session
        self.firmware: Any = None  # FirmwareOperations when firmware updates are enabled
        # ChangeAvailability for connectorId 0: the Charge Point as a whole (§5.2). It is
        # persisted as connector 0 through persist_availability; the composition root sets it
        # back at start-up, as it does for the connectors.
        self.charge_point_operative = True
        self._charge_point_listeners: list[Callable[[], None]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    # -- authorization, for the connectors ----------------------------------------------------

    async def authorize(self, connector_id: int, id_tag: str) -> bool:
        decision = await self._auth.authorize(id_tag)
        if decision.accepted:
            self._parents[connector_id] = decision.parent_id_tag
        log.info(
            "connector %d: authorization %s (%s)", connector_id, decision.status, decision.source
        )
        return decision.accepted

    async def may_stop(self, connector_id: int, presented_tag: str) -> bool:
        started = self._connectors[connector_id].state.auth_tag
        if started is None:
            return False
        allowed = await self._auth.may_stop(started, self._parents.get(connector_id), presented_tag)
        if allowed:
            # §6.51: StopTransaction.req carries the idTag that requested the stop.
            self._tx.stopped_by(connector_id, presented_tag)
        return allowed

    # -- remote start / stop (§5.11, §5.12) ---------------------------------------------------

    def _idle_connector(self, connector_id: int | None) -> ConnectorRunner | None:
        if connector_id is None:
            return next((r for r in self._connectors.values() if _idle(r)), None)
        runner = self._connectors.get(connector_id)
        return runner if runner is not None and _idle(runner) else None

    def remote_start_possible(self, connector_id: int | None) -> bool:
        return self._idle_connector(connector_id) is not None

    def remote_start(self, id_tag: str, connector_id: int | None) -> bool:
        runner = self._idle_connector(connector_id)
        if runner is None:
            return False
        self._parents[runner.connector_id] = None
        runner.feed(RemoteStartRequested(id_tag))
        return True

    def remote_stop(self, transaction_id: int) -> bool:
        for connector_id, runner in self._connectors.items():
            if self._csms_tx_id(connector_id) == transaction_id and runner.state.tx_active:
                runner.feed(StopRequested(StopReason.REMOTE))
                return True
        return False

    # -- availability (§5.2) ------------------------------------------------------------------

    def on_charge_point_availability(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` when ChangeAvailability changed the Charge Point as a whole."""
        self._charge_point_listeners.append(listener)

    async def change_availability(self, connector_id: int, operative: bool) -> str:
        """§5.2. Connector 0 is the Charge Point and every connector; a connector with a
        transaction becomes Inoperative once it has ended (Scheduled)."""
        if connector_id == 0:
            runners = list(self._connectors.values())
        elif connector_id in self._connectors:
            runners = [self._connectors[connector_id]]
        else:
            return "Rejected"
        changed: list[int] = []
        if connector_id == 0 and self.charge_point_operative != operative:
            self.charge_point_operative = operative
            changed.append(0)
            for listener in list(self._charge_point_listeners):
                listener()
        scheduled = False
        for runner in runners:
            if runner.state.available == operative and not runner.state.unavailable_after_tx:
                continue
            runner.feed(AvailabilityChanged(operative))
            changed.append(runner.connector_id)
            scheduled = scheduled or runner.state.unavailable_after_tx
        # Written before the answer (it must survive a restart), off the event loop.
        for changed_id in changed:
            await asyncio.to_thread(self._persist_availability, changed_id, operative)
        return "Scheduled" if scheduled else "Accepted"

    # -- reset (§5.14) ------------------------------------------------------------------------

    def reset(self, kind: ResetType) -> str:
        task = asyncio.create_task(self._reset(kind))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return "Accepted"

    async def _reset(self, kind: ResetType) -> None:
        """Stop every transaction with reason Soft/HardReset, wait for them to end, restart."""
        reason = StopReason.SOFT_RESET if kind == "Soft" else StopReason.HARD_RESET
        for runner in self._connectors.values():
            if runner.state.tx_active:
                runner.feed(StopRequested(reason))
        try:
            async with asyncio.timeout(RESET_STOP_WAIT_S):
                while any(r.state.tx_active for r in self._connectors.values()):
                    await asyncio.sleep(0.1)
                await asyncio.gather(*(r.settled() for r in self._connectors.values()))
        except TimeoutError:
            log.warning("reset: transactions did not end in time; restarting anyway")
        log.warning("%s reset requested by the CSMS", kind)
        self._request_restart(kind)

    # -- unlock (§5.18) -----------------------------------------------------------------------

    async def unlock(self, connector_id: int) -> str:
        runner = self._connectors.get(connector_id)
        if runner is None or not runner.state.settings.has_lock:
            return "NotSupported"
        return "Unlocked" if await runner.unlock() else "UnlockFailed"

    # -- configuration (§5.3, §5.8) -----------------------------------------------------------

    def get_configuration(self, keys: list[str] | None) -> tuple[list[Any], list[str]]:
        return self._keys.get_configuration(keys)

    def change_configuration(self, key: str, value: str) -> str:
        canonical = next((k for k in MEASURAND_KEYS if k.lower() == key.lower()), None)
        if canonical is not None:
            members = [m.strip() for m in value.split(",") if m.strip()]
            unsupported = [m for m in members if m.rsplit(".L", 1)[0] not in SUPPORTED_MEASURANDS]
            if unsupported:
                log.info("ChangeConfiguration %s: unsupported measurands %s", key, unsupported)
                return "Rejected"
        return self._keys.change(key, value)

    # -- cache and local list (§5.4, §5.10, §5.15) -------------------------------------------

    async def clear_cache(self) -> str:
        return "Accepted" if await self._auth.clear_cache() else "Rejected"

    async def get_local_list_version(self) -> int:
        return await self._auth.local_list_version()

    async def send_local_list(
        self, version: int, update_type: str, entries: list[dict[str, Any]]
    ) -> str:
        return await self._auth.send_local_list(version, update_type, entries)

    # -- data transfer (§5.6) -----------------------------------------------------------------

    def data_transfer(self, vendor_id: str, message_id: str | None) -> str:
        """No vendor extensions are built in: every vendor is unknown (§5.6)."""
        log.info("DataTransfer from the CSMS for vendor %r message %r", vendor_id, message_id)
        return "UnknownVendorId"

    # -- keys that change the charging policy -------------------------------------------------

    def apply_key(self, key: str) -> None:
        if key in SESSION_KEYS:
            for runner in self._connectors.values():
                runner.feed(SettingsChanged(settings_from_keys(runner, self._keys)))


def settings_from_keys(runner: ConnectorRunner, keys: ConfigurationKeys) -> Settings:
    """The runner's settings with the OCPP keys that override them applied."""
    return dataclasses.replace(
        runner.state.settings,
        connection_timeout_s=float(keys.get_int("ConnectionTimeOut")),
        stop_on_ev_disconnect=keys.get_bool("StopTransactionOnEVSideDisconnect"),
        authorize_remote_tx_requests=keys.get_bool("AuthorizeRemoteTxRequests"),
        unlock_on_ev_disconnect=keys.get_bool("UnlockConnectorOnEVSideDisconnect"),
    )


def _idle(runner: ConnectorRunner) -> bool:
    state = runner.state
    return (
        not state.tx_active
        and state.auth_tag is None
        and not state.blocking_faults
        and state.available
    )
