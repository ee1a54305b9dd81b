"""``make demo``: a scripted charging session on simulated hardware, printed as a timeline.

Starts the development CSMS and the daemon (sim HAL) as processes on 127.0.0.1, then plugs
in, swipes a card, charges, stops and unplugs through ``evsectl``. Exits 0 only if the session
completed and the CSMS received a StopTransaction with meterStop > meterStart.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from evsed_devtools.harness import DevCsms, Evsed, run_demo, wait_for

TAG = "04E91C2A"
CHARGER = "DEMO-01"


class Timeline:
    def __init__(self, csms: DevCsms) -> None:
        self.t0 = time.monotonic()
        self.csms = csms
        self.seen = 0

    def say(self, who: str, text: str) -> None:
        print(f"{time.monotonic() - self.t0:6.1f}s  {who:<8} {text}", flush=True)

    def ocpp(self) -> None:
        """Print OCPP messages the CSMS journaled since the last call."""
        messages = self.csms.messages(CHARGER)
        for m in messages[self.seen :]:
            text = _summary(m)
            if text:
                self.say("OCPP", text)
        self.seen = len(messages)

    def hardware(self, evsed: Evsed) -> None:
        c = evsed.connector()
        pwm = f"PWM {c['pwm_current_a']:g} A" if c["pwm_current_a"] else f"pilot {c['pilot']}"
        kwh = (c["energy_wh"] or 0.0) / 1000
        kw = (c["power_w"] or 0.0) / 1000
        contactor = "CLOSED" if c["contactor_closed"] else "open"
        self.say(
            "CHARGER",
            f"CP {c['cp_state']}  {pwm}  contactor {contactor}  {c['ocpp_status']}"
            f"  meter {kwh:.3f} kWh  {kw:.1f} kW",
        )


def _summary(m: dict[str, Any]) -> str:
    p = m["payload"]
    action = m["action"]
    if m["type"] == 2 and m["dir"] == "in":
        detail = {
            "BootNotification": f"vendor {p.get('chargePointVendor')} firmware "
            f"{p.get('firmwareVersion')}",
            "StatusNotification": f"connector {p.get('connectorId')} {p.get('status')}"
            f" ({p.get('errorCode')})",
            "Authorize": f"idTag {p.get('idTag')}",
            "StartTransaction": f"idTag {p.get('idTag')} meterStart {p.get('meterStart')} Wh",
            "StopTransaction": f"transaction {p.get('transactionId')} meterStop "
            f"{p.get('meterStop')} Wh reason {p.get('reason')}",
            "MeterValues": _energy(p),
        }.get(action, "")
        return f"charger -> CSMS  {action:<19} {detail}"
    if m["type"] == 3 and m["dir"] == "out" and action != "Heartbeat":
        status = p.get("status") or (p.get("idTagInfo") or {}).get("status")
        tx = f" transactionId {p['transactionId']}" if "transactionId" in p else ""
        return f"CSMS -> charger  {action + '.conf':<19} {status or ''}{tx}".rstrip()
    return ""


def _energy(payload: dict[str, Any]) -> str:
    for value in payload.get("meterValue", [{}])[0].get("sampledValue", []):
        if value.get("measurand") == "Energy.Active.Import.Register":
            return f"energy {value['value']} Wh"
    return ""


def run(workdir: Path) -> int:
    csms = DevCsms.start(workdir, "--tags", TAG, "--heartbeat-interval", "300")
    tl = Timeline(csms)
    tl.say("CSMS", f"development CSMS at {csms.ws_url}")
    evsed = Evsed.start(workdir, csms.ws_url, CHARGER, charging={"meter_values_interval_s": 3.0})
    try:
        tl.say("CHARGER", "evsed started on simulated hardware (pty MCU, Modbus TCP meter, GPIO)")
        evsed.wait_registered()
        wait_for(lambda: evsed.connector()["ocpp_status"] == "Available", what="Available")
        time.sleep(0.3)
        tl.ocpp()
        tl.hardware(evsed)

        tl.say("CAR", "plug in")
        evsed.sim("plug")
        wait_for(lambda: evsed.connector()["ocpp_status"] == "Preparing", what="Preparing")
        time.sleep(0.2)
        tl.ocpp()
        tl.hardware(evsed)

        tl.say("DRIVER", f"swipe card {TAG}")
        evsed.sim("swipe", TAG)
        wait_for(lambda: evsed.connector()["pwm_current_a"], what="PWM on")
        time.sleep(0.3)
        tl.ocpp()
        tl.hardware(evsed)

        tl.say("CAR", "ready to charge (state C), draws up to 16 A")
        evsed.sim("ev-current", "16")
        evsed.sim("ev-state", "C")
        wait_for(lambda: evsed.connector()["contactor_closed"], what="contactor closed")
        wait_for(lambda: (evsed.connector()["power_w"] or 0) > 1000, what="power")
        tl.ocpp()
        tl.hardware(evsed)
        for _ in range(3):
            time.sleep(2.0)
            tl.ocpp()
            tl.hardware(evsed)

        tl.say("CAR", "battery full: back to state B")
        evsed.sim("ev-state", "B")
        wait_for(lambda: not evsed.connector()["contactor_closed"], what="contactor open")
        time.sleep(0.3)
        tl.ocpp()
        tl.hardware(evsed)

        tl.say("CAR", "unplug")
        evsed.sim("unplug")
        wait_for(lambda: csms.calls(CHARGER, "StopTransaction"), what="StopTransaction")
        wait_for(lambda: evsed.connector()["ocpp_status"] == "Available", what="Available")
        time.sleep(0.3)
        tl.ocpp()
        tl.hardware(evsed)
    finally:
        code = evsed.stop()
        starts = [m["payload"] for m in csms.calls(CHARGER, "StartTransaction")]
        stops = [m["payload"] for m in csms.calls(CHARGER, "StopTransaction")]
        csms.stop()
    if code != 0 or len(starts) != 1 or len(stops) != 1:
        print(f"demo FAILED: daemon exit {code}, {len(starts)} starts, {len(stops)} stops")
        return 1
    used = stops[0]["meterStop"] - starts[0]["meterStart"]
    if used <= 0:
        print(f"demo FAILED: meterStop {stops[0]['meterStop']} <= meterStart")
        return 1
    print(
        f"\nsession complete: {used} Wh delivered, transaction {stops[0]['transactionId']}, "
        f"stop reason {stops[0]['reason']}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_demo("demo", __doc__.splitlines()[0], run, argv)


if __name__ == "__main__":
    sys.exit(main())
