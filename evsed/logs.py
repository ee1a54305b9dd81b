"""Where the log goes: the journal with structured fields under systemd, stderr elsewhere.

Log calls pass structured fields as ``extra`` (STYLE.md), under the keys on the left; in the
journal each becomes a field of its own (docs/systemd.md):

============================  ===========================  ====================================
``extra`` key                 journal field                value
============================  ===========================  ====================================
``connector``                 ``EVSED_CONNECTOR``          connector id (0: the charge point)
``transaction``               ``EVSED_TRANSACTION_ID``     evsed's own transaction number
``ocpp_message_id``           ``EVSED_OCPP_MESSAGE_ID``    OCPP-J message id of a CALL
``fault``                     ``EVSED_FAULT``              fault name, as ``evsectl status``
============================  ===========================  ====================================

so that ``journalctl -u evsed EVSED_CONNECTOR=2`` shows one connector's story. The journal
needs systemd-python (the ``systemd`` extra); without it, or when stderr is not the journal,
the log is plain lines on stderr (under systemd those still reach the journal, without the
fields, but with their priority).

Beside it, :class:`LogRing` keeps the newest records in memory (bounded, at the configured
level), which is where a diagnostics archive takes the daemon's log from: the same on a device
with or without the journal, and without reading files on the event loop. It starts empty at
each start of the process.
"""

from __future__ import annotations

import collections
import logging
import os
import sys
import threading
from collections.abc import Callable, MutableMapping
from datetime import UTC, datetime
from typing import Any

JOURNAL_FIELDS = {
    "connector": "EVSED_CONNECTOR",
    "transaction": "EVSED_TRANSACTION_ID",
    "ocpp_message_id": "EVSED_OCPP_MESSAGE_ID",
    "fault": "EVSED_FAULT",
}
SYSLOG_IDENTIFIER = "evsed"
STDERR_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
# The journal stamps each line itself; the <N> prefix (sd-daemon(3)) carries the priority.
JOURNAL_STREAM_FORMAT = "%(levelname)s %(name)s: %(message)s"

RING_RECORDS = 20000  # about a day of INFO, or the last minutes of DEBUG with OCPP frames

log = logging.getLogger(__name__)


def journal_fields(record: logging.LogRecord) -> dict[str, str]:
    """The journal fields of the structured ``extra`` values ``record`` carries."""
    fields = {}
    for key, field in JOURNAL_FIELDS.items():
        value = getattr(record, key, None)
        if value is not None:
            fields[field] = str(value)
    return fields


class JournalFields(logging.Filter):
    """Puts the journal names of a record's structured fields on the record, where
    systemd-python's JournalHandler takes every upper-case attribute as a field."""

    def filter(self, record: logging.LogRecord) -> bool:
        for field, value in journal_fields(record).items():
            setattr(record, field, value)
        return True


class PriorityPrefix(logging.Formatter):
    """``<N>`` before each line: journald reads it as the syslog priority (sd-daemon(3))."""

    PRIORITIES = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3}

    def format(self, record: logging.LogRecord) -> str:
        priority = self.PRIORITIES.get(record.levelno, 2 if record.levelno > logging.ERROR else 7)
        return f"<{priority}>{super().format(record)}"


def stderr_is_journal() -> bool:
    """Whether stderr is connected to the journal: systemd puts ``device:inode`` of that
    stream in ``$JOURNAL_STREAM`` (systemd.exec(5)); comparing it with fd 2 leaves out a
    stderr that was redirected since (a child started with ``2>file``)."""
    expected = os.environ.get("JOURNAL_STREAM")
    if not expected:
        return False
    try:
        st = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError):
        return False
    return expected == f"{st.st_dev}:{st.st_ino}"


def journal_handler(sender: Callable[..., None] | None = None) -> logging.Handler | None:
    """systemd-python's JournalHandler with our fields, or None without the ``systemd`` extra.
    ``sender`` replaces ``systemd.journal.send`` (the handler's own hook; tests read the
    fields with it where no journald runs)."""
    try:
        from systemd.journal import JournalHandler
    except ImportError:
        return None
    options: dict[str, Any] = {"sender_function": sender} if sender is not None else {}
    handler: logging.Handler = JournalHandler(SYSLOG_IDENTIFIER=SYSLOG_IDENTIFIER, **options)
    handler.addFilter(JournalFields())
    # The journal has the time, the priority and LOGGER as fields: MESSAGE is the message alone.
    handler.setFormatter(logging.Formatter("%(message)s"))
    return handler


class LogRing(logging.Handler):
    """The newest ``capacity`` records as (UTC time, formatted line). Thread-safe; adding a
    record costs one formatting, as any handler's."""

    def __init__(self, capacity: int = RING_RECORDS) -> None:
        super().__init__()
        self._records: collections.deque[tuple[datetime, str]] = collections.deque(maxlen=capacity)
        self._ring_lock = threading.Lock()
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            at = datetime.fromtimestamp(record.created, UTC)
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        with self._ring_lock:
            self._records.append((at, line))

    def lines(self, start: datetime | None = None, stop: datetime | None = None) -> list[str]:
        """The records from ``start`` to ``stop`` (inclusive, either open), oldest first, each
        line beginning with its ISO 8601 UTC time."""
        with self._ring_lock:
            records = list(self._records)
        return [
            f"{at.isoformat(timespec='milliseconds')} {line}"
            for at, line in records
            if (start is None or at >= start) and (stop is None or at <= stop)
        ]


_ring: LogRing | None = None


def log_ring() -> LogRing | None:
    """The ring :func:`setup_logging` installed (None before, or in a process that did not)."""
    return _ring


def setup_logging(level: str) -> None:
    """Send the root logger's records to the journal under systemd, to stderr otherwise, and
    keep the newest of them in a :class:`LogRing`."""
    global _ring
    handler: logging.Handler | None = None
    to_journal = stderr_is_journal()
    if to_journal:
        handler = journal_handler()
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            PriorityPrefix(JOURNAL_STREAM_FORMAT)
            if to_journal
            else logging.Formatter(STDERR_FORMAT)
        )
    _ring = LogRing()
    logging.basicConfig(level=level, handlers=[handler, _ring])
    if to_journal and isinstance(handler, logging.StreamHandler):
        log.info("systemd-python is not installed: plain lines to the journal, no EVSED_* fields")


class FieldsAdapter(logging.LoggerAdapter[logging.Logger]):
    """A logger that adds fixed structured fields to every record, merged with (and
    overridden by) the ``extra`` of the call itself."""

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        kwargs["extra"] = {**(self.extra or {}), **kwargs.get("extra", {})}
        return msg, kwargs


def with_fields(logger: logging.Logger, **fields: object) -> FieldsAdapter:
    """``logger`` with ``fields`` (keys of :data:`JOURNAL_FIELDS`) on every record."""
    unknown = set(fields) - set(JOURNAL_FIELDS)
    if unknown:
        raise ValueError(f"unknown log fields {sorted(unknown)}; known: {sorted(JOURNAL_FIELDS)}")
    return FieldsAdapter(logger, fields)
