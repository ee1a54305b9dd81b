"""Steps shared by the end-to-end tests."""

from evsed_devtools.harness import DevCsms, Evsed


def charging(evsed: Evsed) -> None:
    evsed.wait_registered()
    evsed.charge()


def last_status(csms: DevCsms) -> tuple[str, str] | None:
    sent = [m["payload"] for m in csms.calls("CP01", "StatusNotification")]
    sent = [p for p in sent if p["connectorId"] == 1]
    return (sent[-1]["status"], sent[-1]["errorCode"]) if sent else None
