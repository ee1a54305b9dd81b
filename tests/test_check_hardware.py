"""``evsed check-hardware`` as a process, against the simulators (and parts that are missing).

The drivers are the daemon's own, talking to the simulators ``build_hardware`` starts; faults
present from the start (``[hal.sim] start_faults``) stand in for a broken part, real parts that
are not there (``simulate_meter = false`` with no meter) for a missing one.
"""

from __future__ import annotations

import select
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from evsed.errors import EXIT_CONFIG
from evsed_devtools.harness import write_config


def _check(tmp_path: Path, *args: str, **sections: Any) -> subprocess.CompletedProcess[str]:
    config = write_config(tmp_path, "ws://127.0.0.1:9/ocpp", "CP01", **sections)
    return subprocess.run(
        [sys.executable, "-m", "evsed", "check-hardware", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def _report(done: subprocess.CompletedProcess[str]) -> dict[tuple[str, str], tuple[str, str]]:
    """(where, part) -> (OK|FAIL, detail), from the report's part lines."""
    rows = {}
    for line in done.stdout.splitlines()[1:-1]:
        where, part, verdict, detail = (
            line[:12].strip(),
            line[13:23].strip(),
            line[24:29],
            line[30:],
        )
        rows[where, part] = (verdict.strip(), detail)
    return rows


def test_a_healthy_twin_charger_with_a_site_meter(tmp_path: Path) -> None:
    done = _check(
        tmp_path,
        connectors=2,
        charging={"site_fuse_a": 32.0},
        site_meter={"timeout_s": 0.5},  # the line of the connectors' meters (0.5 s)
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "charger CP01: 2 connector(s), hal sim"
    assert lines[-1] == "all parts OK"
    report = _report(done)
    assert list(report) == [
        ("connector 1", "MCU link"),
        ("connector 1", "meter"),
        ("connector 1", "contactor"),
        ("connector 2", "MCU link"),
        ("connector 2", "meter"),
        ("connector 2", "contactor"),
        ("site", "meter"),
    ]
    assert {verdict for verdict, _ in report.values()} == {"OK"}
    assert "CP A, MCU firmware evsed-sim 1.0" in report["connector 2", "MCU link"][1]
    assert report["connector 1", "meter"][1].endswith("230/230/230 V, 0.0/0.0/0.0 A")
    assert report["connector 1", "contactor"][1] == "coil off, mirror contact open"
    # Nothing but the hardware: no state directory was made.
    assert not (tmp_path / "state").exists()


def test_a_welded_contactor_fails_its_connector_only(tmp_path: Path) -> None:
    done = _check(tmp_path, connectors=2, hal__sim={"start_faults": "1:weld"})
    assert done.returncode == 1
    report = _report(done)
    verdict, detail = report["connector 1", "contactor"]
    assert verdict == "FAIL"
    assert "coil off but the mirror contact reads closed (5 of 5 reads)" in detail
    assert report["connector 2", "contactor"] == ("OK", "coil off, mirror contact open")
    assert report["connector 1", "MCU link"][0] == "OK"
    assert done.stdout.splitlines()[-1] == "1 problem(s)"


def test_silent_mcu_offline_meters_and_an_mcu_fault(tmp_path: Path) -> None:
    done = _check(
        tmp_path,
        "--timeout",
        "0.5",
        connectors=2,
        hal__sim={"start_faults": "meter-offline,2:mcu-silent,1:rcd"},
    )
    assert done.returncode == 1
    report = _report(done)
    assert report["connector 2", "MCU link"] == (
        "FAIL",
        "no valid status frame in 0.5 s; nothing at all: MCU powered, TX/RX crossed?",
    )
    verdict, detail = report["connector 1", "MCU link"]
    assert verdict == "FAIL"
    assert detail.endswith("the MCU reports faults: rcd")
    for connector in (1, 2):
        verdict, detail = report[f"connector {connector}", "meter"]
        assert verdict == "FAIL"
        assert f"id {connector}: no valid answer" in detail
        assert "silent" in detail
    assert done.stdout.splitlines()[-1] == "4 problem(s)"


def test_real_parts_that_are_not_there(tmp_path: Path) -> None:
    # A dev board half set up: the real pilot and meter are configured but absent, the
    # contactor still simulated.
    done = _check(
        tmp_path,
        hal__sim={"simulate_pilot": False, "simulate_meter": False},
        connector__pilot={"port": str(tmp_path / "evsed-pilot1")},
        connector__meter={"transport": "tcp", "host": "127.0.0.1", "port": 9, "timeout_s": 0.3},
    )
    assert done.returncode == 1
    assert (
        done.stdout.splitlines()[0] == "charger CP01: 1 connector(s), hal sim (real: pilot, meter)"
    )
    report = _report(done)
    assert report["connector 1", "MCU link"] == (
        "FAIL",
        f"{tmp_path / 'evsed-pilot1'} does not exist (UART enabled? udev rule?)",
    )
    assert report["connector 1", "meter"] == (
        "FAIL",
        "meter sdm630 at tcp 127.0.0.1:9 id 1: cannot connect",
    )
    assert report["connector 1", "contactor"][0] == "OK"


def test_it_does_not_contact_the_csms(tmp_path: Path) -> None:
    with socket.socket() as csms:
        csms.bind(("127.0.0.1", 0))
        csms.listen()
        port = csms.getsockname()[1]
        config = write_config(tmp_path, f"ws://127.0.0.1:{port}/ocpp", "CP01")
        done = subprocess.run(
            [sys.executable, "-m", "evsed", "check-hardware", "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        readable, _, _ = select.select([csms], [], [], 0.2)
        assert readable == [], "check-hardware connected to the CSMS"


def test_refuses_while_the_daemon_runs(tmp_path: Path) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as control:
        control.bind(str(tmp_path / "control.sock"))  # where write_config puts the socket
        control.listen()
        done = _check(tmp_path)
    assert done.returncode == 1
    assert "evsed is running" in done.stderr
    assert "stop it first (systemctl stop evsed)" in done.stderr
    assert done.stdout == ""


def test_bad_input(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[hal]\nkind = 'sim'\n[[connectors]]\nid = 'one'\n")
    done = subprocess.run(
        [sys.executable, "-m", "evsed", "check-hardware", "--config", str(broken)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == EXIT_CONFIG
    assert "configuration error" in done.stderr
    assert "Traceback" not in done.stderr
    done = _check(tmp_path, "--timeout", "0")
    assert done.returncode == 2
    assert "--timeout must be between 0 and 60 seconds" in done.stderr
    # A fault name the simulators do not know is a configuration error too.
    done = _check(tmp_path, hal__sim={"start_faults": "1:melted"})
    assert done.returncode == EXIT_CONFIG
    assert "hal.sim.start_faults" in done.stderr
