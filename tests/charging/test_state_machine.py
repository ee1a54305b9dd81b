"""The connector state machine, table-driven. Each case is named after the IEC 61851-1
(2017, Annex A, Table A.6) sequence or the OCPP 1.6 behaviour it checks."""

from dataclasses import dataclass, field

import pytest

from evsed.charging.commands import (
    AskAuthorization,
    BeginTransaction,
    CheckStopTag,
    CloseContactor,
    Command,
    EndTransaction,
    EngageLock,
    OpenContactor,
    ReleaseLock,
    SetPwm,
    ShowStateF,
    StopPwm,
)
from evsed.charging.events import (
    AuthAccepted,
    AuthorizationRevoked,
    AuthRejected,
    AvailabilityChanged,
    CableRatingRead,
    CpStateChanged,
    CurrentMeasured,
    Event,
    FaultCleared,
    FaultRaised,
    LimitChanged,
    LockPositionRead,
    RemoteStartRequested,
    SettingsChanged,
    StopReason,
    StopRequested,
    TagPresented,
    TimePassed,
    UnlockRequested,
)
from evsed.charging.faults import Fault
from evsed.charging.session import step
from evsed.charging.state import ConnectorState, Phase, PilotSignal, Settings
from hal.types import CpState

A, B, C, D, E = CpState.A, CpState.B, CpState.C, CpState.D, CpState.E
TAG = "04E91C2A"


def cp(state: CpState) -> CpStateChanged:
    return CpStateChanged(state)


@dataclass
class Case:
    name: str
    events: list[tuple[float, Event]]
    commands: list[Command]
    phase: Phase
    contactor_closed: bool = False
    settings: Settings = field(default_factory=Settings)


def plugged_and_charging(t0: float = 0.0) -> list[tuple[float, Event]]:
    """Plug, swipe, accepted, car requests charge, debounce passes: contactor closed."""
    return [
        (t0, cp(B)),
        (t0 + 1, TagPresented(TAG)),
        (t0 + 1.2, AuthAccepted(TAG)),
        (t0 + 2, cp(C)),
        (t0 + 2.6, TimePassed()),
    ]


def locked_and_charging(t0: float = 0.0) -> list[tuple[float, Event]]:
    """As plugged_and_charging, on a socket whose lock reports locked after the swipe."""
    return [
        (t0, cp(B)),
        (t0 + 1, TagPresented(TAG)),
        (t0 + 1.2, AuthAccepted(TAG)),
        (t0 + 1.3, LockPositionRead(True)),
        (t0 + 2, cp(C)),
        (t0 + 2.6, TimePassed()),
    ]


LOCKED_CHARGING_COMMANDS: list[Command] = [
    AskAuthorization(TAG),
    EngageLock(),
    BeginTransaction(TAG),
    SetPwm(16.0),
    CloseContactor(),
]

CHARGING_COMMANDS: list[Command] = [
    AskAuthorization(TAG),
    BeginTransaction(TAG),
    SetPwm(16.0),
    CloseContactor(),
]

CASES = [
    Case(
        "seq_1_1_plug_in_without_authorization_waits_in_B1",
        [(0, cp(B))],
        [],
        Phase.WAITING_FOR_AUTH,
    ),
    Case(
        "seq_2_1_to_6_plug_authorize_pwm_then_C_closes_after_debounce",
        plugged_and_charging(),
        CHARGING_COMMANDS,
        Phase.CHARGING,
        contactor_closed=True,
    ),
    Case(
        "seq_6_contactor_not_closed_before_c_debounce",
        [*plugged_and_charging()[:4], (2.3, TimePassed())],
        CHARGING_COMMANDS[:3],
        Phase.SUSPENDED_EV,
    ),
    Case(
        "seq_C1_car_in_C_without_pwm_never_gets_power",
        [(0, cp(B)), (0.5, cp(C)), (5, TimePassed())],
        [],
        Phase.WAITING_FOR_AUTH,
    ),
    Case(
        "seq_7_car_pauses_C_to_B_opens_contactor_transaction_continues",
        [*plugged_and_charging(), (10, cp(B))],
        [*CHARGING_COMMANDS, OpenContactor()],
        Phase.SUSPENDED_EV,
    ),
    Case(
        "seq_8_unplug_while_charging_opens_first_then_stops_transaction",
        [*plugged_and_charging(), (10, cp(A))],
        [
            *CHARGING_COMMANDS,
            OpenContactor(),
            EndTransaction(StopReason.EV_DISCONNECTED),
            StopPwm(),
        ],
        Phase.IDLE,
    ),
    Case(
        "seq_10_2_remote_stop_stops_pwm_and_waits_for_ev_to_leave_C",
        [*plugged_and_charging(), (10, StopRequested(StopReason.REMOTE)), (11, TimePassed())],
        [*CHARGING_COMMANDS, StopPwm()],
        Phase.STOPPING,
        contactor_closed=True,
    ),
    Case(
        "seq_10_2_ev_goes_to_B_after_stop_then_contactor_opens_and_tx_ends",
        [*plugged_and_charging(), (10, StopRequested(StopReason.REMOTE)), (11, cp(B))],
        [*CHARGING_COMMANDS, StopPwm(), OpenContactor(), EndTransaction(StopReason.REMOTE)],
        Phase.FINISHED,
    ),
    Case(
        "seq_10_2_ev_stays_in_C_contactor_opens_under_load_after_6s",
        [*plugged_and_charging(), (10, StopRequested(StopReason.REMOTE)), (16, TimePassed())],
        [*CHARGING_COMMANDS, StopPwm(), OpenContactor(), EndTransaction(StopReason.REMOTE)],
        Phase.FINISHED,
    ),
    Case(
        "local_stop_with_same_tag",
        [*plugged_and_charging(), (10, TagPresented(TAG)), (10.5, cp(B))],
        [*CHARGING_COMMANDS, StopPwm(), OpenContactor(), EndTransaction(StopReason.LOCAL)],
        Phase.FINISHED,
    ),
    Case(
        "fault_while_charging_opens_contactor_and_shows_state_F",
        [*plugged_and_charging(), (10, FaultRaised(Fault.RCD_TRIPPED)), (10.2, TimePassed())],
        [*CHARGING_COMMANDS, OpenContactor(), ShowStateF()],
        Phase.SUSPENDED_EV,
    ),
    Case(
        "fault_holds_state_F_300ms_then_plus_12V_so_unplug_is_seen",
        [
            *plugged_and_charging(),
            (10, FaultRaised(Fault.RCD_TRIPPED)),
            (10.3, TimePassed()),
            (12, cp(A)),
        ],
        [
            *CHARGING_COMMANDS,
            OpenContactor(),
            ShowStateF(),
            StopPwm(),
            EndTransaction(StopReason.EV_DISCONNECTED),
        ],
        Phase.IDLE,
    ),
    Case(
        "fault_cleared_resumes_pwm_and_closes_after_debounce",
        [
            *plugged_and_charging(),
            (10, FaultRaised(Fault.OVER_TEMPERATURE)),
            (20, FaultCleared(Fault.OVER_TEMPERATURE)),
            (20.5, TimePassed()),
        ],
        [*CHARGING_COMMANDS, OpenContactor(), ShowStateF(), SetPwm(16.0), CloseContactor()],
        Phase.CHARGING,
        contactor_closed=True,
    ),
    Case(
        "after_a_fault_clears_C_must_hold_the_debounce_again",
        [
            *plugged_and_charging(),
            (10, FaultRaised(Fault.MCU_LINK_LOST)),
            (10.1, FaultCleared(Fault.MCU_LINK_LOST)),
            (10.5, TimePassed()),
        ],
        [*CHARGING_COMMANDS, OpenContactor(), ShowStateF(), SetPwm(16.0)],
        Phase.SUSPENDED_EV,
    ),
    Case(
        "faulted_connector_takes_no_new_session",
        [(0, FaultRaised(Fault.MCU_LINK_LOST)), *plugged_and_charging(1)],
        [ShowStateF(), StopPwm()],
        Phase.WAITING_FOR_AUTH,
    ),
    Case(
        "authorized_while_faulted_starts_once_the_fault_clears",
        [
            (0, cp(B)),
            (1, TagPresented(TAG)),
            (1.1, FaultRaised(Fault.METER_FAILURE)),
            (1.2, AuthAccepted(TAG)),
            (3, FaultCleared(Fault.METER_FAILURE)),
        ],
        [AskAuthorization(TAG), ShowStateF(), BeginTransaction(TAG), SetPwm(16.0)],
        Phase.SUSPENDED_EV,
    ),
    Case(
        "meter_failure_does_not_block_when_meter_not_required",
        [(0, FaultRaised(Fault.METER_FAILURE)), *plugged_and_charging(1)],
        CHARGING_COMMANDS,
        Phase.CHARGING,
        contactor_closed=True,
        settings=Settings(require_meter=False),
    ),
    Case(
        "state_D_without_ventilation_never_closes",
        [*plugged_and_charging()[:3], (2, cp(D)), (5, TimePassed())],
        CHARGING_COMMANDS[:3],
        Phase.SUSPENDED_EV,
    ),
    Case(
        "state_D_with_ventilation_closes",
        [*plugged_and_charging()[:3], (2, cp(D)), (5, TimePassed())],
        CHARGING_COMMANDS,
        Phase.CHARGING,
        contactor_closed=True,
        settings=Settings(ventilation_available=True),
    ),
    Case(
        "state_E_while_charging_opens_contactor",
        [*plugged_and_charging(), (10, cp(E))],
        [*CHARGING_COMMANDS, OpenContactor(), ShowStateF()],
        Phase.SUSPENDED_EV,
    ),
    Case(
        "unexpected_state_F_is_a_pilot_fault_until_a_car_state_is_read",
        [
            *plugged_and_charging(),
            (10, CpStateChanged(CpState.F)),
            (10.1, CpStateChanged(CpState.F, evse_drives_f=True)),  # our own F: still faulted
            (10.5, TimePassed()),
            (11, cp(C)),
            (11.6, TimePassed()),
        ],
        [
            *CHARGING_COMMANDS,
            OpenContactor(),
            ShowStateF(),
            StopPwm(),
            SetPwm(16.0),
            CloseContactor(),
        ],
        Phase.CHARGING,
        contactor_closed=True,
    ),
    Case(
        "state_F_the_evse_drives_itself_is_no_fault",
        [*plugged_and_charging()[:3], (2, CpStateChanged(CpState.F, evse_drives_f=True))],
        [AskAuthorization(TAG), BeginTransaction(TAG), SetPwm(16.0)],
        Phase.SUSPENDED_EV,
    ),
    Case(
        "rejected_tag_starts_nothing",
        [(0, cp(B)), (1, TagPresented(TAG)), (2, AuthRejected(TAG)), (3, cp(C))],
        [AskAuthorization(TAG)],
        Phase.WAITING_FOR_AUTH,
    ),
    Case(
        "identification_first_then_plug_starts_transaction",
        [(0, TagPresented(TAG)), (1, AuthAccepted(TAG)), (5, cp(B))],
        [AskAuthorization(TAG), BeginTransaction(TAG), SetPwm(16.0)],
        Phase.SUSPENDED_EV,
    ),
    Case(
        "identification_first_lapses_after_connection_timeout",
        [(0, TagPresented(TAG)), (1, AuthAccepted(TAG)), (62, TimePassed()), (63, cp(B))],
        [AskAuthorization(TAG)],
        Phase.WAITING_FOR_AUTH,
    ),
    Case(
        "remote_start_on_plugged_connector",
        [(0, cp(B)), (1, RemoteStartRequested("REMOTE1"))],
        [BeginTransaction("REMOTE1"), SetPwm(16.0)],
        Phase.SUSPENDED_EV,
    ),
    Case(
        "free_mode_starts_on_plug",
        [(0, cp(B)), (1, cp(C)), (2, TimePassed())],
        [BeginTransaction("FREE"), SetPwm(20.0), CloseContactor()],
        Phase.CHARGING,
        contactor_closed=True,
        settings=Settings(free_mode=True, free_mode_id_tag="FREE", max_current_a=20.0),
    ),
    Case(
        "unplug_seen_after_state_F_during_a_fault",
        [
            *plugged_and_charging(),
            (10, FaultRaised(Fault.CONTACTOR_WELDED)),
            (10.05, cp(CpState.F)),
            (10.4, TimePassed()),
            (10.5, cp(A)),
        ],
        [
            *CHARGING_COMMANDS,
            OpenContactor(),
            ShowStateF(),
            StopPwm(),
            EndTransaction(StopReason.EV_DISCONNECTED),
        ],
        Phase.IDLE,
    ),
    Case(
        "pp_cable_rating_clamps_the_offered_current",
        [(0, CableRatingRead(13)), *plugged_and_charging(0.1)],
        [AskAuthorization(TAG), BeginTransaction(TAG), SetPwm(13.0), CloseContactor()],
        Phase.CHARGING,
        contactor_closed=True,
        settings=Settings(max_current_a=32.0),
    ),
    Case(
        "no_pp_reading_means_no_cable_clamp",
        [(0, CableRatingRead(0)), *plugged_and_charging(0.1)],
        [AskAuthorization(TAG), BeginTransaction(TAG), SetPwm(32.0), CloseContactor()],
        Phase.CHARGING,
        contactor_closed=True,
        settings=Settings(max_current_a=32.0),
    ),
    Case(
        "limit_lowered_applies_at_once",
        [*plugged_and_charging(), (3.0, LimitChanged(10.0))],
        [*CHARGING_COMMANDS, SetPwm(10.0)],
        Phase.CHARGING,
        contactor_closed=True,
    ),
    Case(
        "limit_raised_waits_5s_after_the_last_duty_change",
        [
            *plugged_and_charging(),
            (3.0, LimitChanged(10.0)),
            (4.0, LimitChanged(None)),
            (7.9, TimePassed()),
            (8.0, TimePassed()),
        ],
        [*CHARGING_COMMANDS, SetPwm(10.0), SetPwm(16.0)],
        Phase.CHARGING,
        contactor_closed=True,
    ),
    Case(
        "limit_below_6A_stops_pwm_and_opens_suspended_evse",
        [*plugged_and_charging(), (3.0, LimitChanged(4.0))],
        [*CHARGING_COMMANDS, OpenContactor(), StopPwm()],
        Phase.SUSPENDED_EVSE,
    ),
    Case(
        "ocpp_authorization_revoked_suspends_energy_and_keeps_the_transaction",
        [*plugged_and_charging(), (3.0, AuthorizationRevoked()), (20.0, TimePassed())],
        [*CHARGING_COMMANDS, OpenContactor(), StopPwm()],
        Phase.SUSPENDED_EVSE,
    ),
    Case(
        "ocpp_authorization_revoked_lasts_only_until_the_transaction_ends",
        [
            *plugged_and_charging(),
            (3.0, AuthorizationRevoked()),
            (4.0, cp(B)),
            (5.0, cp(A)),
            *plugged_and_charging(10.0),
        ],
        [
            *CHARGING_COMMANDS,
            OpenContactor(),
            StopPwm(),
            EndTransaction(StopReason.EV_DISCONNECTED),
            *CHARGING_COMMANDS,
        ],
        Phase.CHARGING,
        contactor_closed=True,
    ),
    Case(
        "ocpp_authorization_revoked_without_a_transaction_changes_nothing",
        [(0, cp(B)), (1, AuthorizationRevoked()), (2, TagPresented(TAG)), (2.2, AuthAccepted(TAG))],
        [AskAuthorization(TAG), BeginTransaction(TAG), SetPwm(16.0)],
        Phase.SUSPENDED_EV,
    ),
    Case(
        "overcurrent_for_7s_opens_contactor_with_fault",
        [
            *plugged_and_charging(),
            (3.0, CurrentMeasured(18.2)),
            (9.9, CurrentMeasured(18.2)),
            (10.0, CurrentMeasured(18.2)),
        ],
        [*CHARGING_COMMANDS, OpenContactor(), ShowStateF()],
        Phase.SUSPENDED_EV,
    ),
    Case(
        "overcurrent_within_margin_is_tolerated",
        [*plugged_and_charging(), (3.0, CurrentMeasured(18.0)), (20.0, CurrentMeasured(18.0))],
        CHARGING_COMMANDS,
        Phase.CHARGING,
        contactor_closed=True,
    ),
    Case(
        "overcurrent_that_stops_within_7s_is_forgiven",
        [
            *plugged_and_charging(),
            (3.0, CurrentMeasured(25.0)),
            (8.0, CurrentMeasured(15.0)),
            (12.0, CurrentMeasured(25.0)),
            (18.0, CurrentMeasured(25.0)),
        ],
        CHARGING_COMMANDS,
        Phase.CHARGING,
        contactor_closed=True,
    ),
    Case(
        "overcurrent_fault_clears_on_unplug",
        [
            *plugged_and_charging(),
            (3.0, CurrentMeasured(30.0)),
            (10.0, CurrentMeasured(30.0)),
            (11.0, cp(A)),
            (12.0, cp(B)),
        ],
        [
            *CHARGING_COMMANDS,
            OpenContactor(),
            ShowStateF(),
            EndTransaction(StopReason.EV_DISCONNECTED),
            StopPwm(),
        ],
        Phase.WAITING_FOR_AUTH,
    ),
    Case(
        "inoperative_connector_takes_no_session",
        [(0, AvailabilityChanged(False)), (1, cp(B)), (2, TagPresented(TAG))],
        [],
        Phase.UNAVAILABLE,
    ),
    Case(
        # OCPP 1.6 §5.2: the change of availability is itself a visible change (Unavailable).
        "inoperative_idle_connector_is_unavailable_at_once",
        [(0, AvailabilityChanged(False))],
        [],
        Phase.UNAVAILABLE,
    ),
    Case(
        "inoperative_during_a_transaction_is_scheduled_until_it_ends",
        [
            *plugged_and_charging(),
            (5, AvailabilityChanged(False)),
            (6, TimePassed()),
            (7, cp(A)),
            (8, cp(B)),
            (9, TagPresented(TAG)),
        ],
        [
            *CHARGING_COMMANDS,
            OpenContactor(),
            EndTransaction(StopReason.EV_DISCONNECTED),
            StopPwm(),
        ],
        Phase.UNAVAILABLE,
    ),
    Case(
        "operative_again_takes_sessions",
        [
            (0, AvailabilityChanged(False)),
            (0.5, AvailabilityChanged(True)),
            *plugged_and_charging(1),
        ],
        CHARGING_COMMANDS,
        Phase.CHARGING,
        contactor_closed=True,
    ),
    Case(
        "connector_lock_engages_before_the_transaction_and_releases_after",
        [*locked_and_charging(), (10, cp(B)), (11, cp(A))],
        [
            *LOCKED_CHARGING_COMMANDS,
            OpenContactor(),
            EndTransaction(StopReason.EV_DISCONNECTED),
            ReleaseLock(),
            StopPwm(),
        ],
        Phase.IDLE,
        settings=Settings(has_lock=True),
    ),
    Case(
        # Plugged, authorized and the car asks for power, but the lock never reports locked:
        # no transaction, no PWM, no power.
        "no_transaction_and_no_power_until_the_lock_reports_locked",
        [
            (0, cp(B)),
            (1, TagPresented(TAG)),
            (1.2, AuthAccepted(TAG)),
            (2, cp(C)),
            (9, TimePassed()),
        ],
        [AskAuthorization(TAG), EngageLock()],
        Phase.WAITING_FOR_AUTH,
        settings=Settings(has_lock=True),
    ),
    Case(
        # OCA TC_024: the lock fails before the transaction. The lock is released so the plug
        # can be taken out, the session does not start, and the fault ends with the unplug.
        "lock_failure_before_the_transaction_releases_the_lock_and_starts_nothing",
        [
            (0, cp(B)),
            (1, TagPresented(TAG)),
            (1.2, AuthAccepted(TAG)),
            (1.7, FaultRaised(Fault.CONNECTOR_LOCK)),
            (2.5, TimePassed()),
            (3, cp(A)),
            (3.1, FaultCleared(Fault.CONNECTOR_LOCK)),
        ],
        [AskAuthorization(TAG), EngageLock(), ReleaseLock(), ShowStateF(), StopPwm()],
        Phase.IDLE,
        settings=Settings(has_lock=True),
    ),
    Case(
        "lock_opening_during_charging_opens_the_contactor_and_it_closes_again_when_locked",
        [*locked_and_charging(), (5, LockPositionRead(False)), (5.2, LockPositionRead(True))],
        [*LOCKED_CHARGING_COMMANDS, OpenContactor(), CloseContactor()],
        Phase.CHARGING,
        settings=Settings(has_lock=True),
        contactor_closed=True,
    ),
    Case(
        # Plugged and authorized, locked, but a fault keeps the transaction from starting:
        # An unlock request gives the session up and releases the cable.
        "unlock_command_gives_up_a_session_that_has_not_started",
        [
            (0, cp(B)),
            (1, TagPresented(TAG)),
            (1.2, AuthAccepted(TAG)),
            (1.25, FaultRaised(Fault.OVER_TEMPERATURE)),
            (1.3, LockPositionRead(True)),
            (2, TimePassed()),
            (3, UnlockRequested()),
        ],
        [AskAuthorization(TAG), EngageLock(), ShowStateF(), StopPwm(), ReleaseLock()],
        Phase.WAITING_FOR_AUTH,
        settings=Settings(has_lock=True),
    ),
    Case(
        "unlock_command_ends_the_transaction_then_unlocks",
        [*locked_and_charging(), (10, UnlockRequested()), (10.5, cp(B))],
        [
            *LOCKED_CHARGING_COMMANDS,
            StopPwm(),
            OpenContactor(),
            EndTransaction(StopReason.UNLOCK_COMMAND),
            ReleaseLock(),
        ],
        Phase.FINISHED,
        settings=Settings(has_lock=True),
    ),
    Case(
        # OCPP 1.6 §9.1 UnlockConnectorOnEVSideDisconnect = false: the transaction ends
        # (StopTransactionOnEVSideDisconnect) but the cable stays locked in the socket until
        # the CSMS sends UnlockConnector.
        "no_unlock_on_ev_side_disconnect_keeps_the_lock_until_unlock_requested",
        [*locked_and_charging(), (10, cp(A)), (11, TimePassed()), (12, UnlockRequested())],
        [
            *LOCKED_CHARGING_COMMANDS,
            OpenContactor(),
            EndTransaction(StopReason.EV_DISCONNECTED),
            StopPwm(),
            ReleaseLock(),
        ],
        Phase.IDLE,
        settings=Settings(has_lock=True, unlock_on_ev_disconnect=False),
    ),
    Case(
        "no_unlock_on_ev_side_disconnect_keeps_the_lock_while_the_transaction_goes_on",
        [*locked_and_charging(), (10, cp(A)), (11, TimePassed())],
        [*LOCKED_CHARGING_COMMANDS, OpenContactor(), StopPwm()],
        Phase.SUSPENDED_EV,
        settings=Settings(
            has_lock=True, unlock_on_ev_disconnect=False, stop_on_ev_disconnect=False
        ),
    ),
    Case(
        "another_tag_during_a_transaction_asks_whether_it_may_stop",
        [*plugged_and_charging(), (10, TagPresented("OTHER"))],
        [*CHARGING_COMMANDS, CheckStopTag("OTHER")],
        Phase.CHARGING,
        contactor_closed=True,
    ),
    Case(
        "authorize_remote_tx_requests_asks_the_csms_first",
        [(0, cp(B)), (1, RemoteStartRequested(TAG)), (2, AuthAccepted(TAG))],
        [AskAuthorization(TAG), BeginTransaction(TAG), SetPwm(16.0)],
        Phase.SUSPENDED_EV,
        settings=Settings(authorize_remote_tx_requests=True),
    ),
    Case(
        "connection_timeout_changed_at_run_time",
        [
            (0, SettingsChanged(Settings(connection_timeout_s=5.0))),
            (1, TagPresented(TAG)),
            (1.1, AuthAccepted(TAG)),
            (7, TimePassed()),
            (8, cp(B)),
        ],
        [AskAuthorization(TAG)],
        Phase.WAITING_FOR_AUTH,
    ),
    Case(
        "unplug_with_stop_on_ev_disconnect_off_keeps_transaction",
        [*plugged_and_charging(), (10, cp(A))],
        [*CHARGING_COMMANDS, OpenContactor(), StopPwm()],
        Phase.SUSPENDED_EV,
        settings=Settings(stop_on_ev_disconnect=False),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_sequence(case: Case) -> None:
    state = ConnectorState(settings=case.settings)
    emitted: list[Command] = []
    for now, event in case.events:
        state, commands = step(state, event, now)
        emitted += commands
    assert emitted == case.commands
    assert state.phase is case.phase
    assert state.contactor_closed is case.contactor_closed


def test_contactor_never_closed_without_pwm_authorization_and_no_fault() -> None:
    """Walk many random event sequences; the closing rule must hold after every step."""
    import random

    events: list[Event] = [
        cp(A),
        cp(B),
        cp(C),
        cp(D),
        cp(E),
        TagPresented(TAG),
        AuthAccepted(TAG),
        AuthRejected(TAG),
        RemoteStartRequested(TAG),
        StopRequested(StopReason.REMOTE),
        FaultRaised(Fault.RCD_TRIPPED),
        FaultCleared(Fault.RCD_TRIPPED),
        FaultRaised(Fault.MCU_LINK_LOST),
        FaultCleared(Fault.MCU_LINK_LOST),
        TimePassed(),
        CableRatingRead(13),
        CableRatingRead(0),
        LimitChanged(8.0),
        LimitChanged(3.0),
        LimitChanged(None),
        CurrentMeasured(40.0),
        CurrentMeasured(5.0),
        cp(CpState.F),
        LockPositionRead(True),
        LockPositionRead(False),
        FaultRaised(Fault.CONNECTOR_LOCK),
        FaultCleared(Fault.CONNECTOR_LOCK),
        UnlockRequested(),
        AuthorizationRevoked(),
    ]
    rng = random.Random(61851)
    closed_with_lock = 0
    for walk in range(600):
        settings = Settings(has_lock=walk % 2 == 1)
        state, now = ConnectorState(settings=settings), 0.0
        for _ in range(40):
            now += rng.choice([0.05, 0.3, 1.0, 7.0])
            state, _commands = step(state, rng.choice(events), now)
            if state.pilot is PilotSignal.PWM:
                assert 6.0 <= state.pwm_a <= 16.0
                if state.cable_a is not None:
                    assert state.pwm_a <= state.cable_a
            if state.contactor_closed:
                assert state.tx_active
                assert state.cp is C
                assert not state.blocking_faults
                assert state.stop_reason is not None or state.pwm_a > 0
                assert not state.delivery_revoked
                if settings.has_lock:
                    assert state.locked and state.lock_confirmed
                    closed_with_lock += 1
    assert closed_with_lock, "no walk on a socket with a lock reached a closed contactor"
