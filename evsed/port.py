"""The charger's version-neutral port: what its clients see of it, and what it needs of them.

Clients (the OCPP adapter of each version, the firmware updater, the control socket) see the
charger and its connectors through the Protocols here, never a runner's internals or the HAL.
The charger in turn asks a :class:`SessionHost` (the OCPP adapter) to authorize id tags and to
record transactions: OCPP decides who may charge and reports what happened; the charger decides
what the hardware does.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal, Protocol

from evsed.charging.events import StopReason
from evsed.charging.reservations import Reservation, ReservationOutcome
from evsed.charging.schedules import CompositePeriod, Profile, Unit
from evsed.charging.state import ConnectorState, Settings
from evsed.store.transactions import TransactionRecord

if TYPE_CHECKING:
    from evsed.pricing import PriceBoard
from hal.types import MeterReading, PilotStatus

RestartKind = Literal["Soft", "Hard", "Reboot"]  # Reboot: after a firmware install


class AvailabilityResult(enum.StrEnum):
    """The outcome of making a connector (or the charger) operative or inoperative."""

    ACCEPTED = "Accepted"
    SCHEDULED = "Scheduled"  # a transaction runs: it takes effect when the transaction ends
    REJECTED = "Rejected"  # no such connector


class Connector(Protocol):
    """One connector, as the charger's clients see it."""

    @property
    def connector_id(self) -> int: ...

    @property
    def state(self) -> ConnectorState:
        """The charging core's state (plain frozen data): status projections read it."""

    @property
    def meter_reading(self) -> MeterReading | None: ...

    @property
    def offered_current_a(self) -> float:
        """What the PWM offers now (OCPP Current.Offered); 0 without PWM."""

    def remote_start(self, id_tag: str) -> None:
        """Start a session for ``id_tag`` as the CSMS asked (authorized by it, or asked again
        per the session settings)."""

    def request_stop(self, reason: StopReason) -> None:
        """End the running transaction (or give up an authorized session not started yet)."""

    def revoke_authorization(self) -> None:
        """The CSMS refused the running transaction's id tag: no energy until it ends."""

    def change_settings(self, settings: Settings) -> None: ...

    async def unlock(self) -> bool:
        """Release the connector lock; True once its feedback says unlocked."""

    async def settled(self) -> None:
        """Return once every queued authorization and transaction job has run."""

    def on_change(self, listener: Callable[[Connector], None]) -> None:
        """Call ``listener`` whenever something visible changed (status, faults)."""

    # What a technician sees (evsectl status) and may do locally.

    @property
    def pilot_status(self) -> PilotStatus | None:
        """The CP MCU's last status frame (None before the first)."""

    @property
    def pilot_link_ok(self) -> bool: ...

    @property
    def pilot_stats(self) -> dict[str, int]: ...

    def present_tag(self, id_tag: str) -> None:
        """An id tag was read at this connector (RFID, QR)."""

    def clear_latched_faults(self) -> list[str]:
        """Clear latched faults (a welded contactor) after inspection; what was cleared."""


class Charger(Protocol):
    """The charge point as a whole: its connectors and what is charger-wide."""

    @property
    def connectors(self) -> Mapping[int, Connector]: ...

    @property
    def operative(self) -> bool:
        """Connector 0 availability: the charge point as a whole (OCPP 1.6 §5.2)."""

    @property
    def unavailable(self) -> bool:
        """The charge point was made inoperative and no transaction is left on it."""

    async def change_availability(self, connector_id: int, operative: bool) -> AvailabilityResult:
        """Connector 0 is the charge point and every connector; kept across restarts."""

    def on_charger_change(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` when the charge point as a whole changed (connector 0)."""

    def reset(self, kind: RestartKind) -> None:
        """End every transaction (reason Soft/HardReset), then restart; returns at once."""

    def limit_of(self, connector_id: int) -> tuple[float | None, str]:
        """The most the connector may offer now (A) and what sets it: installation, cable,
        charging profile, supply or site."""

    def site_snapshot(self) -> dict[str, Any] | None:
        """Local load management (fuse, allowance, site meter) for a technician; None when
        it is off."""

    @property
    def site_meter_lost(self) -> bool:
        """Local load management runs on its fallback current: the site meter does not
        answer (reported on connector 0 as PowerMeterFailure)."""

    # Smart charging: the charging profiles and the composite schedule (OCPP 1.6 §3.13).

    @property
    def profiles(self) -> list[Profile]:
        """The charging profiles installed (the clients check their own rules first)."""

    async def install_profile(self, profile: Profile) -> None:
        """Install ``profile`` (committed first), replacing one with the same id or the same
        connector, purpose and stack level; the limits follow at once."""

    async def clear_profiles(self, chosen: Callable[[Profile], bool]) -> list[int]:
        """Remove the profiles ``chosen`` says; the ids removed."""

    def composite_schedule(
        self, connector_id: int, duration_s: int, unit: Unit
    ) -> list[CompositePeriod] | None:
        """From now for ``duration_s``: connector 0 is the whole charger; None for a connector
        that does not exist."""

    @property
    def prices(self) -> PriceBoard:
        """What the CSMS said each connector's session costs, for the display."""

    def fault_reported(self, connector_id: int, vendor_error_code: str, error_code: str) -> None:
        """The CSMS client reported the connector's fault (``vendor_error_code``) as
        ``error_code``: noted in the fault history."""

    # Reservations (OCPP 1.6 §3.12): kept across restarts until used, cancelled or expired.

    @property
    def reservations(self) -> tuple[Reservation, ...]: ...

    async def reserve(self, reservation: Reservation) -> ReservationOutcome:
        """Make (or replace, same id) a reservation of a connector, or of any connector (0);
        committed before the outcome is returned."""

    async def cancel_reservation(self, reservation_id: int) -> bool:
        """False: no such reservation."""

    def may_start(self, connector_id: int, id_tag: str) -> bool:
        """Whether a session for ``id_tag`` may start on the connector as far as reservations
        go (the tag's group is not known here: only the reserved tag itself)."""


class SessionHost(Protocol):
    """What the charger asks of its CSMS client: who may charge, and recording transactions.

    Each method may take time (a round trip to the CSMS, a commit); the connector runs them in
    order on its worker, so a start is always recorded before the matching stop."""

    async def authorize(self, connector_id: int, id_tag: str) -> bool: ...

    async def may_stop(self, connector_id: int, started_tag: str, presented_tag: str) -> bool:
        """May ``presented_tag`` stop the transaction ``started_tag`` started (same group)?"""

    async def start(
        self,
        connector_id: int,
        id_tag: str,
        reading: MeterReading | None,
        reservation_id: int | None = None,
    ) -> None:
        """Record a transaction that started (its message is committed before returning);
        ``reservation_id``: the reservation it used."""

    def group_of(self, connector_id: int) -> str | None:
        """The group (OCPP parentIdTag) of the tag last authorized on the connector, if known."""

    async def stop(
        self, connector_id: int, reason: StopReason, reading: MeterReading | None
    ) -> None:
        """Record the end of the connector's transaction."""

    def transaction_open(self, connector_id: int) -> bool:
        """Whether a recorded transaction runs on the connector."""

    async def stop_left_open(
        self, record: TransactionRecord, reason: StopReason, reading: MeterReading | None
    ) -> None:
        """End a transaction found open at start-up (a crash or power cut: PowerLoss)."""


class UpdateHost(Protocol):
    """What a firmware update needs of the charger."""

    def busy_connectors(self) -> list[int]:
        """Connectors with a transaction: the install waits until there are none."""

    def hold_for_update(self) -> None:
        """Make every connector Unavailable once its transaction has ended."""

    def release_after_update(self) -> None:
        """Back to the availability the operator set."""

    def request_restart(self, kind: RestartKind) -> None:
        """Reboot into the new slot (kind Reboot)."""


class CsmsSessions(SessionHost, Protocol):
    """A CSMS client's session side, as the rest of the daemon sees it."""

    @property
    def registered(self) -> bool:
        """The CSMS accepted our BootNotification (part of the post-update health check)."""
