"""Commands the charging core emits. Imperative: the runner carries them out, in order."""

from __future__ import annotations

from dataclasses import dataclass

from evsed.charging.events import StopReason


@dataclass(frozen=True, slots=True)
class SetPwm:
    """Signal ``current_a`` to the EV with the 1 kHz PWM (states B2/C2)."""

    current_a: float


@dataclass(frozen=True, slots=True)
class StopPwm:
    """Constant +12 V, no PWM (states B1/C1): the EV must not draw current."""


@dataclass(frozen=True, slots=True)
class ShowStateF:
    """Constant -12 V (state F): EVSE not available, after a fault."""


@dataclass(frozen=True, slots=True)
class CloseContactor:
    pass


@dataclass(frozen=True, slots=True)
class OpenContactor:
    pass


@dataclass(frozen=True, slots=True)
class EngageLock:
    pass


@dataclass(frozen=True, slots=True)
class ReleaseLock:
    pass


@dataclass(frozen=True, slots=True)
class CheckStopTag:
    """A tag other than the one that started the transaction was presented: may it stop it
    (same parentIdTag)? The answer comes back as StopRequested(Local) or nothing."""

    id_tag: str


@dataclass(frozen=True, slots=True)
class AskAuthorization:
    """Ask the authorization service about ``id_tag``; it answers with AuthAccepted/Rejected."""

    id_tag: str


@dataclass(frozen=True, slots=True)
class BeginTransaction:
    id_tag: str


@dataclass(frozen=True, slots=True)
class EndTransaction:
    reason: StopReason


Command = (
    SetPwm
    | StopPwm
    | ShowStateF
    | CloseContactor
    | OpenContactor
    | EngageLock
    | ReleaseLock
    | CheckStopTag
    | AskAuthorization
    | BeginTransaction
    | EndTransaction
)
