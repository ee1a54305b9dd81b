"""What the charge point does for each OCPP 1.6 Core and Local Auth List operation.

The handlers in :mod:`evsed.ocpp.v16.charge_point` only decode and answer; the decisions live
here, between the charger's port, the configuration keys and the authorization service.
Anything that takes time (stopping transactions before a reset) runs after the answer.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Any, Literal

from evsed.charging.events import StopReason
from evsed.charging.state import Settings
from evsed.ocpp.v16.configuration import ConfigurationKeys
from evsed.ocpp.v16.data_transfer import VendorExtensions
from evsed.ocpp.v16.metering import SUPPORTED_MEASURANDS
from evsed.ocpp.v16.reservations import V16Reservations
from evsed.port import Charger, Connector

if TYPE_CHECKING:
    from evsed.diagnostics.service import RemoteDiagnostics
    from evsed.ocpp.v16.firmware import FirmwareOperations
    from evsed.ocpp.v16.sessions import V16Sessions

log = logging.getLogger(__name__)

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

ResetType = Literal["Soft", "Hard"]


class CsmsOperations:
    """The charge point's side of the CSMS-initiated operations (OCPP 1.6 §5)."""

    def __init__(
        self,
        charger: Charger,
        sessions: V16Sessions,
        *,
        firmware: FirmwareOperations | None,
        extensions: VendorExtensions,
        diagnostics: RemoteDiagnostics,
    ) -> None:
        self._charger = charger
        self._sessions = sessions
        self._keys: ConfigurationKeys = sessions.keys
        self._tx = sessions.transactions
        self._auth = sessions.authorizer
        self.firmware = firmware  # None: [ota] disabled, the firmware actions are not served
        self.reservations = V16Reservations(charger, sessions.keys)
        self.extensions = extensions  # DataTransfer from the CSMS (§5.6)
        self.diagnostics = diagnostics  # GetDiagnostics (§5.9) and GetLog

    # -- remote start / stop (§5.11, §5.12) ---------------------------------------------------

    def _idle_connector(self, connector_id: int | None, id_tag: str) -> Connector | None:
        """An idle connector where ``id_tag`` may start: one reserved for someone else is not
        (§5.13; a remote start's idTag has no known group, so only the reserved tag itself)."""

        def usable(c: Connector) -> bool:
            return _idle(c) and self._charger.may_start(c.connector_id, id_tag)

        connectors = self._charger.connectors
        if connector_id is None:
            return next((c for c in connectors.values() if usable(c)), None)
        connector = connectors.get(connector_id)
        return connector if connector is not None and usable(connector) else None

    def remote_start_possible(self, connector_id: int | None, id_tag: str) -> bool:
        return self._idle_connector(connector_id, id_tag) is not None

    def remote_start_target(self, connector_id: int | None, id_tag: str) -> int | None:
        """The connector a remote start goes to (the one asked, or a free one)."""
        connector = self._idle_connector(connector_id, id_tag)
        return None if connector is None else connector.connector_id

    def remote_start(self, id_tag: str, connector_id: int | None) -> bool:
        connector = self._idle_connector(connector_id, id_tag)
        if connector is None:
            return False
        self._sessions.remote_started(connector.connector_id)
        connector.remote_start(id_tag)
        return True

    def remote_stop(self, transaction_id: int) -> bool:
        for connector_id, connector in self._charger.connectors.items():
            running = connector.state.tx_active
            if running and self._tx.csms_transaction_id(connector_id) == transaction_id:
                connector.request_stop(StopReason.REMOTE)
                return True
        return False

    # -- availability (§5.2) and reset (§5.14) ------------------------------------------------

    async def change_availability(self, connector_id: int, operative: bool) -> str:
        return str(await self._charger.change_availability(connector_id, operative))

    def reset(self, kind: ResetType) -> None:
        """Every transaction ends with reason Soft/HardReset, then the charger restarts."""
        self._charger.reset(kind)

    # -- unlock (§5.18) -----------------------------------------------------------------------

    async def unlock(self, connector_id: int) -> str:
        connector = self._charger.connectors.get(connector_id)
        if connector is None or not connector.state.settings.has_lock:
            return "NotSupported"
        return "Unlocked" if await connector.unlock() else "UnlockFailed"

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

    # -- keys that change the charging policy -------------------------------------------------

    def apply_key(self, key: str) -> None:
        if key in SESSION_KEYS:
            self.apply_session_keys()

    def apply_session_keys(self) -> None:
        """Give every connector the settings the OCPP keys say (at start and on a change)."""
        for connector in self._charger.connectors.values():
            connector.change_settings(settings_from_keys(connector.state.settings, self._keys))


def settings_from_keys(settings: Settings, keys: ConfigurationKeys) -> Settings:
    """``settings`` with the OCPP keys that override them applied."""
    return dataclasses.replace(
        settings,
        connection_timeout_s=float(keys.get_int("ConnectionTimeOut")),
        stop_on_ev_disconnect=keys.get_bool("StopTransactionOnEVSideDisconnect"),
        authorize_remote_tx_requests=keys.get_bool("AuthorizeRemoteTxRequests"),
        unlock_on_ev_disconnect=keys.get_bool("UnlockConnectorOnEVSideDisconnect"),
    )


def _idle(connector: Connector) -> bool:
    state = connector.state
    return (
        not state.tx_active
        and state.auth_tag is None
        and not state.blocking_faults
        and state.available
    )
