"""OCPP-J RPC frames, read defensively: the same framing in OCPP-J 1.6 (§4) and 2.0.1.

A CSMS can send anything: text that is not JSON, a list of the wrong length, a CALL without a
payload, a payload that breaks the action's schema. :func:`read_frame` turns one websocket
message into a CALL, a reply, or a :class:`FrameError` that says whether a CALLERROR can be
addressed (a readable message id) and what kind of error it is. :func:`schema_problem` checks a
CALL's payload against the action's JSON schema (bundled with the ``ocpp`` package).

Error kinds are version-neutral; each version's adapter spells them (1.6: FormationViolation,
2.0.1: FormatViolation). Descriptions name the property and the rule it breaks, never the value:
an error must not echo the request back.
"""

from __future__ import annotations

import decimal
import enum
import json
from dataclasses import dataclass
from typing import Any

from jsonschema.exceptions import ValidationError
from ocpp.messages import get_validator

CALL, CALLRESULT, CALLERROR = 2, 3, 4
MAX_DESCRIPTION = 200
# OCPP 1.6 actions whose schemas have decimal fields (multipleOf 0.1): validated with Decimal,
# as the ocpp library does, so that 21.4 is not rejected as 21.399999999999995.
_DECIMAL_ACTIONS = frozenset({"SetChargingProfile", "RemoteStartTransaction"})


class ErrorKind(enum.Enum):
    """What is wrong with a CALL (OCPP-J 1.6 §4.2.3 names, version-neutral)."""

    NOT_IMPLEMENTED = "the action is not known"
    NOT_SUPPORTED = "the action is known but not served here"
    FORMATION = "the frame or payload does not have the structure of the action"
    PROTOCOL = "the payload is incomplete"
    TYPE_CONSTRAINT = "a field has the wrong type"
    PROPERTY_CONSTRAINT = "a field has a value out of range"
    INTERNAL = "the charge point failed to handle the request"


@dataclass(frozen=True, slots=True)
class IncomingCall:
    unique_id: str
    action: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Reply:
    """A CALLRESULT or CALLERROR: ``frame`` is the decoded list (its length checked)."""

    type: int
    unique_id: str
    frame: list[Any]


@dataclass(frozen=True, slots=True)
class FrameError:
    """A frame that cannot be handled; ``unique_id`` is set when a CALLERROR can answer it."""

    kind: ErrorKind
    description: str
    unique_id: str | None = None


def read_frame(raw: str | bytes) -> IncomingCall | Reply | FrameError:
    """One websocket message as a CALL, a reply, or what is wrong with it."""
    try:
        frame = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return FrameError(ErrorKind.FORMATION, "not valid JSON")
    if not isinstance(frame, list) or not frame:
        return FrameError(ErrorKind.FORMATION, "not an OCPP-J message (a JSON array)")
    message_type = frame[0]
    unique_id = frame[1] if len(frame) > 1 and isinstance(frame[1], str) else None
    if message_type == CALL:
        if unique_id is None:
            return FrameError(ErrorKind.FORMATION, "CALL without a readable message id")
        if len(frame) != 4:
            return FrameError(
                ErrorKind.PROTOCOL,
                f"a CALL has 4 elements [2, id, action, payload], this one {len(frame)}",
                unique_id,
            )
        _, _, action, payload = frame
        if not isinstance(action, str) or not action:
            return FrameError(ErrorKind.FORMATION, "the action is not a string", unique_id)
        if not isinstance(payload, dict):
            return FrameError(ErrorKind.FORMATION, "the payload is not a JSON object", unique_id)
        return IncomingCall(unique_id, action, payload)
    if message_type in (CALLRESULT, CALLERROR) and unique_id is not None:
        expected = 3 if message_type == CALLRESULT else 5
        if len(frame) == expected:
            return Reply(message_type, unique_id, frame)
        return FrameError(ErrorKind.FORMATION, f"reply with {len(frame)} elements")
    return FrameError(ErrorKind.FORMATION, f"unknown message type {str(message_type)[:10]!r}")


def schema_problem(version: str, action: str, payload: dict[str, Any]) -> FrameError | None:
    """What breaks ``action``'s request schema in ``payload`` (None: it is valid).

    The first error found is reported; its description names the property path and the rule,
    not the offending value."""
    decimals = version == "1.6" and action in _DECIMAL_ACTIONS
    try:
        validator = get_validator(
            CALL, action, version, parse_float=decimal.Decimal if decimals else float
        )
    except (OSError, ValueError):
        return FrameError(ErrorKind.NOT_IMPLEMENTED, f"no schema for {action[:40]!r}")
    if decimals:
        payload = json.loads(json.dumps(payload), parse_float=decimal.Decimal)
    error = next(iter(sorted(validator.iter_errors(payload), key=_depth)), None)
    if error is None:
        return None
    return FrameError(_KINDS.get(str(error.validator), ErrorKind.FORMATION), _describe(error))


def _depth(error: ValidationError) -> int:
    return len(error.absolute_path)


_KINDS = {
    "type": ErrorKind.TYPE_CONSTRAINT,
    "maxLength": ErrorKind.TYPE_CONSTRAINT,
    "minLength": ErrorKind.TYPE_CONSTRAINT,
    "required": ErrorKind.PROTOCOL,
    "additionalProperties": ErrorKind.FORMATION,
    "enum": ErrorKind.FORMATION,
    "minimum": ErrorKind.PROPERTY_CONSTRAINT,
    "maximum": ErrorKind.PROPERTY_CONSTRAINT,
    "multipleOf": ErrorKind.PROPERTY_CONSTRAINT,
    "minItems": ErrorKind.PROPERTY_CONSTRAINT,
    "maxItems": ErrorKind.PROPERTY_CONSTRAINT,
}


def _describe(error: ValidationError) -> str:
    where = ".".join(str(p) for p in error.absolute_path)[:80] or "payload"
    rule = str(error.validator)
    schema_value = error.validator_value
    match rule:
        case "required":
            present = error.instance if isinstance(error.instance, dict) else {}
            absent = [p for p in schema_value if p not in present]
            text = f"{where}: missing required property {', '.join(absent)[:60]}"
        case "type":
            text = f"{where}: must be of type {schema_value}"
        case "enum":
            text = f"{where}: not one of the allowed values"
        case "additionalProperties":
            text = f"{where}: has a property the schema does not allow"
        case "maxLength" | "minLength" | "minimum" | "maximum" | "maxItems" | "minItems":
            text = f"{where}: breaks {rule} {schema_value}"
        case _:
            text = f"{where}: breaks the schema rule {rule!r}"
    return text[:MAX_DESCRIPTION]
