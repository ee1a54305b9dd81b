"""Pricing on the charger for OCPP 1.6: the OCA whitepaper "OCPP & California Pricing
Requirements" (v3), its DataTransfer messages and configuration keys.

DataTransfer vendorId ``org.openchargealliance.costmsg`` from the CSMS, ``data`` a JSON text:

- ``SetUserPrice``: ``idToken``, ``priceText`` (in the Language key's language) and optional
  ``priceTextExtra`` (``[{format, language, content}]``): the driver's price, shown on the
  connector where that idToken is being authorized or charges. Rejected when it is nowhere.
- ``RunningCost``: ``transactionId``, ``cost``, and optionally ``timestamp``, ``meterValue``
  (Wh), ``state`` (Charging / Idle), ``chargingPrice`` (kWhPrice, hourPrice, flatFee),
  ``idlePrice`` (graceMinutes, hourPrice), ``nextPeriod`` (atTime with the same two),
  ``priceText``/``priceTextExtra``, ``qrCodeText``. Rejected for a transaction not running.
- ``FinalCost``: ``transactionId``, ``cost``, ``priceText``/``priceTextExtra``, ``qrCodeText``;
  also accepted shortly after the transaction ended.

Money is parsed as Decimal (never float). Malformed data (not JSON, a missing or mistyped
field, a negative cost) is Rejected and changes nothing. ``triggerMeterValue`` is read but the
charger sends no extra MeterValues for it (not built).

Configuration keys (readable with GetConfiguration, the writable ones kept like any other):
CustomDisplayCostAndPrice (R, true), DefaultPrice (RW, JSON: priceText, priceTextOffline,
chargingPrice), DefaultPriceText,<language> for each supported language (RW, JSON: priceText,
priceTextOffline), CustomMultiLanguageMessages (R, true), SupportedLanguages (R), Language (RW,
one of them), TimeOffset, NextTimeOffsetTransitionDateTime, TimeOffsetNextTransition (RW, for
the display's clock), CustomIdleFeeAfterStop (R, false: not built).
"""

from __future__ import annotations

import json
import logging
import re
from decimal import Decimal
from typing import Any

from evsed.clock import parse_iso
from evsed.ocpp.v16.configuration import ConfigurationKeys
from evsed.ocpp.v16.configuration_keys import KeySpec, KeyType
from evsed.ocpp.v16.data_transfer import ACCEPTED, REJECTED, DataTransferAnswer, VendorExtensions
from evsed.ocpp.v16.transactions import V16Transactions
from evsed.port import Charger
from evsed.pricing import DefaultPrice, FinalCost, IdleTariff, NextPeriod, RunningCost, Tariff

log = logging.getLogger(__name__)

VENDOR_ID = "org.openchargealliance.costmsg"
_LANGUAGE = re.compile(r"[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*")
_OFFSET = re.compile(r"Z|[+-]\d{2}:?\d{2}")


class BadData(ValueError):
    """The data of a pricing message is not what the whitepaper defines."""


def languages(text: str) -> list[str]:
    """The configured languages (``pricing.languages``), e.g. "en,nl,de"."""
    found = [lang.strip() for lang in text.split(",") if lang.strip()]
    for lang in found:
        if not _LANGUAGE.fullmatch(lang):
            raise ValueError(f"not an RFC 5646 language tag: {lang!r}")
    return found or ["en"]


def pricing_keys(supported: list[str]) -> list[KeySpec]:
    """The whitepaper's configuration keys for these languages (the first is the default)."""

    def string(name: str, default: str, check: Any = None, *, readonly: bool = False) -> KeySpec:
        return KeySpec(name, KeyType.STRING, readonly, default, check=check)

    def boolean(name: str, value: bool) -> KeySpec:
        return KeySpec(name, KeyType.BOOL, True, "true" if value else "false")

    def language(value: str) -> str | None:
        return next((lang for lang in supported if lang.lower() == value.strip().lower()), None)

    return [
        boolean("CustomDisplayCostAndPrice", True),
        string("DefaultPrice", "", _check_default_price),
        *(string(f"DefaultPriceText,{lang}", "", _check_price_text) for lang in supported),
        boolean("CustomMultiLanguageMessages", True),
        string("SupportedLanguages", ",".join(supported), readonly=True),
        string("Language", supported[0], language),
        string("TimeOffset", "Z", _check_offset),
        string("NextTimeOffsetTransitionDateTime", "", _check_time),
        string("TimeOffsetNextTransition", "", _check_offset),
        boolean("CustomIdleFeeAfterStop", False),
    ]


class Pricing:
    """The costmsg vendor extension: fills the charger's price board."""

    def __init__(
        self, charger: Charger, keys: ConfigurationKeys, transactions: V16Transactions
    ) -> None:
        self._charger = charger
        self._keys = keys
        self._tx = transactions
        self._languages = keys.get_string("SupportedLanguages").split(",")

    def register(self, extensions: VendorExtensions) -> None:
        extensions.register(VENDOR_ID, "SetUserPrice", self._set_user_price)
        extensions.register(VENDOR_ID, "RunningCost", self._running_cost)
        extensions.register(VENDOR_ID, "FinalCost", self._final_cost)

    def key_changed(self, key: str) -> None:
        if key == "DefaultPrice" or key.startswith("DefaultPriceText,"):
            self.apply_default_price()

    def apply_default_price(self) -> None:
        """DefaultPrice (in the Language key's language) and DefaultPriceText,<lang>."""
        texts: dict[str, str] = {}
        offline: dict[str, str] = {}
        tariff = None
        raw = self._keys.get_string("DefaultPrice")
        if raw:
            value = json.loads(raw, parse_float=Decimal)
            texts[self._language()] = value["priceText"]
            if "priceTextOffline" in value:
                offline[self._language()] = value["priceTextOffline"]
            if "chargingPrice" in value:
                tariff = _tariff(value["chargingPrice"])
        for lang in self._languages:
            text = self._keys.get_string(f"DefaultPriceText,{lang}")
            if text:
                value = json.loads(text)
                texts[lang] = value["priceText"]
                if "priceTextOffline" in value:
                    offline[lang] = value["priceTextOffline"]
        self._charger.prices.set_default(DefaultPrice(texts, offline, tariff))

    # -- the three messages ------------------------------------------------------------------

    async def _set_user_price(self, data: str | None) -> DataTransferAnswer:
        try:
            value = _object(data)
            id_token = _text(value, "idToken")
            texts = self._texts(value)
        except BadData as exc:
            return _refused("SetUserPrice", exc)
        for cid, connector in self._charger.connectors.items():
            state = connector.state
            if id_token in (state.auth_tag, state.pending_tag):
                self._charger.prices.user_price(cid, texts)
                log.info("connector %d: user price set", cid, extra={"connector": cid})
                return ACCEPTED
        log.info("SetUserPrice for an idToken at no connector")
        return REJECTED

    async def _running_cost(self, data: str | None) -> DataTransferAnswer:
        try:
            value = _object(data)
            connector_id = self._connector_of(value, finished_too=False)
            running = RunningCost(
                cost=_money(value, "cost"),
                at=_time(value.get("timestamp")),
                meter_wh=_int(value, "meterValue"),
                state=_state(value.get("state")),
                tariff=_tariff(value["chargingPrice"]) if "chargingPrice" in value else None,
                idle=_idle(value["idlePrice"]) if "idlePrice" in value else None,
                next_period=_next(value["nextPeriod"]) if "nextPeriod" in value else None,
                texts=self._texts(value, required=False),
                qr_code_text=_optional_text(value, "qrCodeText"),
            )
        except BadData as exc:
            return _refused("RunningCost", exc)
        self._charger.prices.running_cost(connector_id, running)
        return ACCEPTED

    async def _final_cost(self, data: str | None) -> DataTransferAnswer:
        try:
            value = _object(data)
            connector_id = self._connector_of(value, finished_too=True)
            final = FinalCost(
                cost=_money(value, "cost"),
                texts=self._texts(value, required=False),
                qr_code_text=_optional_text(value, "qrCodeText"),
            )
        except BadData as exc:
            return _refused("FinalCost", exc)
        self._charger.prices.final_cost(connector_id, final)
        return ACCEPTED

    # -- inside ------------------------------------------------------------------------------

    def _language(self) -> str:
        return self._keys.get_string("Language")

    def _connector_of(self, value: dict[str, Any], *, finished_too: bool) -> int:
        transaction_id = _int(value, "transactionId", required=True)
        assert transaction_id is not None
        connector_id = self._tx.connector_of(transaction_id, finished_too=finished_too)
        if connector_id is None:
            raise BadData(f"no such transaction {transaction_id}")
        return connector_id

    def _texts(self, value: dict[str, Any], *, required: bool = True) -> dict[str, str]:
        texts: dict[str, str] = {}
        if required or "priceText" in value:
            texts[self._language()] = _text(value, "priceText")
        extra = value.get("priceTextExtra", [])
        if not isinstance(extra, list):
            raise BadData("priceTextExtra is not a list")
        for item in extra:
            if not isinstance(item, dict):
                raise BadData("priceTextExtra holds a non-object")
            lang = _text(item, "language")
            if not _LANGUAGE.fullmatch(lang):
                raise BadData(f"priceTextExtra language {lang!r}")
            texts[lang] = _text(item, "content")
        return texts


def _refused(message: str, exc: Exception) -> DataTransferAnswer:
    log.info("%s refused: %s", message, exc)
    return REJECTED


def _object(data: str | None) -> dict[str, Any]:
    if not data:
        raise BadData("no data")
    try:
        value = json.loads(data, parse_float=Decimal)
    except ValueError as exc:
        raise BadData(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise BadData("not a JSON object")
    return value


def _text(value: dict[str, Any], name: str) -> str:
    text = value.get(name)
    if not isinstance(text, str) or not text:
        raise BadData(f"{name} missing or not a text")
    return text


def _optional_text(value: dict[str, Any], name: str) -> str | None:
    return _text(value, name) if name in value else None


def _money(value: dict[str, Any], name: str) -> Decimal:
    raw = value.get(name)
    if isinstance(raw, bool) or not isinstance(raw, int | Decimal):
        raise BadData(f"{name} missing or not a number")
    amount = Decimal(raw)
    if not amount.is_finite() or amount < 0:
        raise BadData(f"{name} must be a number >= 0")
    return amount


def _optional_money(value: dict[str, Any], name: str) -> Decimal | None:
    return _money(value, name) if name in value else None


def _int(value: dict[str, Any], name: str, *, required: bool = False) -> int | None:
    raw = value.get(name)
    if raw is None and not required:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise BadData(f"{name} is not an integer")
    return raw


def _time(raw: object) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str) or _check_time(raw) is None:
        raise BadData(f"not a date-time: {raw!r}")
    return raw


def _state(raw: object) -> str | None:
    if raw is None:
        return None
    if raw not in ("Charging", "Idle"):
        raise BadData(f"state must be Charging or Idle, not {raw!r}")
    return str(raw).lower()


def _tariff(raw: object) -> Tariff:
    if not isinstance(raw, dict):
        raise BadData("chargingPrice is not an object")
    return Tariff(
        per_kwh=_optional_money(raw, "kWhPrice"),
        per_hour=_optional_money(raw, "hourPrice"),
        flat_fee=_optional_money(raw, "flatFee"),
    )


def _idle(raw: object) -> IdleTariff:
    if not isinstance(raw, dict):
        raise BadData("idlePrice is not an object")
    return IdleTariff(_int(raw, "graceMinutes"), _optional_money(raw, "hourPrice"))


def _next(raw: object) -> NextPeriod:
    if not isinstance(raw, dict):
        raise BadData("nextPeriod is not an object")
    at = _time(raw.get("atTime"))
    if at is None:
        raise BadData("nextPeriod without atTime")
    tariff = _tariff(raw["chargingPrice"]) if "chargingPrice" in raw else None
    idle = _idle(raw["idlePrice"]) if "idlePrice" in raw else None
    return NextPeriod(at, tariff, idle)


# -- configuration key values -------------------------------------------------------------------


def _check_default_price(raw: str) -> str | None:
    if not raw.strip():
        return ""
    try:
        value = _object(raw)
        _text(value, "priceText")
        if "priceTextOffline" in value:
            _text(value, "priceTextOffline")
        if "chargingPrice" in value:
            _tariff(value["chargingPrice"])
    except BadData:
        return None
    unknown = set(value) - {"priceText", "priceTextOffline", "chargingPrice"}
    return None if unknown else raw.strip()


def _check_price_text(raw: str) -> str | None:
    if not raw.strip():
        return ""
    try:
        value = _object(raw)
        _text(value, "priceText")
        if "priceTextOffline" in value:
            _text(value, "priceTextOffline")
    except BadData:
        return None
    return None if set(value) - {"priceText", "priceTextOffline", "language"} else raw.strip()


def _check_offset(raw: str) -> str | None:
    text = raw.strip()
    return text if text == "" or _OFFSET.fullmatch(text) else None


def _check_time(raw: str) -> str | None:
    text = raw.strip()
    if not text:
        return ""
    try:
        parse_iso(text)
    except ValueError:
        return None
    return text
