"""The files in systemd/, checked by systemd's own tools: ``systemd-analyze verify`` and
``security``, ``systemd-sysusers`` and ``systemd-tmpfiles`` into a scratch root.

``make test`` installs the Debian package systemd when run as root; elsewhere the tests skip.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

SYSTEMD_DIR = Path(__file__).resolve().parents[1] / "systemd"
UNITS = ("evsed.service", "evsed-boot-check.service")
BIN = Path(sys.executable).parent  # evsed and evsectl of this environment


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is missing (Debian package systemd; make test installs it as root)")
    return path


def _units_here(tmp_path: Path) -> list[Path]:
    """The units with ExecStart pointing at this environment's commands, which verify
    requires to exist; nothing else changes."""
    copies = []
    for name in UNITS:
        text = (SYSTEMD_DIR / name).read_text()
        text = text.replace("/usr/bin/evsed ", f"{BIN / 'evsed'} ")
        text = text.replace("/usr/bin/evsectl ", f"{BIN / 'evsectl'} ")
        (tmp_path / name).write_text(text)
        copies.append(tmp_path / name)
    return copies


def test_units_verify_clean(tmp_path: Path) -> None:
    tool = _tool("systemd-analyze")
    done = subprocess.run(
        [tool, "verify", *map(str, _units_here(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", done.stderr


def test_security_exposure_stays_ok(tmp_path: Path) -> None:
    tool = _tool("systemd-analyze")
    for unit in _units_here(tmp_path):
        done = subprocess.run(
            [tool, "security", "--offline=yes", "--no-pager", str(unit)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        match = re.search(rf"exposure level for {unit.name}: (\d+\.\d) (\w+)", done.stdout)
        assert match, done.stdout[-500:]
        assert match.group(2) in ("OK", "SAFE"), f"{unit.name}: {match.group(0)}"


def test_the_service_waits_for_the_daemon_and_gates_boot_complete() -> None:
    check = (SYSTEMD_DIR / "evsed-boot-check.service").read_text()
    for line in (
        "Requires=evsed.service",
        "After=evsed.service",
        "Before=boot-complete.target",
        "RequiredBy=boot-complete.target",
    ):
        assert line in check.splitlines()
    service = (SYSTEMD_DIR / "evsed.service").read_text()
    assert "Type=notify" in service.splitlines()
    assert "boot-complete" not in service  # the health check, not READY, decides a boot


def test_sysusers_and_tmpfiles_make_the_user_and_the_state_directory(tmp_path: Path) -> None:
    sysusers, tmpfiles = _tool("systemd-sysusers"), _tool("systemd-tmpfiles")
    if os.geteuid() != 0:
        pytest.skip("systemd-tmpfiles needs root to give the directory to evsed")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    subprocess.run(
        [sysusers, f"--root={root}", str(SYSTEMD_DIR / "evsed.sysusers.conf")],
        check=True,
        capture_output=True,
        timeout=60,
    )
    passwd = {x.split(":")[0]: x.split(":") for x in (root / "etc/passwd").read_text().splitlines()}
    groups = {x.split(":")[0]: x.split(":") for x in (root / "etc/group").read_text().splitlines()}
    user, group = passwd["evsed"], groups["evsed"]
    assert user[3] == group[2]  # the user's primary group is evsed
    subprocess.run(
        [tmpfiles, f"--root={root}", "--create", str(SYSTEMD_DIR / "evsed.tmpfiles.conf")],
        check=True,
        capture_output=True,
        timeout=60,
    )
    st = (root / "data/evsed").stat()
    assert stat.S_ISDIR(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o750
    assert (st.st_uid, st.st_gid) == (int(user[2]), int(group[2]))
