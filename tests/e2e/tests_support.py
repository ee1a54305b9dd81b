"""Steps shared by the end-to-end tests."""

from evsed.devcsms.harness import DevCsms, Evsed, wait_for


def charging(evsed: Evsed) -> None:
    wait_for(lambda: evsed.status()["ocpp"]["registration"] == "Accepted", what="boot")
    evsed.sim("plug")
    evsed.sim("swipe", "04E91C2A")
    evsed.sim("ev-state", "C")
    wait_for(lambda: evsed.connector()["contactor_closed"], what="contactor closed")


def last_status(csms: DevCsms) -> tuple[str, str] | None:
    sent = [m["payload"] for m in csms.calls("CP01", "StatusNotification")]
    sent = [p for p in sent if p["connectorId"] == 1]
    return (sent[-1]["status"], sent[-1]["errorCode"]) if sent else None
