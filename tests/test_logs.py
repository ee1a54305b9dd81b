"""Logging: structured fields to journal fields, the journal/stderr choice, the adapter.

The journal itself (a real journald, ``journalctl EVSED_CONNECTOR=2``) is in
tests/e2e/test_journal.py; here the records go through systemd-python's own JournalHandler
with its ``sender_function`` hook, and the stderr choice runs in child processes whose stderr
the test sets up.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from evsed.logs import JournalFields, journal_fields, journal_handler, with_fields


def test_structured_fields_become_journal_fields() -> None:
    pytest.importorskip("systemd.journal", reason="systemd-python (the systemd extra)")
    sent: list[tuple[str, dict[str, Any]]] = []

    def send(message: str, /, **fields: Any) -> None:  # as systemd.journal.send is called
        sent.append((message, fields))

    handler = journal_handler(sender=send)
    assert handler is not None
    logger = logging.getLogger("evsed.test.journal")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        runner_log = with_fields(logger, connector=2)
        runner_log.warning("connector %d: fault %s", 2, "contactor-welded", extra={"fault": "w"})
        logger.info("transaction %d stopped", 7, extra={"transaction": 7, "ocpp_message_id": "m1"})
        logger.info("nothing structured")
    finally:
        logger.removeHandler(handler)
    (fault, fault_fields), (stop, stop_fields), (plain, plain_fields) = sent
    assert (stop, plain) == ("transaction 7 stopped", "nothing structured")
    assert fault == "connector 2: fault contactor-welded"
    assert fault_fields["EVSED_CONNECTOR"] == "2"
    assert fault_fields["EVSED_FAULT"] == "w"
    assert fault_fields["PRIORITY"] == "4"  # warning
    assert fault_fields["SYSLOG_IDENTIFIER"] == "evsed"
    assert "EVSED_TRANSACTION_ID" not in fault_fields
    assert stop_fields["EVSED_TRANSACTION_ID"] == "7"
    assert stop_fields["EVSED_OCPP_MESSAGE_ID"] == "m1"
    assert "EVSED_CONNECTOR" not in stop_fields
    assert not [name for name in plain_fields if name.startswith("EVSED_")]


def test_journal_fields_of_a_record() -> None:
    record = logging.makeLogRecord({"msg": "x", "connector": 0, "fault": None})
    assert journal_fields(record) == {"EVSED_CONNECTOR": "0"}  # 0 is the charge point
    assert JournalFields().filter(record) is True
    assert record.EVSED_CONNECTOR == "0"


def test_the_adapter_merges_its_fields_with_the_calls(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("evsed.test.adapter")
    adapter = with_fields(logger, connector=3)
    with caplog.at_level(logging.INFO, logger="evsed.test.adapter"):
        adapter.info("one")
        adapter.info("two", extra={"fault": "rcd-tripped"})
        adapter.info("three", extra={"connector": 4})
    one, two, three = caplog.records
    assert (one.connector, getattr(one, "fault", None)) == (3, None)
    assert (two.connector, two.fault) == (3, "rcd-tripped")
    assert three.connector == 4


def test_with_fields_refuses_a_field_the_journal_does_not_know() -> None:
    with pytest.raises(ValueError, match=r"unknown log fields \['conector'\]"):
        with_fields(logging.getLogger("evsed.test"), conector=1)


# A child that sets up logging as the daemon does and logs one warning; with "no-systemd" the
# systemd package cannot be imported, as on a machine without the systemd extra.
CHILD = """
import logging, sys
if "no-systemd" in sys.argv:
    sys.modules["systemd"] = None
from evsed.logs import setup_logging, stderr_is_journal
print(stderr_is_journal())
setup_logging("INFO")
print(type(logging.getLogger().handlers[0]).__name__)
logging.getLogger("evsed.child").warning("meter read failed")
"""


def _child(tmp_path: Path, journal_stream: str | None, *args: str) -> tuple[list[str], str]:
    """Run CHILD with stderr to a file; JOURNAL_STREAM "match" names that file."""
    stderr_path = tmp_path / "stderr.txt"
    with stderr_path.open("w") as stderr:
        st = os.fstat(stderr.fileno())
        env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
        if journal_stream == "match":
            env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
        elif journal_stream is not None:
            env["JOURNAL_STREAM"] = journal_stream
        done = subprocess.run(
            [sys.executable, "-c", CHILD, *args],
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=env,
            text=True,
            timeout=30,
            check=True,
        )
    return done.stdout.split(), stderr_path.read_text()


def test_plain_stderr_outside_systemd(tmp_path: Path) -> None:
    stdout, stderr = _child(tmp_path, None)
    assert stdout == ["False", "StreamHandler"]
    assert " WARNING evsed.child: meter read failed" in stderr
    assert not stderr.startswith("<")


def test_a_journal_stream_that_is_not_our_stderr_is_not_the_journal(tmp_path: Path) -> None:
    # Under systemd, but this process's stderr was redirected elsewhere (2>file).
    stdout, stderr = _child(tmp_path, "1:2")
    assert stdout == ["False", "StreamHandler"]
    assert " WARNING evsed.child: meter read failed" in stderr


def test_journal_stream_without_systemd_python_gets_priority_prefixes(tmp_path: Path) -> None:
    stdout, stderr = _child(tmp_path, "match", "no-systemd")
    assert stdout == ["True", "StreamHandler"]
    lines = stderr.splitlines()
    assert lines[0].startswith("<6>INFO evsed.logs: systemd-python is not installed")
    assert lines[1] == "<4>WARNING evsed.child: meter read failed"
