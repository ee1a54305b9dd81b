"""End-to-end fixtures (the OCPP schema check of every charger frame is in tests/conftest.py)."""

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from evsed_devtools.harness import DevCsms, Evsed


@pytest.fixture
def csms(tmp_path: Path) -> Iterator[DevCsms]:
    server = DevCsms.start(tmp_path, "--tags", "04E91C2A,PARENT01", "--heartbeat-interval", "60")
    yield server
    server.stop()


@pytest.fixture
def start_csms(tmp_path: Path) -> Iterator[Callable[..., DevCsms]]:
    """Start development CSMSs with ``serve`` arguments; each is stopped at teardown."""
    started: list[DevCsms] = []

    def start(*args: str) -> DevCsms:
        server = DevCsms.start(tmp_path, *args)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def start_evsed(tmp_path: Path) -> Iterator[Callable[..., Evsed]]:
    """Start the daemon (``Evsed.start`` arguments after the work dir); at teardown each is
    stopped with SIGTERM and must exit 0. List it after the CSMS fixtures, so it is torn down
    first and the CSMS still sees the daemon's last frames."""
    started: list[Evsed] = []

    def start(csms_url: str, **sections: Any) -> Evsed:
        daemon = Evsed.start(tmp_path, csms_url, **sections)
        started.append(daemon)
        return daemon

    yield start
    codes = [daemon.stop() for daemon in started]
    assert codes == [0] * len(codes), f"evsed exit codes {codes}:\n{started[-1].log()[-3000:]}"
