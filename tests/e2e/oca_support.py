"""Steps and views shared by the OCA OCPP 1.6 Core test cases (tests/e2e/test_oca_core_*.py).

The "reusable states" of the OCA test case document (Booted, Authorized, Charging) are
functions here; the message views read the development CSMS's journal, so each test asserts
what the CSMS received, in order.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from itertools import pairwise
from typing import Any

from evsed_devtools.harness import DevCsms, Evsed, wait_for

TAG = "04E91C2A"  # accepted by the ``csms`` fixture
OTHER_TAG = "PARENT01"  # accepted as well
CONNECTOR = 1
# Frames that come on their own timers, and the Security Whitepaper's event reports (the
# startup, a reset): most sequences of the OCA tables are asserted without them.
PERIODIC = frozenset({"Heartbeat", "MeterValues", "SecurityEventNotification"})


def booted(
    start_evsed: Callable[..., Evsed],
    csms: DevCsms,
    /,
    keys: dict[str, str] | None = None,
    **sections: Any,
) -> Evsed:
    """Reusable state Booted: the daemon runs, is Accepted and has reported every connector.
    ``keys`` are then set with ChangeConfiguration, as the test case's configuration state."""
    evsed = start_evsed(csms.ws_url, **sections)
    evsed.wait_registered()
    wait_for(lambda: CONNECTOR in reported(csms), what="first StatusNotification")
    for key, value in (keys or {}).items():
        status = csms.result("ChangeConfiguration", {"key": key, "value": value})["status"]
        assert status == "Accepted", (key, value, status)
    return evsed


def reported(csms: DevCsms) -> dict[int, str]:
    """The last status reported per connector."""
    return {
        m["payload"]["connectorId"]: m["payload"]["status"]
        for m in csms.calls("CP01", "StatusNotification")
    }


def mark(csms: DevCsms) -> int:
    """Journal position: ``since(csms, mark(csms))`` shows only what follows."""
    entries = csms.messages("CP01")
    return entries[-1]["i"] + 1 if entries else 0


def since(csms: DevCsms, start: int, skip: frozenset[str] = PERIODIC) -> list[dict[str, Any]]:
    """CALLs the charger sent from journal position ``start`` on, without ``skip`` actions."""
    return [m for m in csms.calls("CP01") if m["i"] >= start and m["action"] not in skip]


def labels(calls: list[dict[str, Any]], connector: int | None = None) -> list[str]:
    """``Action`` per CALL, ``Status:<status>`` for a StatusNotification (of ``connector``
    only, when given): the shape the OCA scenario tables have."""
    out = []
    for m in calls:
        payload = m["payload"]
        if m["action"] == "StatusNotification":
            if connector is None or payload["connectorId"] == connector:
                out.append(f"Status:{payload['status']}")
        else:
            out.append(m["action"])
    return out


def wait_status(csms: DevCsms, status: str, start: int = 0, connector: int = CONNECTOR) -> None:
    """Wait until the charger reports ``status`` for ``connector`` (from ``start`` on)."""

    def seen() -> bool:
        return any(
            m["payload"]["connectorId"] == connector and m["payload"]["status"] == status
            for m in since(csms, start)
            if m["action"] == "StatusNotification"
        )

    wait_for(seen, what=f"StatusNotification {status} (connector {connector})")


def answered(csms: DevCsms, call: dict[str, Any]) -> dict[str, Any] | None:
    """The CSMS's CALLRESULT payload for one of the charger's CALLs, None if not (yet) sent."""
    for m in csms.messages("CP01"):
        if m["dir"] == "out" and m["type"] == 3 and m["id"] == call["id"]:
            payload: dict[str, Any] = m["payload"]
            return payload
    return None


def answer_to(csms: DevCsms, call: dict[str, Any]) -> dict[str, Any]:
    """The CSMS's CALLRESULT payload for one of the charger's CALLs."""
    payload = answered(csms, call)
    if payload is None:
        raise AssertionError(f"no answer to {call['action']} #{call['id']}")
    return payload


def charging(evsed: Evsed, csms: DevCsms, tag: str = TAG) -> int:
    """Reusable state Charging (plug, present ``tag``, EV in C, power on); the transaction id."""
    evsed.charge(tag)
    start = csms.wait_for_calls("StartTransaction")[-1]
    wait_status(csms, "Charging", start["i"])
    transaction_id: int = answer_to(csms, start)["transactionId"]
    return transaction_id


def seconds_between(calls: list[dict[str, Any]], key: str = "t") -> list[float]:
    """Seconds between consecutive journal entries (``t``: when the CSMS received them)."""
    times = [datetime.fromisoformat(m[key]) for m in calls]
    return [(b - a).total_seconds() for a, b in pairwise(times)]
