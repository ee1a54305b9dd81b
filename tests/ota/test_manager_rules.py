"""Pure rules of the update manager: the maintenance window and the persisted record."""

from datetime import UTC, datetime

import pytest

from evsed.ota.manager import in_window
from evsed.ota.state import UpdatePhase, UpdateState


@pytest.mark.parametrize(
    ("window", "hhmm", "inside"),
    [
        ("", "12:00", True),
        ("01:00-05:00", "00:59", False),
        ("01:00-05:00", "01:00", True),
        ("01:00-05:00", "04:59", True),
        ("01:00-05:00", "05:00", False),
        ("22:00-03:00", "23:30", True),  # wraps midnight
        ("22:00-03:00", "02:59", True),
        ("22:00-03:00", "03:00", False),
        ("22:00-03:00", "12:00", False),
    ],
)
def test_maintenance_window(window: str, hhmm: str, inside: bool) -> None:
    hour, minute = (int(x) for x in hhmm.split(":"))
    now = datetime(2026, 11, 21, hour, minute, tzinfo=UTC)
    assert in_window(window, now) is inside


def test_update_record_round_trips_and_ignores_unknown_fields() -> None:
    state = UpdateState(
        location="http://127.0.0.1/f.raucb",
        retrieve_at="2026-11-21T00:00:00Z",
        retries=2,
        retry_interval_s=5,
        signed=True,
        request_id=7,
        phase=UpdatePhase.REBOOTING,
        expected_slot="B",
    )
    text = state.to_json()
    assert UpdateState.from_json(text) == state
    newer = text[:-1] + ', "field_from_a_newer_release": 1}'
    assert UpdateState.from_json(newer) == state
