"""The connection to the CSMS as the adapter calls through it: the charge point of the session
in progress (none while offline) and what the CSMS answered to our BootNotification."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ocpp.exceptions import OCPPError
from ocpp.v16 import call
from websockets.exceptions import ConnectionClosed

if TYPE_CHECKING:
    from evsed.ocpp.v16.charge_point import V16ChargePoint

log = logging.getLogger(__name__)


class CsmsCalls:
    """Holds the current session's charge point; everything that sends a CALL outside the
    outbox goes through here and gets None when offline or refused."""

    def __init__(self) -> None:
        self.current: V16ChargePoint | None = None  # set while a session is registered
        self.registration = ""  # last BootNotification answer: Accepted / Pending / Rejected
        self.accepted_once = False  # once accepted, reconnects skip BootNotification (§4.2)

    @property
    def online(self) -> bool:
        return self.current is not None

    def is_online(self) -> bool:
        return self.current is not None

    @property
    def registered(self) -> bool:
        return self.registration == "Accepted"

    async def call_now(self, payload: Any) -> Any | None:
        """Send one CALL now; None when offline, refused or unanswered."""
        cp = self.current
        if cp is None:
            return None
        try:
            return await cp.call(payload, suppress=False)
        except (OCPPError, TimeoutError, ConnectionClosed) as exc:
            log.warning("%s failed: %s", type(payload).__name__, exc)
            return None

    async def authorize(self, id_tag: str) -> dict[str, Any] | None:
        """Authorize.req (§4.1): the IdTagInfo, or None when offline or without an answer."""
        result = await self.call_now(call.Authorize(id_tag=id_tag))
        if result is None:
            return None
        info: dict[str, Any] = result.id_tag_info
        return info
