"""``evsectl wait-healthy``, which the boot assessment unit (systemd/evsed-boot-check.service)
runs: it ends 0 once the daemon's health check passes, 1 with the reason when it does not."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from evsed_devtools.harness import DevCsms, Evsed, write_config


def test_healthy_once_the_csms_accepted_the_boot(tmp_path: Path, csms: DevCsms) -> None:
    evsed = Evsed.start(tmp_path, csms.ws_url)
    try:
        done = evsed.ctl("wait-healthy", "--timeout", "20")
        assert (done.returncode, done.stdout) == (0, "healthy\n"), done.stderr
        assert evsed.status()["health"] == {"ok": True, "reason": None}
        assert "health  ok" in evsed.ctl("status").stdout
    finally:
        assert evsed.stop() == 0


def test_not_healthy_without_the_csms(tmp_path: Path) -> None:
    evsed = Evsed.start(tmp_path, "ws://127.0.0.1:9/ocpp")
    try:
        done = evsed.ctl("wait-healthy", "--timeout", "2")
        assert done.returncode == 1
        assert done.stderr == (
            "evsectl: not healthy after 2 s: the CSMS has not accepted our BootNotification\n"
        )
    finally:
        assert evsed.stop() == 0


def test_not_healthy_with_a_meter_that_does_not_answer(tmp_path: Path, csms: DevCsms) -> None:
    evsed = Evsed.start(tmp_path, csms.ws_url, hal__sim={"start_faults": "meter-offline"})
    try:
        evsed.wait_registered()
        done = evsed.ctl("wait-healthy", "--timeout", "2")
        assert done.returncode == 1
        assert done.stderr == "evsectl: not healthy after 2 s: connector 1: meter not readable\n"
    finally:
        assert evsed.stop() == 0


def test_a_daemon_that_does_not_answer_is_waited_for_then_named(tmp_path: Path) -> None:
    config = write_config(tmp_path, "ws://127.0.0.1:9/ocpp", "CP01")
    cli = [sys.executable, "-m", "evsed.control.cli", "--config", str(config)]
    done = subprocess.run(
        [*cli, "wait-healthy", "--timeout", "1.5"], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 1
    assert done.stderr.startswith("evsectl: not healthy after 1.5 s: cannot reach evsed at ")
    done = subprocess.run(
        [*cli, "wait-healthy", "--timeout", "-1"], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2
    assert "--timeout must be between 0 and 86400 seconds" in done.stderr
