"""The state directory misbehaving: full during a session, unusable at start-up.

A transaction's stop that cannot be committed (disk full) is kept and committed again until it
succeeds, with its real reason and reading; meanwhile the connector reports the fault and takes
no new session. At start-up a state directory that cannot be used ends the daemon with one line
naming the directory and the problem and exit status 73, which the shipped unit does not
restart on; a corrupt database file is left as it is.

A full disk is a real one: a small tmpfs mounted for the test (needs root, as the firmware
update tests do), filled with a file and emptied again.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from oca_support import booted, charging, wait_status

from evsed_devtools.harness import PYTHON, DevCsms, Evsed, wait_for, write_config

EXIT_STATE_DIR = 73


class SmallDisk:
    """A tmpfs of ``size`` mounted at ``path``; ``fill()`` takes every free byte."""

    def __init__(self, path: Path, size: str) -> None:
        self.path = path
        path.mkdir(parents=True)
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True
        )
        self._filler = path / "filler"

    def fill(self) -> None:
        with contextlib.suppress(OSError), open(self._filler, "ab") as f:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        with contextlib.suppress(OSError), open(self._filler, "ab") as f:
            for _ in range(4096):  # the last partial blocks
                f.write(b"\0" * 512)
                f.flush()

    def free(self) -> None:
        self._filler.unlink(missing_ok=True)

    def unmount(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], check=False)


def _can_mount() -> bool:
    return os.geteuid() == 0 and sys.platform == "linux"


needs_mount = pytest.mark.skipif(not _can_mount(), reason="needs root to mount a small tmpfs")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Callable[[str], SmallDisk]]:
    disks: list[SmallDisk] = []

    def make(size: str) -> SmallDisk:
        disk = SmallDisk(tmp_path / f"disk{len(disks)}", size)
        disks.append(disk)
        return disk

    yield make
    for disk in disks:
        disk.unmount()


def _start_daemon(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "evsed", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
    )


@needs_mount
def test_a_stop_that_cannot_be_committed_is_kept_and_committed_once_space_returns(
    csms: DevCsms, start_evsed: Callable[..., Evsed], small_disk: Callable[[str], SmallDisk]
) -> None:
    disk = small_disk("4m")
    evsed = booted(start_evsed, csms, charger={"state_dir": str(disk.path / "state")})
    transaction_id = charging(evsed, csms)
    wait_for(lambda: (evsed.connector()["energy_wh"] or 0) >= 2, what="some energy")
    disk.fill()
    evsed.sim("ev-state", "B")
    evsed.sim("unplug")
    wait_for(lambda: not evsed.connector()["contactor_closed"], what="contactor open")
    wait_for(lambda: "storage-failure" in evsed.connector()["faults"], what="the storage fault")
    wait_for(
        lambda: (
            (last := csms.calls("CP01", "StatusNotification")[-1]["payload"])
            and (last["status"], last["errorCode"]) == ("Faulted", "InternalError")
        ),
        timeout=5,
        what="Faulted / InternalError reported",
    )
    assert evsed.status()["storage"]["ok"] is False
    assert "full" in evsed.status()["storage"]["error"]
    # No new session while the stop is not recorded.
    evsed.sim("plug")
    evsed.sim("swipe", "04E91C2A")
    assert not csms.calls("CP01", "StopTransaction")
    last_energy = evsed.connector()["energy_wh"]

    assert "StopTransaction not committed" in evsed.log()  # the disk really was full
    disk.free()
    (stop,) = csms.wait_for_calls("StopTransaction", timeout=20)
    assert stop["payload"]["transactionId"] == transaction_id
    assert stop["payload"]["reason"] == "EVDisconnected"
    assert stop["payload"]["meterStop"] >= int(last_energy) - 1 > 0
    wait_for(lambda: "storage-failure" not in evsed.connector()["faults"], what="fault cleared")
    assert evsed.status()["storage"]["ok"] is True
    evsed.sim("unplug")
    wait_status(csms, "Available", stop["i"])


@needs_mount
def test_sigterm_right_after_space_returns_still_sends_the_real_stop(
    csms: DevCsms, start_evsed: Callable[..., Evsed], small_disk: Callable[[str], SmallDisk]
) -> None:
    disk = small_disk("4m")
    evsed = booted(start_evsed, csms, charger={"state_dir": str(disk.path / "state")})
    charging(evsed, csms)
    disk.fill()
    evsed.sim("ev-state", "B")
    evsed.sim("unplug")
    wait_for(lambda: "storage-failure" in evsed.connector()["faults"], what="the storage fault")
    assert "StopTransaction not committed" in evsed.log()
    disk.free()
    assert evsed.stop() == 0
    (stop,) = csms.calls("CP01", "StopTransaction")
    assert stop["payload"]["reason"] == "EVDisconnected"


@needs_mount
@pytest.mark.parametrize("problem", ["full", "read-only"])
def test_an_unusable_state_directory_at_start_is_one_line_and_exit_73(
    tmp_path: Path, small_disk: Callable[[str], SmallDisk], problem: str
) -> None:
    disk = small_disk("1m")
    if problem == "full":
        disk.fill()
    else:
        subprocess.run(["mount", "-o", "remount,ro", str(disk.path)], check=True)
    config = write_config(tmp_path, "ws://127.0.0.1:9/ocpp", "CP01")
    text = config.read_text().replace(str(tmp_path / "state"), str(disk.path / "state"))
    config.write_text(text)
    done = _start_daemon(config)
    assert done.returncode == EXIT_STATE_DIR, done.stderr
    assert "Traceback" not in done.stderr
    assert f"state directory {disk.path / 'state'}" in done.stderr


def test_a_state_directory_that_is_a_file_is_one_line_and_exit_73(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.write_text("not a directory")
    config = write_config(tmp_path, "ws://127.0.0.1:9/ocpp", "CP01")
    done = _start_daemon(config)
    assert done.returncode == EXIT_STATE_DIR, done.stderr
    assert "Traceback" not in done.stderr
    (line,) = [x for x in done.stderr.splitlines() if str(state) in x]
    assert "not a directory" in line


def test_a_corrupt_database_is_one_line_and_exit_73_and_left_untouched(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    database = state / "evsed.sqlite3"
    garbage = b"this is not a database " * 200
    database.write_bytes(garbage)
    config = write_config(tmp_path, "ws://127.0.0.1:9/ocpp", "CP01")
    done = _start_daemon(config)
    assert done.returncode == EXIT_STATE_DIR, done.stderr
    assert "Traceback" not in done.stderr
    assert str(database) in done.stderr
    assert database.read_bytes() == garbage


def test_the_unit_does_not_restart_on_a_state_directory_error() -> None:
    unit = (Path(__file__).resolve().parents[2] / "systemd" / "evsed.service").read_text()
    (line,) = [x for x in unit.splitlines() if x.startswith("RestartPreventExitStatus=")]
    assert str(EXIT_STATE_DIR) in line.split("=", 1)[1].split()
