"""The RAUC sandbox against the machine's real rauc: install, boot counting, rollback, rejection.

Only the bootloader and the reboot are emulated (devcsms/evsed_devtools/rauc_sandbox.py says how);
everything asserted about bundles, signatures, slots and marks comes from RAUC itself.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from evsed_devtools.rauc_sandbox import MiB, RaucSandbox, slots_by_bootname

pytestmark = pytest.mark.skipif(
    shutil.which("rauc") is None,
    reason="rauc is not installed (Debian package rauc; `make test` installs it as root)",
)


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[RaucSandbox]:
    with RaucSandbox(tmp_path).create() as sandbox:
        yield sandbox


def install(sandbox: RaucSandbox, bundle: Path) -> str:
    """Install with the rauc CLI; return its output (RAUC prints LastError on stdout)."""
    result = sandbox.rauc("install", str(bundle))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return output


def refused(sandbox: RaucSandbox, bundle: Path) -> str:
    result = sandbox.rauc("install", str(bundle))
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    return output


def mark(sandbox: RaucSandbox, *args: str) -> None:
    result = sandbox.rauc("status", *args)
    assert result.returncode == 0, result.stdout + result.stderr


def boot_status(sandbox: RaucSandbox) -> dict[str, str]:
    return {name: s["boot_status"] for name, s in slots_by_bootname(sandbox.status()).items()}


def test_install_boot_and_mark_good_commits_the_new_slot(sandbox: RaucSandbox) -> None:
    assert sandbox.start_service("A") == "A"
    status = sandbox.status()
    assert (status["booted"], status["boot_primary"]) == ("A", "rootfs.0")
    assert sandbox.image_version("A") == "1.0.0"

    install(sandbox, sandbox.build_bundle("2.0.0"))

    status = sandbox.status()
    assert (status["booted"], status["boot_primary"]) == ("A", "rootfs.1")
    assert slots_by_bootname(status)["A"]["state"] == "booted"
    assert sandbox.slot_versions() == {"A": None, "B": "2.0.0"}
    assert sandbox.image_version("B") == "2.0.0"
    # RAUC marks the target bad before writing it, and makes it primary after.
    calls = sandbox.bootloader_log()
    assert calls.index("set-primary B") > calls.index("set-state B bad")

    assert sandbox.boot() == "B"
    status = sandbox.status()
    assert status["booted"] == "B"
    assert status["bootloader"]["attempts"] == {"A": 3, "B": 2}
    assert "VERSION_ID=2.0.0" in sandbox.os_release.read_text()

    mark(sandbox, "mark-good", "booted")
    assert sandbox.bootloader().attempts["B"] == 3

    assert sandbox.boot() == "B"
    state = sandbox.bootloader()
    assert (state.attempts["B"], state.marked_good["B"]) == (3, True)
    assert boot_status(sandbox) == {"A": "good", "B": "good"}


def test_unconfirmed_slot_falls_back_once_its_attempts_are_used_up(
    sandbox: RaucSandbox,
) -> None:
    sandbox.start_service("A")
    install(sandbox, sandbox.build_bundle("2.0.0"))

    assert [sandbox.boot() for _ in range(3)] == ["B", "B", "B"]
    assert sandbox.bootloader().attempts["B"] == 0
    assert sandbox.boot() == "A"

    status = sandbox.status()
    assert (status["booted"], status["boot_primary"]) == ("A", "rootfs.0")
    assert boot_status(sandbox) == {"A": "good", "B": "bad"}


def test_mark_bad_and_mark_active_other_roll_back(sandbox: RaucSandbox) -> None:
    sandbox.start_service("A")
    install(sandbox, sandbox.build_bundle("2.0.0"))
    assert sandbox.boot() == "B"

    mark(sandbox, "mark-bad", "booted")
    mark(sandbox, "mark-active", "other")

    assert sandbox.boot() == "A"
    status = sandbox.status()
    assert status["boot_primary"] == "rootfs.0"
    assert boot_status(sandbox) == {"A": "good", "B": "bad"}
    assert status["bootloader"]["order"] == ("A",)
    assert "VERSION_ID=1.0.0" in sandbox.os_release.read_text()


def test_bundle_signed_by_a_ca_outside_the_keyring_is_rejected(sandbox: RaucSandbox) -> None:
    sandbox.start_service("A")
    output = refused(sandbox, sandbox.build_bundle("2.0.0", signed_by="other"))
    assert "signature verification failed" in output
    assert "unable to get local issuer certificate" in output
    assert sandbox.image_version("B") is None
    assert sandbox.status()["boot_primary"] == "rootfs.0"


def test_bundle_for_another_compatible_is_rejected(sandbox: RaucSandbox) -> None:
    sandbox.start_service("A")
    output = refused(sandbox, sandbox.build_bundle("2.0.0", compatible="someone-elses-board"))
    assert "Compatible mismatch: Expected 'evsed-sim'" in output
    assert "'someone-elses-board'" in output
    assert sandbox.image_version("B") is None


def test_install_check_hook_rejects_with_its_stderr(sandbox: RaucSandbox) -> None:
    sandbox.start_service("A")
    hook = 'echo "evsed: battery of the tests says no" >&2\nexit 10'
    output = refused(sandbox, sandbox.build_bundle("2.0.0", hook_install_check=hook))
    assert "Bundle rejected: Hook returned: evsed: battery of the tests says no" in output
    assert sandbox.image_version("B") is None


def test_rauc_info_reads_version_of_a_large_bundle(sandbox: RaucSandbox) -> None:
    bundle = sandbox.build_bundle("2.1.0", payload_bytes=3 * MiB)
    assert bundle.stat().st_size > 3 * MiB
    result = sandbox.rauc(
        "info", f"--keyring={sandbox.keyring}", "--output-format=json", str(bundle)
    )
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert (info["compatible"], info["version"]) == ("evsed-sim", "2.1.0")


def test_counting_every_boot_like_u_boot_needs_mark_good_on_each_boot(tmp_path: Path) -> None:
    with RaucSandbox(tmp_path, count_every_boot=True).create() as sandbox:
        assert sandbox.start_service() == "A"
        assert sandbox.bootloader().attempts["A"] == 2
        mark(sandbox, "mark-good", "booted")
        assert sandbox.bootloader().attempts["A"] == 3
        assert sandbox.boot() == "A"
        assert sandbox.bootloader().attempts["A"] == 2


def test_close_leaves_no_bus_or_rauc_process(tmp_path: Path) -> None:
    sandbox = RaucSandbox(tmp_path).create()
    sandbox.start_service("A")
    sandbox.boot()
    pids = sandbox.pids()
    assert len(pids) == 2  # dbus-daemon and rauc service

    sandbox.close()

    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert _pids_with_argument(str(sandbox.system_conf)) == []


def _pids_with_argument(text: str) -> list[int]:
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            arguments = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue  # exited meanwhile
        if any(text.encode() in argument for argument in arguments):
            found.append(int(entry.name))
    return found
