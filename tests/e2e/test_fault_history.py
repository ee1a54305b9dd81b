"""The fault history (evsectl faults) and what StatusNotification tells a technician: every
fault with its vendorErrorCode and info, when it was raised and cleared, and the errorCode the
CSMS was told; bounded; kept across a restart."""

from collections.abc import Callable
from typing import Any

from oca_support import booted, charging, mark, since, wait_status

from evsed_devtools.harness import DevCsms, Evsed, wait_for


def _faults(evsed: Evsed, *args: str) -> list[dict[str, Any]]:
    import json

    result = evsed.ctl("faults", "--json", *args)
    assert result.returncode == 0, result.stderr
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return rows


def _statuses(csms: DevCsms, start: int) -> list[dict[str, Any]]:
    return [m["payload"] for m in since(csms, start) if m["action"] == "StatusNotification"]


def test_a_fault_is_reported_with_vendor_code_and_info_and_kept_in_the_history(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = booted(start_evsed, csms)
    charging(evsed, csms)
    start = mark(csms)
    evsed.sim("fault", "overtemp")
    wait_status(csms, "Faulted", start)
    faulted = next(s for s in _statuses(csms, start) if s["status"] == "Faulted")
    assert faulted["errorCode"] == "HighTemperature"
    assert faulted["vendorErrorCode"] == "EVSED-OVERTEMP"
    assert "temperature" in faulted["info"] and len(faulted["info"]) <= 50
    wait_for(lambda: _faults(evsed)[0]["reported_error_code"] == "HighTemperature", what="noted")
    [row] = _faults(evsed)
    assert (row["connector_id"], row["fault"], row["cleared_at"]) == (1, "over-temperature", None)

    cleared = mark(csms)
    evsed.sim("clear", "overtemp")
    wait_for(lambda: _faults(evsed)[0]["cleared_at"] is not None, what="cleared in the history")
    wait_status(csms, "Charging", cleared)
    back = _statuses(csms, cleared)[-1]
    assert back["errorCode"] == "NoError" and "vendorErrorCode" not in back
    [row] = _faults(evsed)
    assert row["ended"] == "cleared" and row["cleared_at"] >= row["raised_at"]

    text = evsed.ctl("faults").stdout
    assert "over-temperature" in text and "EVSED-OVERTEMP / HighTemperature" in text


def test_two_faults_on_twin_connectors_are_told_apart_and_bounded(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = start_evsed(csms.ws_url, connectors=2, charging={"fault_history_rows": 10})
    evsed.wait_registered()
    for _ in range(6):
        evsed.sim("fault", "overtemp", connector=2)
        wait_for(lambda: evsed.connector(2)["faults"], what="fault")
        evsed.sim("clear", "overtemp", connector=2)
        wait_for(lambda: not evsed.connector(2)["faults"], what="cleared")
    evsed.sim("fault", "rcd", connector=1)
    wait_for(lambda: len(_faults(evsed, "--connector", "1")) == 1, what="connector 1's fault")
    rows = _faults(evsed, "--limit", "100")
    assert len(rows) <= 10
    assert rows[0]["connector_id"] == 1 and rows[0]["fault"] == "rcd-tripped"
    assert {r["connector_id"] for r in rows[1:]} == {2}
    bad = evsed.ctl("faults", "--connector", "9")
    assert bad.returncode != 0 and "no connector 9" in bad.stderr


def test_a_fault_open_when_the_daemon_stops_is_closed_at_the_next_start(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = booted(start_evsed, csms)
    evsed.sim("fault", "overtemp")
    wait_for(lambda: _faults(evsed), what="the fault in the history")
    assert evsed.stop() == 0
    again = Evsed.launch(evsed.config, evsed.log_path)
    try:
        wait_for(lambda: _faults(again)[-1]["ended"] == "restart", what="closed at start-up")
    finally:
        assert again.stop() == 0
