"""Steps shared by the end-to-end tests."""

from evsed_devtools.harness import DevCsms, Evsed, wait_for
from hal.iec61851 import duty_to_current


def charging(evsed: Evsed) -> None:
    evsed.wait_registered()
    evsed.charge()


def last_status(csms: DevCsms) -> tuple[str, str] | None:
    sent = [m["payload"] for m in csms.calls("CP01", "StatusNotification")]
    sent = [p for p in sent if p["connectorId"] == 1]
    return (sent[-1]["status"], sent[-1]["errorCode"]) if sent else None


def offered(evsed: Evsed, connector: int = 1) -> float:
    """The current the PWM the simulated MCU last received offers (0: no PWM)."""
    sim = evsed.status()["sim"]["connectors"][connector - 1]
    return duty_to_current(sim["pwm_duty"])


def wait_offered(evsed: Evsed, amps: float, connector: int = 1, timeout: float = 10.0) -> None:
    """Until the MCU's duty cycle offers ``amps`` (to 0.15 A) on ``connector``."""
    wait_for(
        lambda: abs(offered(evsed, connector) - amps) < 0.15,
        timeout,
        f"connector {connector} offered {amps} A (now {offered(evsed, connector)})",
    )
