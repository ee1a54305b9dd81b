"""Shared test configuration.

Every frame the charger sends to a development CSMS in the end-to-end and firmware-update tests
(tests/e2e, tests/ota) is checked against the OCPP 1.6 JSON schemas by a validator independent of
evsed and its ``ocpp`` library (tests/schema): each CSMS a test starts through the harness keeps a
journal file, read after the test body and again at teardown.
"""

import sys
from collections.abc import Iterator
from itertools import count
from pathlib import Path
from typing import Any

import pytest

from evsed_devtools.harness import DevCsms

# tests/schema is a Node.js project with its Python wrapper beside it, not a package.
sys.path.insert(0, str(Path(__file__).resolve().parent / "schema"))
from ocpp_schema import (
    SchemaValidator,
    Violation,
    charger_frame_violations,
    read_journal,
)


class CsmsJournals:
    """The journal files of the dev CSMSs one test starts, and how many entries were checked."""

    def __init__(self, validator: SchemaValidator) -> None:
        self._validator = validator
        self._checked: dict[Path, int] = {}
        self._numbers = count(1)

    def new_path(self, workdir: Path) -> Path:
        path = workdir / f"devcsms-journal-{next(self._numbers)}.jsonl"
        self._checked[path] = 0
        return path

    def fail_on_violations(self, when: str) -> None:
        """Check the entries not checked yet; fail the test if the charger broke a schema."""
        violations: list[Violation] = []
        for path, checked in self._checked.items():
            entries = read_journal(path, skip=checked)
            self._checked[path] = checked + len(entries)
            violations += charger_frame_violations(entries, self._validator)
        if violations:
            report = "\n".join(str(v) for v in violations)
            journals = ", ".join(str(path) for path in self._checked)
            pytest.fail(
                f"the charger sent {len(violations)} frame(s) that break the OCPP 1.6 JSON "
                f"schemas ({when}):\n{report}\njournals: {journals}",
                pytrace=False,
            )


_JOURNALS = pytest.StashKey[CsmsJournals]()
CHECKED_DIRS = {"e2e", "ota", "reliability"}


@pytest.fixture(scope="session")
def ocpp_schema_validator() -> Iterator[SchemaValidator]:
    """One validator process for the session, started when the first frame is checked."""
    with SchemaValidator() as validator:
        yield validator


@pytest.fixture(autouse=True)
def charger_frames_follow_ocpp_schemas(
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    ocpp_schema_validator: SchemaValidator,
) -> Iterator[None]:
    """Give every DevCsms the test starts (fixture or not) a journal file, checked afterwards."""
    if not CHECKED_DIRS & set(request.node.path.parts):
        yield
        return
    journals = CsmsJournals(ocpp_schema_validator)
    start = DevCsms.start

    def start_with_journal(workdir: Path, *args: str) -> DevCsms:
        return start(workdir, *args, "--journal", str(journals.new_path(workdir)))

    monkeypatch.setattr(DevCsms, "start", staticmethod(start_with_journal))
    request.node.stash[_JOURNALS] = journals
    yield
    # Frames sent after the test body, e.g. while its fixtures stop the daemon.
    journals.fail_on_violations("checked at teardown")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[Any]:
    """Report violations as a failure of the test itself (a failing body is reported as is)."""
    result = yield
    journals = item.stash.get(_JOURNALS, None)
    if journals is not None:
        journals.fail_on_violations("checked after the test body")
    return result
