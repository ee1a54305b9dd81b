"""Who may use the control socket: root and the ``evsed`` group; evsectl says so when refused.

The refusal is the kernel's: evsectl runs as the unprivileged user ``nobody`` (with Debian's
own python3, since the test's interpreter may live where ``nobody`` cannot read) against a
real socket.
"""

from __future__ import annotations

import asyncio
import grp
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from evsed.control.cli import EXIT_NOPERM
from evsed.control.server import SOCKET_GROUP, ControlServer
from evsed_devtools.harness import DevCsms, Evsed, write_config

REPO = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = "/usr/bin/python3"
NOBODY = 65534


def test_the_daemon_socket_is_for_its_owner_and_group_only(tmp_path: Path, csms: DevCsms) -> None:
    evsed = Evsed.start(tmp_path, csms.ws_url)
    try:
        st = (tmp_path / "control.sock").stat()
        assert stat.S_ISSOCK(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == 0o660
        try:
            expected_gid = grp.getgrnam(SOCKET_GROUP).gr_gid if os.geteuid() == 0 else os.getgid()
        except KeyError:
            expected_gid = os.getgid()  # no evsed group on this machine
        assert st.st_gid == expected_gid
    finally:
        assert evsed.stop() == 0


class Target:
    """Just enough of a charger behind the socket for clear-faults."""

    async def status(self) -> dict[str, Any]:
        return {}

    def sim(self, words: list[str], connector_id: int | None) -> str:
        return "no simulator here"

    def clear_faults(self, connector_id: int | None) -> list[str]:
        return ["contactor-welded"]


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory that ``nobody`` can enter (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="evsed-socket-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _evsectl_as_nobody(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SYSTEM_PYTHON, "-m", "evsed.control.cli", "--config", str(config), *args],
        user=NOBODY,
        group=NOBODY,
        extra_groups=[],
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        cwd="/",
        capture_output=True,
        text=True,
        timeout=30,
    )


def _nobody_can_run_evsectl() -> str | None:
    """Why this test cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root to run evsectl as another user"
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return f"{SYSTEM_PYTHON} is missing"
    probe = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import evsed.control.cli"],
        user=NOBODY,
        env={"PYTHONPATH": str(REPO)},
        cwd="/",
        capture_output=True,
        timeout=30,
    )
    if probe.returncode != 0:
        return f"nobody cannot import evsed from {REPO} with {SYSTEM_PYTHON}"
    return None


async def test_group_members_get_in_and_others_are_told_why_not(shared_dir: Path) -> None:
    reason = _nobody_can_run_evsectl()
    if reason:
        pytest.skip(reason)
    config = write_config(shared_dir, "ws://127.0.0.1:9/ocpp", "CP01")
    config.chmod(0o644)
    socket_path = shared_dir / "control.sock"
    # nobody's own group stands in for evsed: a member of the socket's group.
    server = ControlServer(socket_path, Target(), group=grp.getgrgid(NOBODY).gr_name)
    await server.start()
    try:
        st = socket_path.stat()
        assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o660, 0, NOBODY)
        member = await asyncio.to_thread(_evsectl_as_nobody, config, "clear-faults")
        assert member.returncode == 0, member.stderr
        assert member.stdout == "cleared: contactor-welded\n"

        os.chown(socket_path, -1, 0)  # root's group: nobody is no longer a member
        outsider = await asyncio.to_thread(_evsectl_as_nobody, config, "clear-faults")
        assert outsider.returncode == EXIT_NOPERM
        assert outsider.stderr.startswith(f"evsectl: permission denied on {socket_path}:")
        assert "for root and the 'evsed' group only" in outsider.stderr
        assert "sudo usermod -aG evsed $USER" in outsider.stderr
    finally:
        await server.stop()
