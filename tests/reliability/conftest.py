"""The reliability suite: kill -9, long CSMS outages, fuzzed inputs, a misbehaving state
directory and clock. Every test here carries the ``reliability`` marker (``pytest -m
reliability`` runs only these, ``-m "not reliability"`` leaves them out).

The default size keeps the whole directory to a minute or two on a 2-core machine, as part of
``make test``; the full size is for a soak run, e.g. ``EVSED_RELIABILITY_SESSIONS=200
EVSED_RELIABILITY_EXAMPLES=2000 .venv/bin/python -m pytest -m reliability``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from evsed_devtools.harness import DevCsms

# The end-to-end tests' helpers (oca_support, outbox_support) are reused here.
sys.path.insert(0, str(Path(__file__).parents[1] / "e2e"))

DEFAULT_SESSIONS = 6
SESSIONS = int(os.environ.get("EVSED_RELIABILITY_SESSIONS", str(DEFAULT_SESSIONS)))
EXAMPLES = int(os.environ.get("EVSED_RELIABILITY_EXAMPLES", "40"))


@pytest.fixture
def csms(tmp_path: Path) -> Iterator[DevCsms]:
    server = DevCsms.start(tmp_path, "--heartbeat-interval", "60")
    yield server
    server.stop()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.reliability)
