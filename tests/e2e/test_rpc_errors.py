"""OCPP-J 1.6 RPC errors in both directions, against a CSMS that misbehaves on purpose.

From the CSMS: every CALLERROR the charger sends uses an OCPP-J 1.6 errorCode (§4.2.3:
FormationViolation, not 2.0's FormatViolation; NotSupported for an action we know but do not
serve, NotImplemented for one we do not know), a CALL whose message id is readable always gets
an answer, and no answer echoes the request back. To the CSMS: a CALLERROR with a code OCPP does
not define is one failed attempt like any other, never a dead connection or a stuck outbox.
"""

import json
from collections.abc import Callable

from oca_support import booted, charging

from evsed_devtools.harness import DevCsms, Evsed, wait_for


def _error(answer: dict[str, object]) -> dict[str, object]:
    assert "error" in answer, answer
    error = answer["error"]
    assert isinstance(error, dict)
    return error


def test_schema_violations_get_the_1_6_error_codes_without_echoing_the_request(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    booted(start_evsed, csms)
    secret = "x" * 40  # must not come back in any answer
    bad_enum = csms.call(
        "ChangeAvailability",
        {"connectorId": 1, "type": "Sometimes", "note": secret},
        validate=False,
    )
    assert _error(bad_enum)["code"] in ("FormationViolation", "PropertyConstraintViolation")
    extra = csms.call("ClearCache", {"extra": secret}, validate=False)
    assert _error(extra)["code"] == "FormationViolation"
    wrong_type = csms.call("GetConfiguration", {"key": "HeartbeatInterval"}, validate=False)
    assert _error(wrong_type)["code"] == "TypeConstraintViolation"
    missing = csms.call("ChangeConfiguration", {"key": "HeartbeatInterval"}, validate=False)
    assert _error(missing)["code"] == "ProtocolError"
    for answer in (bad_enum, extra, wrong_type, missing):
        text = json.dumps(answer)
        assert secret not in text and "Sometimes" not in text, text
        assert len(text) < 600, text


def test_known_but_unserved_and_unknown_actions(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    booted(start_evsed, csms)
    # A 1.6 action the charger does not serve (firmware updates with [ota] off): NotSupported.
    unserved = csms.call(
        "UpdateFirmware",
        {"location": "ftp://127.0.0.1:1/fw.raucb", "retrieveDate": "2030-01-01T00:00:00Z"},
        validate=False,
    )
    assert _error(unserved)["code"] == "NotSupported"
    # An action OCPP 1.6 does not have: NotImplemented.
    unknown = csms.send_raw('[2,"u1","MakeCoffee",{}]')
    assert _error(unknown)["code"] == "NotImplemented"
    # A charge-point-initiated action sent by the CSMS is known, and not served here.
    reversed_ = csms.send_raw('[2,"u2","BootNotification",{}]')
    assert _error(reversed_)["code"] == "NotSupported"


def test_a_call_with_a_readable_id_always_gets_an_answer(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = booted(start_evsed, csms)
    no_payload = csms.send_raw('[2,"m2","GetConfiguration"]', timeout=5)
    assert no_payload["id"] == "m2"
    assert _error(no_payload)["code"] in ("ProtocolError", "FormationViolation")
    not_an_object = csms.send_raw('[2,"m3","ClearCache",[1,2]]', timeout=5)
    assert _error(not_an_object)["code"] in ("FormationViolation", "TypeConstraintViolation")
    action_not_text = csms.send_raw('[2,"m4",17,{}]', timeout=5)
    assert _error(action_not_text)["code"] in ("FormationViolation", "ProtocolError")
    too_long = csms.send_raw('[2,"m5","ClearCache",{},"more"]', timeout=5)
    assert "error" in too_long
    # Nothing readable: no answer is possible, and the charger stays up and connected.
    assert csms.send_raw("[2,") == {"id": None}
    assert csms.send_raw('{"not": "a list"}') == {"id": None}
    assert csms.result("ClearCache", {}) == {"status": "Accepted"}
    assert evsed.status()["ocpp"]["connection"] == "connected"


def test_a_stop_transaction_refused_with_an_unknown_error_code_is_retried_then_dropped(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = booted(
        start_evsed,
        csms,
        keys={"TransactionMessageAttempts": "2", "TransactionMessageRetryInterval": "1"},
    )
    charging(evsed, csms)
    csms.answer("StopTransaction", "error", code="NoSuchErrorCode")
    evsed.sim("ev-state", "B")
    evsed.sim("unplug")
    stops = csms.wait_for_calls("StopTransaction", 2, timeout=20)
    # Each refusal is a counted attempt on the same connection: no reconnect in between.
    assert stops[0]["payload"] == stops[1]["payload"]
    wait_for(lambda: evsed.status()["ocpp"]["outbox_pending"] == 0, what="outbox emptied")
    assert len(csms.calls("CP01", "BootNotification")) == 1
    assert evsed.status()["ocpp"]["connection"] == "connected"
    # Nothing waits behind the dropped message: later messages flow.
    csms.answer("StopTransaction", "normal")
    charging(evsed, csms)
    evsed.sim("ev-state", "B")
    evsed.sim("unplug")
    wait_for(lambda: len(csms.calls("CP01", "StopTransaction")) == 3, what="the next stop")
    assert "UnknownCallErrorCodeError" not in evsed.log()


def test_a_boot_notification_refused_with_an_unknown_error_code_is_tried_again(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    csms.answer("BootNotification", "error", code="NoSuchErrorCode", times=1)
    evsed = start_evsed(csms.ws_url)
    evsed.wait_registered()
    boots = csms.calls("CP01", "BootNotification")
    assert len(boots) == 2
    assert "UnknownCallErrorCodeError" not in evsed.log()
