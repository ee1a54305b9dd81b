"""The CSMS adapters, one per OCPP version, chosen by ``csms.protocol``.

This registry is the only place outside an adapter's own package that names it: the rest of the
daemon sees the version-neutral :class:`Adapter` and :class:`CsmsClient` here and the charger's
port (:mod:`evsed.port`). Adding OCPP 2.0.1 is one more entry.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from evsed.port import Charger, CsmsSessions

if TYPE_CHECKING:
    from evsed.config import Config
    from evsed.diagnostics.service import RemoteDiagnostics
    from evsed.ota.manager import FirmwareManager
    from evsed.security.certificates import CertificateStore
    from evsed.security.services import SecurityServices
    from evsed.store.db import Database
    from evsed.store.health import StorageHealth
    from evsed.store.outbox import Outbox

# csms.protocol -> the module whose ADAPTER builds that version's client
ADAPTERS = {"ocpp1.6": "evsed.ocpp.v16.adapter"}


class CsmsClient(Protocol):
    """A CSMS client as the daemon runs and shows it."""

    async def run(self) -> None: ...

    async def drain(self, timeout: float) -> None:
        """Let queued messages out before the daemon stops (bounded by ``timeout``)."""

    async def close(self) -> None: ...

    def snapshot(self) -> dict[str, Any]:
        """For ``evsectl status``: protocol, url (no password), connection, registration."""

    def connector_status(self, connector_id: int) -> tuple[str, str]:
        """The version's status and error code of a connector (0: the charge point)."""

    def transaction_id(self, connector_id: int) -> int | None:
        """The CSMS's id of the connector's running transaction, once known."""

    def set_network(self, up: bool) -> None:
        """Cut (False) or restore the network path to the CSMS (simulation)."""

    async def vendor_data(
        self, vendor_id: str, message_id: str | None, data: str | None
    ) -> tuple[str, str | None] | None:
        """Send vendor-specific data to the CSMS (OCPP DataTransfer); its (status, data), or
        None when offline or unanswered."""


class Adapter(Protocol):
    """Builds one OCPP version's client, in two steps: the session side first (the charger's
    connectors need it), then the client, once the charger exists."""

    protocol: str

    def sessions(
        self,
        config: Config,
        db: Database,
        storage: StorageHealth,
        outbox: Outbox,
        *,
        now: Callable[[], datetime],
    ) -> CsmsSessions: ...

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
    ) -> CsmsClient: ...


def load(protocol: str) -> Adapter:
    """The adapter for ``csms.protocol`` (the config checks that it is one of ADAPTERS)."""
    adapter: Adapter = importlib.import_module(ADAPTERS[protocol]).ADAPTER
    return adapter
