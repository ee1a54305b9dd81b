"""What the development CSMS knows: settings, charge points seen, transactions.

Owned by the websocket event loop; the admin API reads it through snapshots taken on that loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from evsed_devcsms.journal import utc_now

BOOT_STATUSES = ("Accepted", "Pending", "Rejected")
#: OCPP 1.6 AuthorizationStatus (§7.2).
ID_TAG_STATUSES = ("Accepted", "Blocked", "Expired", "Invalid", "ConcurrentTx")
#: How the CSMS answers a CALL of one action (see :class:`AnswerRule`).
ANSWER_MODES = ("normal", "drop", "delay", "error")


@dataclass(frozen=True)
class IdTagRecord:
    """What the CSMS says about one idTag: an IdTagInfo (OCPP 1.6 §7.23)."""

    status: str
    parent_id_tag: str | None = None
    #: ISO 8601 time, sent as is.
    expiry_date: str | None = None

    def __post_init__(self) -> None:
        if self.status not in ID_TAG_STATUSES:
            raise ValueError(
                f"idTag status must be one of {', '.join(ID_TAG_STATUSES)}, not {self.status!r}"
            )

    def to_json(self) -> dict[str, Any]:
        """The IdTagInfo as on the wire (camelCase, absent fields left out)."""
        info: dict[str, Any] = {"status": self.status}
        if self.parent_id_tag is not None:
            info["parentIdTag"] = self.parent_id_tag
        if self.expiry_date is not None:
            info["expiryDate"] = self.expiry_date
        return info


@dataclass
class AnswerRule:
    """A deviation from answering CALLs of one action at once (to test a charger's timeouts).

    ``drop``: never answer; ``delay``: answer after ``delay`` seconds; ``error``: answer with a
    CALLERROR whose errorCode is ``code`` (InternalError by default; any string, so that a
    charger can be tried with a code OCPP does not define). ``times`` CALLs are affected, then
    the rule is gone (None: all).
    """

    mode: str
    delay: float = 0.0
    times: int | None = None
    code: str = "InternalError"

    def __post_init__(self) -> None:
        if self.mode not in ANSWER_MODES or self.mode == "normal":
            raise ValueError(f"answer mode must be one of drop, delay, error, not {self.mode!r}")
        if self.delay < 0:
            raise ValueError("delay must not be negative")
        if self.times is not None and self.times < 1:
            raise ValueError("times must be at least 1")
        if not self.code:
            raise ValueError("code must not be empty")


@dataclass
class CsmsSettings:
    """Behaviour knobs; ``boot_status`` may change at run time (admin API)."""

    boot_status: str = "Accepted"
    heartbeat_interval: int = 300
    #: Interval sent with Pending/Rejected (OCPP 1.6 §4.2: retry delay); None = heartbeat.
    boot_retry_interval: int | None = None
    #: Accepted idTags; None accepts every tag.
    tags: frozenset[str] | None = None
    #: Per-tag answers (status, parentIdTag, expiryDate), by tag; they win over ``tags``.
    id_tags: dict[str, IdTagRecord] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_boot_status(self.boot_status)


def check_boot_status(status: str) -> str:
    """Return ``status`` if it is an OCPP 1.6 RegistrationStatus, else raise ValueError."""
    if status not in BOOT_STATUSES:
        raise ValueError(f"boot status must be one of {', '.join(BOOT_STATUSES)}, not {status!r}")
    return status


@dataclass
class ChargerRecord:
    """One charge point as last seen."""

    id: str
    connected: bool = True
    connected_at: str | None = None
    disconnected_at: str | None = None
    boot: dict[str, Any] | None = None
    registration: str | None = None
    last_heartbeat: str | None = None
    firmware_status: str | None = None
    diagnostics_status: str | None = None
    #: Last StatusNotification per connector id (as a string: JSON object keys).
    connectors: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class TransactionRecord:
    """A transaction started by StartTransaction (OCPP 1.6 §4.8)."""

    transaction_id: int
    cp: str
    connector_id: int
    id_tag: str
    meter_start: int
    started_at: str
    meter_stop: int | None = None
    stopped_at: str | None = None
    reason: str | None = None


class CsmsState:
    """Settings plus the registry of charge points and transactions."""

    def __init__(self, settings: CsmsSettings, *, clock: Callable[[], datetime] = utc_now) -> None:
        self.settings = settings
        self.chargers: dict[str, ChargerRecord] = {}
        self.transactions: dict[int, TransactionRecord] = {}
        self._next_transaction_id = 1
        self._clock = clock
        #: Action -> how CALLs of it are answered, when not at once.
        self.answer_rules: dict[str, AnswerRule] = {}

    def now(self) -> str:
        """Current time as OCPP wants it (ISO 8601, UTC)."""
        return self._clock().isoformat(timespec="seconds").replace("+00:00", "Z")

    def charger_connected(self, cp_id: str) -> ChargerRecord:
        """Register a (re)connection; a reconnect keeps the last boot and statuses."""
        record = self.chargers.setdefault(cp_id, ChargerRecord(cp_id))
        record.connected = True
        record.connected_at = self.now()
        record.disconnected_at = None
        return record

    def charger_disconnected(self, cp_id: str) -> None:
        """Mark a charge point as gone."""
        record = self.chargers.get(cp_id)
        if record is not None:
            record.connected = False
            record.disconnected_at = self.now()

    def boot(self, cp_id: str, boot_payload: dict[str, Any]) -> tuple[str, int]:
        """Answer a BootNotification (OCPP 1.6 §4.2): (status, interval)."""
        status = self.settings.boot_status
        record = self.chargers.setdefault(cp_id, ChargerRecord(cp_id))
        record.boot = boot_payload
        record.registration = status
        if status == "Accepted" or self.settings.boot_retry_interval is None:
            return status, self.settings.heartbeat_interval
        return status, self.settings.boot_retry_interval

    def heartbeat(self, cp_id: str) -> str:
        """Record a Heartbeat (OCPP 1.6 §4.6) and return the current time."""
        now = self.now()
        record = self.chargers.get(cp_id)
        if record is not None:
            record.last_heartbeat = now
        return now

    def status(self, cp_id: str, connector_id: int, status: dict[str, Any]) -> None:
        """Record a StatusNotification (OCPP 1.6 §4.9)."""
        record = self.chargers.setdefault(cp_id, ChargerRecord(cp_id))
        record.connectors[str(connector_id)] = {**status, "received_at": self.now()}

    def note(self, cp_id: str, attribute: str, value: str) -> None:
        """Record a firmware or diagnostics status (OCPP 1.6 §4.4, §4.5)."""
        if attribute not in ("firmware_status", "diagnostics_status"):
            raise ValueError(f"not a status attribute: {attribute}")
        record = self.chargers.setdefault(cp_id, ChargerRecord(cp_id))
        setattr(record, attribute, value)

    def authorize(self, id_tag: str) -> str:
        """AuthorizationStatus for a tag (OCPP 1.6 §4.1)."""
        return self.id_tag_record(id_tag).status

    def id_tag_record(self, id_tag: str) -> IdTagRecord:
        """The IdTagInfo for a tag (§4.1, §4.8, §4.10): its own record when one is set (idTags
        are case-insensitive, §7.15), else Accepted for a listed tag (or any tag without a
        list), else Invalid."""
        folded = id_tag.casefold()
        record = next(
            (r for tag, r in self.settings.id_tags.items() if tag.casefold() == folded), None
        )
        if record is not None:
            return record
        tags = self.settings.tags
        return IdTagRecord("Accepted" if tags is None or id_tag in tags else "Invalid")

    def set_id_tag(self, id_tag: str, record: IdTagRecord | None) -> None:
        """Set (or with None remove) the record of one tag."""
        folded = id_tag.casefold()
        for tag in [t for t in self.settings.id_tags if t.casefold() == folded]:
            del self.settings.id_tags[tag]
        if record is not None:
            self.settings.id_tags[id_tag] = record

    def id_tags_snapshot(self) -> dict[str, dict[str, Any]]:
        """JSON-ready copy of the per-tag records (IdTagInfo shape)."""
        return {tag: record.to_json() for tag, record in self.settings.id_tags.items()}

    def set_answer_rule(self, action: str, rule: AnswerRule | None) -> None:
        """Change how CALLs of ``action`` are answered; None answers them normally again."""
        if rule is None:
            self.answer_rules.pop(action, None)
        else:
            self.answer_rules[action] = rule

    def take_answer_rule(self, action: str) -> AnswerRule | None:
        """The rule for a CALL of ``action`` that just arrived, counting it against ``times``."""
        rule = self.answer_rules.get(action)
        if rule is None:
            return None
        if rule.times is not None:
            rule.times -= 1
            if rule.times == 0:
                del self.answer_rules[action]
        return rule

    def answer_rules_snapshot(self) -> dict[str, dict[str, Any]]:
        """JSON-ready copy of the answer rules."""
        snapshot = {action: asdict(rule) for action, rule in self.answer_rules.items()}
        for rule in snapshot.values():
            if rule["mode"] != "error":
                del rule["code"]  # only a refusal has an errorCode
        return snapshot

    def start_transaction(
        self, cp_id: str, connector_id: int, id_tag: str, meter_start: int
    ) -> tuple[int, str]:
        """Open a transaction (OCPP 1.6 §4.8): (transaction id, authorization status).

        Ids increase from 1 and are never reused while the process lives; a transaction is
        recorded even for a refused tag, as a real CSMS must still answer with an id.
        """
        transaction_id = self._next_transaction_id
        self._next_transaction_id += 1
        self.transactions[transaction_id] = TransactionRecord(
            transaction_id, cp_id, connector_id, id_tag, meter_start, self.now()
        )
        return transaction_id, self.authorize(id_tag)

    def stop_transaction(self, transaction_id: int, meter_stop: int, reason: str | None) -> None:
        """Close a transaction (OCPP 1.6 §4.10); an unknown id is tolerated (offline starts)."""
        record = self.transactions.get(transaction_id)
        if record is not None:
            record.meter_stop = meter_stop
            record.stopped_at = self.now()
            record.reason = reason

    def chargers_snapshot(self) -> list[dict[str, Any]]:
        """JSON-ready copy of every charge point seen."""
        return [asdict(record) for record in self.chargers.values()]

    def transactions_snapshot(self) -> list[dict[str, Any]]:
        """JSON-ready copy of every transaction."""
        return [asdict(record) for record in self.transactions.values()]
