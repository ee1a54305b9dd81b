"""The daemon as a process: SIGTERM, refusals, the network (sd_notify: test_systemd_notify.py)."""

import subprocess
import sys
from pathlib import Path

from evsed_devtools.harness import DevCsms, Evsed, wait_for, write_config


def test_sigterm_opens_contactor_and_ends_transaction(tmp_path: Path, csms: DevCsms) -> None:
    evsed = Evsed.start(tmp_path, csms.ws_url)
    evsed.wait_registered()
    evsed.charge()
    wait_for(lambda: csms.calls("CP01", "StartTransaction"), what="StartTransaction")
    assert evsed.stop() == 0
    log = evsed.log()
    assert log.index("shutting down: opening contactor") < log.index("transaction 1 stopped")
    stops = csms.calls("CP01", "StopTransaction")
    assert [s["payload"]["reason"] for s in stops] == ["Reboot"]


def test_sim_commands_refused_on_real_hardware(tmp_path: Path, csms: DevCsms) -> None:
    # A hardware config whose devices do not exist: the daemon keeps running (link down,
    # meter unreadable, contactor open) and must refuse simulator commands.
    evsed = Evsed.start(
        tmp_path,
        csms.ws_url,
        hal={"kind": "hardware"},
        connector__pilot={"port": str(tmp_path / "no-such-tty")},
        connector__meter={"transport": "tcp", "host": "127.0.0.1", "port": 9, "timeout_s": 0.2},
        connector__contactor={"pin_factory": "mock"},
    )
    try:
        result = evsed.ctl("sim", "plug")
        assert result.returncode == 1
        assert 'sim commands need the simulated HAL ([hal] kind = "sim")' in result.stderr
        connector = evsed.connector()
        assert not connector["contactor_closed"]
        wait_for(lambda: "mcu-link-lost" in evsed.connector()["faults"], what="link fault")
        assert evsed.connector()["ocpp_status"] == "Faulted"
    finally:
        assert evsed.stop() == 0


def test_evsectl_reports_unreachable_daemon(tmp_path: Path) -> None:
    config = write_config(tmp_path, "ws://127.0.0.1:9/ocpp", "CP01")
    result = subprocess.run(
        [sys.executable, "-m", "evsed.control.cli", "--config", str(config), "status"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 69
    assert "cannot reach evsed" in result.stderr


def test_network_down_and_up_reconnects(tmp_path: Path, csms: DevCsms) -> None:
    evsed = Evsed.start(tmp_path, csms.ws_url)
    try:
        wait_for(lambda: evsed.status()["ocpp"]["connection"] == "connected", what="connected")
        evsed.wait_registered()
        evsed.sim("network", "down")
        wait_for(lambda: evsed.status()["ocpp"]["connection"] == "network-down", what="down")
        wait_for(lambda: not _connected(csms), what="CSMS sees the charger gone")
        evsed.sim("plug")
        evsed.sim("network", "up")
        wait_for(lambda: evsed.status()["ocpp"]["connection"] == "connected", what="reconnect")
        wait_for(lambda: _last_status(csms) == "Preparing", what="status after reconnect")
    finally:
        assert evsed.stop() == 0
    # Boot once per process; a reconnect only refreshes the connector statuses.
    assert len(csms.calls("CP01", "BootNotification")) == 1


def _connected(csms: DevCsms) -> bool:
    return any(c["id"] == "CP01" and c["connected"] for c in csms.api("/api/chargers"))


def _last_status(csms: DevCsms) -> str | None:
    sent = [m["payload"] for m in csms.calls("CP01", "StatusNotification")]
    sent = [p for p in sent if p["connectorId"] == 1]
    return sent[-1]["status"] if sent else None
