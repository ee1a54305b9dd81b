"""Errors of the development CSMS, split by the HTTP answer the admin API gives for them."""

from __future__ import annotations

from evsed.errors import EvsedError


class DevCsmsError(EvsedError):
    """Base class for errors of the development CSMS."""


class ChargerNotConnected(DevCsmsError):
    """No charge point with this id is connected (admin API: 404)."""

    def __init__(self, cp_id: str) -> None:
        self.cp_id = cp_id
        super().__init__(f"charge point {cp_id!r} is not connected")


class ChargerGone(DevCsmsError):
    """The charge point disconnected before answering a CALL (admin API: 502)."""

    def __init__(self, cp_id: str, action: str) -> None:
        self.cp_id = cp_id
        self.action = action
        super().__init__(f"charge point {cp_id!r} disconnected before answering {action}")


class InvalidCall(DevCsmsError):
    """A CALL the library's OCPP 1.6 schema refuses to send (admin API: 400)."""
