"""Pricing on the charger (OCA "OCPP & California Pricing Requirements", OCPP 1.6 part): the
whitepaper's SetUserPrice, RunningCost and FinalCost examples and its configuration keys; what
the CSMS sent is shown per connector in evsectl status and on the display feed, which a client
follows here through a whole session."""

import json
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from oca_support import TAG, booted, charging, wait_status

from evsed_devtools.harness import DevCsms, Evsed, wait_for

COSTMSG = "org.openchargealliance.costmsg"
USER_PRICE = {"idToken": TAG, "priceText": "$0.12/kWh, no idle fee"}
USER_PRICE_EXTRA = [
    {"format": "UTF8", "language": "nl", "content": "€0.12/kWh, geen idle fee"},
    {"format": "UTF8", "language": "de", "content": "€0,12/kWh, keine Leerlaufgebühr"},
]
FINAL_TEXT = (
    "$2.81 @ $0.12/kWh, $0.50 @ $1/h, TOTAL KWH: 23.4 TIME: 03.50 COST: $3.31. "
    "Visit www.cpo.com/invoices/13546 for an invoice of your session."
)
DEFAULT_PRICE = (
    '{"priceText": "0.15 $/kWh, idle fee after charging: 1 $/hr",'
    ' "priceTextOffline": "The station is offline. Charging is possible for 0.15 $/kWh.",'
    ' "chargingPrice": {"kWhPrice": 0.15, "hourPrice": 0.00, "flatFee": 0.00}}'
)


def _running(transaction_id: int) -> str:
    # The whitepaper's RunningCost example, numbers written as the CSMS wrote them.
    return (
        f'{{"transactionId": {transaction_id}, "timestamp": "2021-03-19T12:00:00Z",'
        ' "meterValue": 1234000, "cost": 12.34, "state": "Charging",'
        ' "chargingPrice": {"kWhPrice": 0.20, "hourPrice": 1.00, "flatFee": 0.05},'
        ' "idlePrice": {"graceMinutes": 30, "hourPrice": 1.50},'
        ' "nextPeriod": {"atTime": "2021-03-19T13:00:00Z",'
        ' "chargingPrice": {"kWhPrice": 0.25, "hourPrice": 1.20, "flatFee": 0.10},'
        ' "idlePrice": {"graceMinutes": 15, "hourPrice": 2.00}},'
        ' "triggerMeterValue": {"atTime": "2021-03-19T12:30:00Z", "atEnergykWh": 50,'
        ' "atPowerkW": 0.1, "atCPStatus": ["SuspendedEV", "SuspendedEVSE"]}}'
    )


def _cost(csms: DevCsms, message_id: str, data: str) -> str:
    payload = {"vendorId": COSTMSG, "messageId": message_id, "data": data}
    status: str = csms.result("DataTransfer", payload)["status"]
    return status


def _price(evsed: Evsed, connector: int = 1) -> dict[str, Any]:
    price: dict[str, Any] = evsed.connector(connector)["price"]
    return price


def test_the_whitepaper_configuration_keys(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = booted(start_evsed, csms, pricing={"languages": "en,nl"})
    keys = {k["key"]: k for k in csms.result("GetConfiguration", {})["configurationKey"]}
    assert keys["CustomDisplayCostAndPrice"] == {
        "key": "CustomDisplayCostAndPrice",
        "readonly": True,
        "value": "true",
    }
    assert keys["SupportedLanguages"]["value"] == "en,nl"
    assert keys["Language"]["value"] == "en"
    assert "DefaultPriceText,nl" in keys

    def change(key: str, value: str) -> str:
        status: str = csms.result("ChangeConfiguration", {"key": key, "value": value})["status"]
        return status

    assert change("DefaultPrice", DEFAULT_PRICE) == "Accepted"
    assert change("DefaultPrice", '{"chargingPrice": {"kWhPrice": 0.15}}') == "Rejected"
    assert change("DefaultPrice", "not json") == "Rejected"
    nl = '{"priceText": "0,15 €/kWh", "priceTextOffline": "Offline: 0,15 €/kWh"}'
    assert change("DefaultPriceText,nl", nl) == "Accepted"
    assert change("Language", "fr") == "Rejected"
    assert change("TimeOffset", "+02:00") == "Accepted"
    assert change("TimeOffset", "2:00") == "Rejected"
    assert change("CustomDisplayCostAndPrice", "false") == "Rejected"

    price = _price(evsed)
    assert price["price_source"] == "default"
    assert price["price_text"] == {
        "en": "0.15 $/kWh, idle fee after charging: 1 $/hr",
        "nl": "0,15 €/kWh",
    }
    default = evsed.status()["default_price"]
    assert default["tariff"] == {"per_kwh": "0.15", "per_hour": "0.00", "flat_fee": "0.00"}
    assert default["offline_price_text"]["nl"] == "Offline: 0,15 €/kWh"


def test_the_whitepaper_pricing_messages_through_a_session(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = booted(start_evsed, csms, pricing={"languages": "en,nl,de"})
    # SetUserPrice for a tag that is nowhere: Rejected.
    assert _cost(csms, "SetUserPrice", json.dumps(USER_PRICE)) == "Rejected"
    transaction_id = charging(evsed, csms)
    user = {**USER_PRICE, "priceTextExtra": USER_PRICE_EXTRA}
    assert _cost(csms, "SetUserPrice", json.dumps(user, ensure_ascii=False)) == "Accepted"
    price = _price(evsed)
    assert price["price_source"] == "user"
    assert price["price_text"] == {
        "en": "$0.12/kWh, no idle fee",
        "nl": "€0.12/kWh, geen idle fee",
        "de": "€0,12/kWh, keine Leerlaufgebühr",
    }

    assert _cost(csms, "RunningCost", _running(transaction_id)) == "Accepted"
    running = _price(evsed)["running"]
    assert running["cost"] == "12.34" and running["state"] == "charging"
    assert running["meter_wh"] == 1234000
    assert running["tariff"] == {"per_kwh": "0.20", "per_hour": "1.00", "flat_fee": "0.05"}
    assert running["idle"] == {"grace_minutes": 30, "per_hour": "1.50"}
    assert running["next_period"]["at"] == "2021-03-19T13:00:00Z"
    assert running["next_period"]["tariff"]["per_kwh"] == "0.25"
    # Not this charger's transaction, a negative cost, a float-free check: Rejected, kept.
    assert _cost(csms, "RunningCost", _running(transaction_id + 99)) == "Rejected"
    bad = json.dumps({"transactionId": transaction_id, "cost": -1})
    assert _cost(csms, "RunningCost", bad) == "Rejected"
    assert _price(evsed)["running"]["cost"] == "12.34"

    evsed.sim("ev-state", "B")
    evsed.sim("unplug")
    csms.wait_for_calls("StopTransaction")
    final = {
        "transactionId": transaction_id,
        "cost": 3.31,
        "priceText": FINAL_TEXT,
        "qrCodeText": "https://www.cpo.com/invoices/13546",
    }
    assert _cost(csms, "FinalCost", json.dumps(final)) == "Accepted"
    shown = _price(evsed)["final"]
    assert shown == {
        "cost": "3.31",
        "price_text": {"en": FINAL_TEXT},
        "qr_code_text": "https://www.cpo.com/invoices/13546",
    }
    text = evsed.ctl("status").stdout
    assert "final cost 3.31" in text and "QR https://www.cpo.com/invoices/13546" in text


class _Follower:
    """A screen process: follows the display feed over the control socket."""

    def __init__(self, path: Path) -> None:
        self.frames: list[dict[str, Any]] = []
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.connect(str(path))
        self._sock.sendall(b'{"cmd": "display"}\n')
        self._file = self._sock.makefile("r", encoding="utf-8")
        self.header = json.loads(self._file.readline())
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for line in self._file:
            self.frames.append(json.loads(line))

    def seen(self, **want: Any) -> bool:
        return any(all(f.get(k) == v for k, v in want.items()) for f in self.frames)

    def close(self) -> None:
        self._sock.close()
        self._thread.join(5)


def test_a_screen_follows_the_display_feed_through_a_whole_session(
    csms: DevCsms, start_evsed: Callable[..., Evsed], tmp_path: Path
) -> None:
    evsed = booted(start_evsed, csms, pricing={"display_interval_s": 0.2})
    screen = _Follower(tmp_path / "control.sock")
    try:
        assert screen.header == {"ok": True, "stream": "display"}
        wait_for(lambda: screen.seen(connector=1, status="Available"), what="first frame")
        first = screen.frames[0]
        assert first["firmware_version"] == evsed.status()["firmware_version"]
        assert first["online"] is True

        assert csms.result(
            "ChangeConfiguration", {"key": "DefaultPrice", "value": DEFAULT_PRICE}
        ) == {"status": "Accepted"}
        wait_for(lambda: screen.frames[-1]["price"]["price_source"] == "default", what="default")

        transaction_id = charging(evsed, csms)
        wait_for(lambda: screen.seen(status="Charging", transaction_active=True), what="Charging")
        user = json.dumps(USER_PRICE)
        assert _cost(csms, "SetUserPrice", user) == "Accepted"
        wait_for(lambda: screen.frames[-1]["price"]["price_source"] == "user", what="user price")
        assert _cost(csms, "RunningCost", _running(transaction_id)) == "Accepted"
        wait_for(
            lambda: (screen.frames[-1]["price"]["running"] or {}).get("cost") == "12.34",
            what="running cost",
        )
        # Energy and power move while charging.
        wait_for(lambda: any((f["power_w"] or 0) > 1000 for f in screen.frames), what="power shown")
        wait_for(lambda: (screen.frames[-1]["session_energy_wh"] or 0) > 0, what="session energy")

        evsed.sim("ev-state", "B")
        evsed.sim("unplug")
        wait_status(csms, "Available", csms.wait_for_calls("StopTransaction")[-1]["i"])
        final = json.dumps({"transactionId": transaction_id, "cost": 3.31, "priceText": "ok"})
        assert _cost(csms, "FinalCost", final) == "Accepted"
        wait_for(
            lambda: (screen.frames[-1]["price"]["final"] or {}).get("cost") == "3.31",
            what="final cost",
        )
        last = screen.frames[-1]
        assert last["status"] == "Available" and last["transaction_active"] is False
        statuses = [f["status"] for f in screen.frames]
        assert statuses.index("Charging") < len(statuses) - 1 - statuses[::-1].index("Available")

        # The next session starts clean: the previous driver's cost is not shown.
        evsed.sim("plug")
        evsed.sim("swipe", TAG)
        wait_for(lambda: screen.frames[-1]["price"]["final"] is None, what="cleared")
        assert screen.frames[-1]["price"]["price_source"] == "default"
    finally:
        screen.close()
