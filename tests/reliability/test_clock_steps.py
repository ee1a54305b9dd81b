"""The wall clock steps forward and back during a transaction and a charging schedule (NTP
correcting a clock that drifted, or an RTC-less board setting its time after boot).

tests/e2e/test_oca_smart_charging.py follows a recurring profile along the real clock; this
steps the clock. The daemon runs under libfaketime (Debian package ``faketime``; the Makefile
installs it): its wall clock (``CLOCK_REALTIME``) is moved at run time through a file, while
its monotonic clock is left alone (``FAKETIME_DONT_FAKE_MONOTONIC``), as a real clock step does.
The CSMS keeps the real time. A transaction charges under an absolute TxProfile (6 A for an
hour from ten minutes ago, then nothing); the clock jumps 2 h forward (the profile is over:
the offer goes back up), back to now (6 A again), and a day back (the profile has not begun);
at full size the offer must follow each step within ``SCHEDULE_CHECK_S`` (60 s) plus 10 s.
Throughout: the transaction carries on and ends with one StopTransaction, MeterValues keep
their one-second cadence (timers run on the monotonic clock: no burst, no stall), their
timestamps follow the stepped clock, and the energy register never goes down.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import DEFAULT_SESSIONS, SESSIONS
from outbox_support import energy_wh
from tests_support import offered, wait_offered

from evsed.charger import SCHEDULE_CHECK_S
from evsed_devtools.harness import DevCsms, Evsed, wait_for

# The charger works its limits out again at every schedule boundary it expects and at the
# latest every SCHEDULE_CHECK_S: after a clock step the new period applies within that time, so
# following the schedule across the steps takes minutes and is checked at full size only.
FOLLOW_SCHEDULE = SESSIONS > DEFAULT_SESSIONS
LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1")
TAG = "04E91C2A"

needs_faketime = pytest.mark.skipif(
    not LIBFAKETIME.exists(), reason="needs libfaketime (Debian package faketime)"
)


def iso(t: datetime) -> str:
    return t.isoformat(timespec="seconds").replace("+00:00", "Z")


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@needs_faketime
@pytest.mark.timeout(600 if FOLLOW_SCHEDULE else 120)
def test_clock_steps_during_a_transaction_and_a_schedule(tmp_path: Path, csms: DevCsms) -> None:
    offset = tmp_path / "faketime"
    offset.write_text("+0\n")
    env = {
        "LD_PRELOAD": str(LIBFAKETIME),
        "FAKETIME_TIMESTAMP_FILE": str(offset),
        "FAKETIME_NO_CACHE": "1",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }
    evsed = Evsed.start(
        tmp_path,
        csms.ws_url,
        env=env,
        charging={"meter_values_interval_s": 1.0, "c_debounce_s": 0.0},
        logging={"level": "INFO"},
    )

    def step(seconds: int) -> None:
        offset.write_text(f"{seconds:+d}\n")

    def meter_values_in(seconds: float) -> list[dict]:  # type: ignore[type-arg]
        before = len(csms.calls("CP01", "MeterValues"))
        time.sleep(seconds)
        return csms.calls("CP01", "MeterValues")[before:]

    try:
        evsed.wait_registered()
        evsed.charge(TAG)
        (start,) = csms.wait_for_calls("StartTransaction")
        now = datetime.now(UTC).replace(microsecond=0)
        body = {
            "chargingProfileId": 7,
            "stackLevel": 0,
            "chargingProfilePurpose": "TxDefaultProfile",
            "chargingProfileKind": "Absolute",
            "chargingSchedule": {
                "chargingRateUnit": "A",
                "startSchedule": iso(now - timedelta(minutes=10)),
                "duration": 3600,
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 6.0}],
            },
        }
        answer = csms.result("SetChargingProfile", {"connectorId": 1, "csChargingProfiles": body})
        assert answer["status"] == "Accepted"
        wait_offered(evsed, 6.0)
        for seconds, limited in ((7200, False), (0, True), (-86400, False)):
            step(seconds)
            if FOLLOW_SCHEDULE and limited:
                wait_offered(evsed, 6.0, timeout=SCHEDULE_CHECK_S + 10)
            elif FOLLOW_SCHEDULE:
                wait_for(
                    lambda: offered(evsed, 1) > 6.5,
                    SCHEDULE_CHECK_S + 10,
                    f"the offer up after {seconds:+d} s",
                )
            recent = meter_values_in(4.0)
            assert 2 <= len(recent) <= 6, f"{len(recent)} MeterValues in 4 s after {seconds:+d} s"
            stamp = parse(recent[-1]["payload"]["meterValue"][0]["timestamp"])
            expected = datetime.now(UTC) + timedelta(seconds=seconds)
            assert abs((stamp - expected).total_seconds()) < 5, (stamp, expected)
            assert evsed.connector()["transaction_active"]
        evsed.sim("ev-state", "B")
        evsed.sim("unplug")
        (stop,) = csms.wait_for_calls("StopTransaction")
    finally:
        step(0)
        assert evsed.stop() == 0
    answers = {m["id"]: m for m in csms.messages("CP01") if m["type"] == 3}
    assert stop["payload"]["transactionId"] == answers[start["id"]]["payload"]["transactionId"]
    # Stopped while the clock stood a day back: the stop says so.
    behind = datetime.now(UTC) - parse(stop["payload"]["timestamp"])
    assert timedelta(hours=23) < behind < timedelta(hours=25), behind
    energy = [start["payload"]["meterStart"]]
    for call in csms.calls("CP01", "MeterValues"):
        energy += energy_wh(call["payload"])
    energy.append(stop["payload"]["meterStop"])
    assert energy == sorted(energy), energy
    assert len(csms.calls("CP01", "StopTransaction")) == 1
