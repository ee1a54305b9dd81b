"""The daemon as systemd runs it with ``Type=notify``: a real NOTIFY_SOCKET that the test binds.

READY=1 once the hardware, the control socket and the CSMS client are up; WATCHDOG=1 from the
event loop, stopping while the loop is blocked (``evsectl sim stall``); STOPPING=1 on SIGTERM.
"""

from __future__ import annotations

import itertools
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from evsed_devtools.harness import DevCsms, Evsed, wait_for, write_config

Message = dict[str, str]


class NotifySocket:
    """The service manager's end: a datagram socket; a thread stamps each message on arrival,
    so gaps between watchdog pings are measured here, not in the daemon."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(path))
        self._sock.settimeout(0.05)
        self._lock = threading.Lock()
        self._received: list[tuple[float, Message]] = []
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._closing.is_set():
            try:
                data = self._sock.recv(4096)
            except TimeoutError:
                continue
            message = dict(line.split("=", 1) for line in data.decode().splitlines())
            with self._lock:
                self._received.append((time.monotonic(), message))

    def received(self) -> list[tuple[float, Message]]:
        with self._lock:
            return list(self._received)

    def first(self, key: str, timeout: float = 20.0) -> tuple[float, Message]:
        """The first message that sets ``key``, waiting up to ``timeout``."""
        found: tuple[float, Message] = wait_for(
            lambda: next(((t, m) for t, m in self.received() if key in m), None),
            timeout,
            f"{key} on NOTIFY_SOCKET",
        )
        return found

    def pings(self) -> list[float]:
        return [t for t, m in self.received() if m.get("WATCHDOG") == "1"]

    def close(self) -> None:
        self._closing.set()
        self._thread.join(5)
        self._sock.close()


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    sock = NotifySocket(tmp_path / "notify.sock")
    yield sock
    sock.close()


def _env(sock: NotifySocket, **extra: str) -> dict[str, str]:
    return {"NOTIFY_SOCKET": str(sock.path), **extra}


def test_ready_once_hardware_control_socket_and_csms_client_are_up(
    tmp_path: Path, csms: DevCsms, notify_socket: NotifySocket
) -> None:
    evsed = Evsed.start(tmp_path, csms.ws_url, connectors=2, env=_env(notify_socket))
    try:
        _, ready = notify_socket.first("READY")
        assert ready["READY"] == "1"
        # The CSMS client was already connecting (or connected) when READY=1 left: the link
        # state is read as the datagram is made.
        assert ready["STATUS"] in (
            "charger CP01: 2 connector(s), CSMS connecting",
            "charger CP01: 2 connector(s), CSMS connected",
        )
        assert stat.S_ISSOCK((tmp_path / "control.sock").stat().st_mode)
        log = evsed.log()
        assert log.index("simulated hardware up") < log.index("up: charger CP01")
        assert [m for _, m in notify_socket.received()].count(ready) == 1
        evsed.wait_registered()
    finally:
        assert evsed.stop() == 0


def test_watchdog_pings_from_the_event_loop_stop_while_it_is_stalled(
    tmp_path: Path, csms: DevCsms, notify_socket: NotifySocket
) -> None:
    # WatchdogSec=200ms: a ping every 100 ms.
    env = _env(notify_socket, WATCHDOG_USEC="200000")
    evsed = Evsed.start(tmp_path, csms.ws_url, env=env)
    try:
        wait_for(lambda: len(notify_socket.pings()) >= 5, 5, "five watchdog pings")
        stall_from = time.monotonic()
        assert evsed.sim("stall", "1500") == "event loop stalled for 1500 ms"
        stall_to = time.monotonic()
        wait_for(lambda: len([t for t in notify_socket.pings() if t > stall_to]) >= 5, 5, "pings")
    finally:
        assert evsed.stop() == 0
    pings = notify_socket.pings()
    gaps = [(later - earlier, earlier) for earlier, later in itertools.pairwise(pings)]
    longest, since = max(gaps)
    assert longest >= 1.4, f"no gap in the pings during the stall: {gaps}"
    # The gap lies within the evsectl call that stalled the loop (its own start-up included).
    assert stall_from - 0.2 <= since and since + longest <= stall_to + 0.5, (since, gaps)
    # Outside the stall the pings keep their pace (generous for a loaded machine).
    others = [gap for gap, at in gaps if not stall_from - 0.2 <= at <= stall_to]
    assert others and max(others) < 0.6, others


def test_stopping_on_sigterm_and_no_pings_for_another_pid(
    tmp_path: Path, csms: DevCsms, notify_socket: NotifySocket
) -> None:
    # WATCHDOG_PID names another process (as systemd does for a forked child): no pings.
    env = _env(notify_socket, WATCHDOG_USEC="200000", WATCHDOG_PID="1")
    evsed = Evsed.start(tmp_path, csms.ws_url, env=env)
    notify_socket.first("READY")
    evsed.wait_registered()
    evsed.proc.send_signal(signal.SIGTERM)
    stopping_at, stopping = notify_socket.first("STOPPING", 10)
    assert stopping["STOPPING"] == "1"
    assert evsed.proc.wait(15) == 0
    assert notify_socket.pings() == []
    ready_at, _ = notify_socket.first("READY")
    assert ready_at < stopping_at


def test_no_ready_when_start_up_fails(tmp_path: Path, notify_socket: NotifySocket) -> None:
    # The control socket cannot be created (its directory is a file): evsed exits, never ready.
    (tmp_path / "not-a-dir").write_text("")
    config = write_config(
        tmp_path,
        "ws://127.0.0.1:9/ocpp",
        "CP01",
        charger={"control_socket": str(tmp_path / "not-a-dir" / "control.sock")},
    )
    done = subprocess.run(
        [sys.executable, "-m", "evsed", "--config", str(config)],
        env={"PATH": "/usr/bin:/bin", **_env(notify_socket)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    time.sleep(0.2)  # let the reader thread take any datagram still in flight
    assert [m for _, m in notify_socket.received() if "READY" in m] == []
    assert any(m.get("STOPPING") == "1" for _, m in notify_socket.received())


def test_soft_reset_reloads_in_the_same_process(
    tmp_path: Path, csms: DevCsms, notify_socket: NotifySocket
) -> None:
    evsed = Evsed.start(tmp_path, csms.ws_url, env=_env(notify_socket))
    try:
        notify_socket.first("READY")
        evsed.wait_registered()
        assert csms.result("Reset", {"type": "Soft"}) == {"status": "Accepted"}
        _, reloading = notify_socket.first("RELOADING")
        assert reloading["RELOADING"] == "1"
        assert int(reloading["MONOTONIC_USEC"]) > 0
        # The exec'd daemon (same PID, so systemd keeps supervising it) is ready again.
        wait_for(
            lambda: [m for _, m in notify_socket.received() if "READY" in m][1:],
            30,
            "READY=1 after the reset",
        )
        messages = [m for _, m in notify_socket.received() if "WATCHDOG" not in m]
        assert [next(iter(m)) for m in messages] == ["READY", "RELOADING", "READY"]
        assert evsed.proc.poll() is None
    finally:
        assert evsed.stop() == 0
