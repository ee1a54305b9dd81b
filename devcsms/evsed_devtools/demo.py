"""``make demo``: a twin-socket charger on simulated hardware, two sessions, as a timeline.

Starts the development CSMS and the daemon (sim HAL, two connectors, a 20 A supply) as
processes on 127.0.0.1. A first car plugs in at connector 1 and charges alone at its 16 A; a
second arrives at connector 2 and the two share the supply (10 A each; the timeline shows each
connector's PWM); the first leaves, the second gets the supply back. Everything goes through
``evsectl``. Exits 0 only if both sessions ended with their own transaction and the CSMS
received both StopTransactions with meterStop > meterStart.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from evsed_devtools.harness import DevCsms, Evsed, run_demo, wait_for

TAGS = {1: "04E91C2A", 2: "CAFE0001"}
CHARGER = "DEMO-01"
SUPPLY_A = 20.0


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
        for c in evsed.status()["connectors"]:
            pwm = (
                f"PWM {c['pwm_current_a']:4.1f} A"
                if c["pwm_current_a"]
                else f"pilot {c['pilot']:>5}"
            )
            kwh = (c["energy_wh"] or 0.0) / 1000
            kw = (c["power_w"] or 0.0) / 1000
            contactor = "CLOSED" if c["contactor_closed"] else "open  "
            self.say(
                f"SOCKET {c['id']}",
                f"CP {c['cp_state']}  {pwm}  contactor {contactor}  {c['ocpp_status']:<13}"
                f"  meter {kwh:.3f} kWh  {kw:4.1f} kW",
            )

    def show(self, evsed: Evsed, pause: float = 0.3) -> None:
        time.sleep(pause)
        self.ocpp()
        self.hardware(evsed)


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
    csms = DevCsms.start(workdir, "--tags", ",".join(TAGS.values()), "--heartbeat-interval", "300")
    tl = Timeline(csms)
    tl.say("CSMS", f"development CSMS at {csms.ws_url}")
    evsed = Evsed.start(
        workdir,
        csms.ws_url,
        CHARGER,
        connectors=2,
        charging={"meter_values_interval_s": 5.0, "supply_max_current_a": SUPPLY_A},
    )
    try:
        tl.say(
            "CHARGER",
            f"evsed started: twin socket on simulated hardware (two pty MCUs, two meters on one"
            f" Modbus server, GPIO), a {SUPPLY_A:g} A supply shared by both",
        )
        evsed.wait_registered()
        wait_for(lambda: evsed.connector(2)["ocpp_status"] == "Available", what="Available")
        tl.show(evsed)

        for cid in (1, 2):
            tl.say(f"CAR {cid}", f"plugs in at connector {cid}, driver swipes {TAGS[cid]}")
            _arrive(evsed, cid)
            tl.show(evsed)
            for _ in range(2):
                tl.show(evsed, 2.0)

        tl.say("CAR 1", "battery full: back to state B, then unplugs")
        evsed.sim("ev-state", "B", connector=1)
        evsed.sim("unplug", connector=1)
        wait_for(lambda: csms.calls(CHARGER, "StopTransaction"), what="StopTransaction")
        tl.show(evsed)
        tl.say(
            "CHARGER", "connector 2 gets the supply back (a raise waits 5 s after its last change)"
        )
        wait_for(lambda: evsed.connector(2)["pwm_current_a"] == 16.0, timeout=15, what="16 A")
        tl.show(evsed)
        tl.show(evsed, 2.0)

        tl.say("CAR 2", "battery full: back to state B, then unplugs")
        evsed.sim("ev-state", "B", connector=2)
        evsed.sim("unplug", connector=2)
        wait_for(lambda: len(csms.calls(CHARGER, "StopTransaction")) == 2, what="both stops")
        wait_for(lambda: evsed.connector(2)["ocpp_status"] == "Available", what="Available")
        tl.show(evsed)
    finally:
        code = evsed.stop()
        starts = [m["payload"] for m in csms.calls(CHARGER, "StartTransaction")]
        stops = [m["payload"] for m in csms.calls(CHARGER, "StopTransaction")]
        csms.stop()
    return _verdict(code, starts, stops)


def _arrive(evsed: Evsed, cid: int) -> None:
    evsed.sim("plug", connector=cid)
    evsed.sim("swipe", TAGS[cid], connector=cid)
    wait_for(lambda: evsed.connector(cid)["pwm_current_a"], what="PWM on")
    evsed.sim("ev-state", "C", connector=cid)  # ready to charge: draws what it is offered
    wait_for(lambda: evsed.connector(cid)["contactor_closed"], what="contactor closed")
    wait_for(lambda: (evsed.connector(cid)["power_w"] or 0) > 1000, what="power")


def _verdict(code: int, starts: list[dict[str, Any]], stops: list[dict[str, Any]]) -> int:
    if code != 0 or len(starts) != 2 or len(stops) != 2:
        print(f"demo FAILED: daemon exit {code}, {len(starts)} starts, {len(stops)} stops")
        return 1
    print()
    for start in starts:
        connector = start["connectorId"]
        mine = [s for s in stops if s["idTag"] == start["idTag"]]
        if len(mine) != 1:
            print(f"demo FAILED: connector {connector}: no StopTransaction of its own")
            return 1
        used = mine[0]["meterStop"] - start["meterStart"]
        if used <= 0:
            print(f"demo FAILED: connector {connector}: meterStop {mine[0]['meterStop']}")
            return 1
        print(
            f"connector {connector}: {used} Wh delivered, transaction "
            f"{mine[0]['transactionId']}, stop reason {mine[0]['reason']}"
        )
    if len({s["transactionId"] for s in stops}) != 2:
        print("demo FAILED: the two sessions share a transactionId")
        return 1
    print("both sessions complete")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_demo("demo", __doc__.splitlines()[0], run, argv)


if __name__ == "__main__":
    sys.exit(main())
