from collections.abc import Iterator
from pathlib import Path

import pytest

from evsed.devcsms.harness import DevCsms


@pytest.fixture
def csms(tmp_path: Path) -> Iterator[DevCsms]:
    server = DevCsms.start(tmp_path, "--tags", "04E91C2A,PARENT01", "--heartbeat-interval", "60")
    yield server
    server.stop()
