"""Fuzzing the CSMS side: whatever a hostile or broken CSMS sends, the daemon keeps running,
answers a CALL it cannot take with the CALLERROR OCPP-J 1.6 §4.2.3 names, and never closes a
contactor for it.

The daemon runs on simulated hardware with a car plugged in and asking for power (state C) but
not authorized, so its contactor must stay open whatever arrives. After every example a valid
GetConfiguration must still be answered. Inputs (hypothesis):

- CALLs of every CSMS-initiated OCPP 1.6 action with random payloads (the action's own
  property names with values of any JSON type, and random keys): one the JSON schema rejects
  gets FormationViolation, PropertyConstraintViolation, OccurrenceConstraintViolation,
  TypeConstraintViolation or ProtocolError; actions whose valid payloads would change the
  charger for the rest of the run (Reset, RemoteStartTransaction, firmware, logs, certificates,
  configuration) are sent with invalid payloads only;
- CALLs of unknown actions: NotImplemented;
- any JSON value or text as a frame, frames of the wrong shape or message type, and
  CALLRESULTs and CALLERRORs for ids the daemon never used: no answer needed, no crash;
- the same CALL twice with one id; a payload above ``csms.max_message_bytes``; a frame above
  the websocket's hard limit (the connection is closed and the daemon reconnects).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import ocpp.v16
import pytest
from conftest import EXAMPLES
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from inprocess import CP, Rig, running

from hal.types import CpState

SCHEMAS = Path(ocpp.v16.__file__).parent / "schemas"
ACTIONS = [
    "CancelReservation",
    "ChangeAvailability",
    "ClearCache",
    "ClearChargingProfile",
    "DataTransfer",
    "GetCompositeSchedule",
    "GetConfiguration",
    "GetLocalListVersion",
    "RemoteStopTransaction",
    "ReserveNow",
    "SendLocalList",
    "SetChargingProfile",
    "TriggerMessage",
    "UnlockConnector",
    "ExtendedTriggerMessage",
    "GetInstalledCertificateIds",
]
INVALID_ONLY = [
    "Reset",
    "RemoteStartTransaction",
    "UpdateFirmware",
    "SignedUpdateFirmware",
    "GetDiagnostics",
    "GetLog",
    "ChangeConfiguration",
    "CertificateSigned",
    "InstallCertificate",
    "DeleteCertificate",
]
SERVED: dict[str, bool] = {}  # per action, from its first answer
SCHEMA_ERRORS = {
    "FormationViolation",
    "FormatViolation",
    "PropertyConstraintViolation",
    "OccurrenceConstraintViolation",
    "OccurenceConstraintViolation",
    "TypeConstraintViolation",
    "ProtocolError",
}
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)


@cache
def schema(action: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SCHEMAS / f"{action}.json").read_text())
    return loaded


def valid(action: str, payload: Any) -> bool:
    try:
        jsonschema.validate(payload, schema(action))
    except jsonschema.ValidationError:
        return False
    return True


@st.composite
def payloads(draw: st.DrawFn, action: str) -> Any:
    names = list(schema(action).get("properties", {}))
    keys = st.sampled_from(names) | st.text(max_size=10) if names else st.text(max_size=10)
    return draw(st.dictionaries(keys, json_values, max_size=5) | json_values)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    with running(tmp_path, charging={"free_mode": False, "c_debounce_s": 0.0}) as rig:
        mcu = rig.call_soon(lambda: rig.world().connector(1).mcu)
        rig.call_soon(lambda: mcu.plug(32))
        rig.call_soon(lambda: mcu.set_ev_state(CpState.C))
        rig.wait(lambda: rig.connector().state.pilot is not None, 5, "pilot state")
        yield rig
        assert not [e for e in rig.coil_edges if e[1]], "a contactor closed"


def send(rig: Rig, frame: str, timeout: float = 10.0) -> Any:
    return rig.run(rig.csms.send_raw(CP, frame, timeout=timeout), timeout + 5)


def fire(rig: Rig, frame: str) -> None:
    """Send without waiting for any answer (frames nobody answers)."""
    live = rig.csms._live[CP][0]
    rig.run(live._send(frame))


def still_answers(rig: Rig) -> None:
    rig.alive()
    outcome = rig.run(rig.csms.call(CP, "GetConfiguration", {"key": ["HeartbeatInterval"]}))
    assert outcome.error is None, outcome


counter = iter(range(10**9))


def new_id() -> str:
    return f"fuzz-{next(counter)}"


@FUZZ
@given(data=st.data())
def test_calls_with_random_payloads_get_the_schema_callerror_or_an_answer(
    rig: Rig, data: st.DataObject
) -> None:
    action = data.draw(st.sampled_from(ACTIONS + INVALID_ONLY), label="action")
    payload = data.draw(payloads(action), label="payload")
    ok = valid(action, payload)
    if action in INVALID_ONLY:
        assume(not ok)
    outcome = send(rig, json.dumps([2, new_id(), action, payload]))
    if not ok:
        assert outcome.error is not None, f"{action} {payload!r} was accepted: {outcome}"
        code = outcome.error["code"]
        assert code in SCHEMA_ERRORS | {"NotSupported"}, outcome.error
        # A payload that is no JSON object is a malformed frame whatever the action; past that,
        # an action this charger does not serve (GetDiagnostics; firmware with OTA off) is
        # NotSupported before its payload is looked at, always; any other gets a schema error.
        if isinstance(payload, dict):
            served = SERVED.setdefault(action, code != "NotSupported")
            assert served == (code != "NotSupported"), f"{action}: {outcome.error}"
        else:
            assert code in {"FormationViolation", "TypeConstraintViolation"}, outcome.error
    still_answers(rig)


@FUZZ
@given(action=st.text(min_size=1, max_size=40), payload=json_values)
def test_unknown_actions_get_not_implemented(rig: Rig, action: str, payload: Any) -> None:
    assume(not (SCHEMAS / f"{action}.json").is_file() and "/" not in action)
    outcome = send(rig, json.dumps([2, new_id(), action, payload]))
    assert outcome.error is not None
    assert outcome.error["code"] in {"NotImplemented", "NotSupported", *SCHEMA_ERRORS}
    still_answers(rig)


@FUZZ
@given(
    frame=st.one_of(
        st.text(max_size=200),
        json_values.map(json.dumps),
        st.tuples(st.integers(-3, 9), json_values, json_values, json_values).map(
            lambda t: json.dumps(list(t))
        ),
        st.tuples(st.sampled_from([3, 4]), st.text(max_size=36), json_values).map(
            lambda t: json.dumps(list(t))  # CALLRESULT/CALLERROR for ids never used
        ),
        st.lists(json_values, max_size=6).map(json.dumps),
    )
)
def test_malformed_frames_and_answers_to_unknown_ids_do_no_harm(rig: Rig, frame: str) -> None:
    fire(rig, frame)
    still_answers(rig)


def test_a_call_sent_twice_with_one_id_is_answered_both_times(rig: Rig) -> None:
    frame = json.dumps([2, "same-id", "GetConfiguration", {"key": ["HeartbeatInterval"]}])
    first, second = send(rig, frame), send(rig, frame)
    assert first.error is None and second.error is None
    still_answers(rig)


def test_a_payload_above_the_configured_limit_is_refused_with_a_callerror(rig: Rig) -> None:
    big = {"vendorId": "fuzz", "data": "x" * 300_000}  # max_message_bytes is 262144
    outcome = send(rig, json.dumps([2, new_id(), "DataTransfer", big]))
    assert outcome.error is not None, outcome
    assert "FormationViolation" in str(outcome.error), outcome
    still_answers(rig)


def test_a_frame_above_the_websocket_limit_closes_the_connection_and_it_comes_back(
    rig: Rig,
) -> None:
    huge = json.dumps([2, new_id(), "DataTransfer", {"vendorId": "f", "data": "x" * 5_000_000}])
    with contextlib.suppress(Exception):  # the daemon closes the connection (1009)
        fire(rig, huge)
    rig.wait(lambda: CP not in rig.csms.connected(), 10, "the connection closed")
    rig.wait(lambda: CP in rig.csms.connected(), 20, "the daemon reconnected")
    rig.wait(
        lambda: (
            rig.daemon.client is not None
            and rig.daemon.client.snapshot()["registration"] == "Accepted"
        ),
        20,
        "registered again",
    )
    still_answers(rig)
