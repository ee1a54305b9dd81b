"""What the CSMS says a session costs, per connector, for the display (version-neutral).

The CSMS calculates; the charger shows (OCA "OCPP & California Pricing Requirements"). Money
is :class:`decimal.Decimal` from the wire to the screen, never a float; on the display feed
and in ``evsectl status`` it is a string, exactly as the CSMS sent it ("0.15", "12.34").

Per connector: the driver's own price text (per language), the running cost of the session
and its final cost (with a QR code text where sent). Charger-wide: the default price. What a
connector showed is cleared when its next session begins (a card is presented, a remote start
or a free-mode plug-in), so a driver never sees the previous one's cost.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from evsed.port import Connector

log = logging.getLogger(__name__)

Texts = Mapping[str, str]  # language (RFC 5646) -> text


@dataclass(frozen=True, slots=True)
class Tariff:
    per_kwh: Decimal | None = None
    per_hour: Decimal | None = None
    flat_fee: Decimal | None = None


@dataclass(frozen=True, slots=True)
class IdleTariff:
    grace_minutes: int | None = None
    per_hour: Decimal | None = None


@dataclass(frozen=True, slots=True)
class NextPeriod:
    at: str  # when it begins (the CSMS's time, as sent)
    tariff: Tariff | None = None
    idle: IdleTariff | None = None


@dataclass(frozen=True, slots=True)
class RunningCost:
    cost: Decimal
    at: str | None = None  # the CSMS's timestamp of the figure
    meter_wh: int | None = None  # the meter value it was worked out from
    state: str | None = None  # "charging" or "idle" (idle fees run)
    tariff: Tariff | None = None
    idle: IdleTariff | None = None
    next_period: NextPeriod | None = None
    texts: Texts = field(default_factory=dict)
    qr_code_text: str | None = None


@dataclass(frozen=True, slots=True)
class FinalCost:
    cost: Decimal
    texts: Texts = field(default_factory=dict)
    qr_code_text: str | None = None


@dataclass(frozen=True, slots=True)
class DefaultPrice:
    texts: Texts = field(default_factory=dict)
    offline_texts: Texts = field(default_factory=dict)
    tariff: Tariff | None = None


@dataclass(slots=True)
class _Shown:
    user_texts: Texts = field(default_factory=dict)
    running: RunningCost | None = None
    final: FinalCost | None = None


class PriceBoard:
    """The prices and costs each connector shows."""

    def __init__(self, connectors: Mapping[int, Connector]) -> None:
        self._shown = {cid: _Shown() for cid in connectors}
        self._in_session = {cid: False for cid in connectors}
        self.default = DefaultPrice()
        self._listeners: list[Callable[[], None]] = []
        for connector in connectors.values():
            connector.on_change(self._connector_changed)

    def on_change(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def set_default(self, default: DefaultPrice) -> None:
        self.default = default
        self._changed()

    def user_price(self, connector_id: int, texts: Texts) -> None:
        self._shown[connector_id].user_texts = dict(texts)
        self._changed()

    def running_cost(self, connector_id: int, running: RunningCost) -> None:
        self._shown[connector_id].running = running
        self._changed()

    def final_cost(self, connector_id: int, final: FinalCost) -> None:
        self._shown[connector_id].final = final
        self._changed()

    def view(self, connector_id: int) -> dict[str, Any]:
        """JSON-ready, money as strings."""
        shown = self._shown[connector_id]
        user = bool(shown.user_texts)
        return {
            "price_text": dict(shown.user_texts if user else self.default.texts),
            "price_source": "user" if user else ("default" if self.default.texts else None),
            "running": _running(shown.running) if shown.running else None,
            "final": _final(shown.final) if shown.final else None,
        }

    def default_view(self) -> dict[str, Any]:
        return {
            "price_text": dict(self.default.texts),
            "offline_price_text": dict(self.default.offline_texts),
            "tariff": _tariff(self.default.tariff),
        }

    def _connector_changed(self, connector: Connector) -> None:
        state = connector.state
        cid = connector.connector_id
        busy = state.tx_active or state.auth_tag is not None or state.pending_tag is not None
        began = busy and not self._in_session[cid]
        self._in_session[cid] = busy
        if began:
            self._shown[cid] = _Shown()
            self._changed()

    def _changed(self) -> None:
        for listener in list(self._listeners):
            listener()


def _money(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _tariff(tariff: Tariff | None) -> dict[str, Any] | None:
    if tariff is None:
        return None
    return {
        "per_kwh": _money(tariff.per_kwh),
        "per_hour": _money(tariff.per_hour),
        "flat_fee": _money(tariff.flat_fee),
    }


def _idle(idle: IdleTariff | None) -> dict[str, Any] | None:
    if idle is None:
        return None
    return {"grace_minutes": idle.grace_minutes, "per_hour": _money(idle.per_hour)}


def _running(r: RunningCost) -> dict[str, Any]:
    nxt = r.next_period
    return {
        "cost": _money(r.cost),
        "at": r.at,
        "meter_wh": r.meter_wh,
        "state": r.state,
        "tariff": _tariff(r.tariff),
        "idle": _idle(r.idle),
        "next_period": None
        if nxt is None
        else {"at": nxt.at, "tariff": _tariff(nxt.tariff), "idle": _idle(nxt.idle)},
        "price_text": dict(r.texts),
        "qr_code_text": r.qr_code_text,
    }


def _final(f: FinalCost) -> dict[str, Any]:
    return {"cost": _money(f.cost), "price_text": dict(f.texts), "qr_code_text": f.qr_code_text}
