"""Run the development CSMS and the daemon as real processes, and talk to them.

Used by ``make demo`` and the end-to-end tests. Only 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from evsed_devcsms.client import AdminClient

PYTHON = sys.executable


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (for a server started later)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


@dataclass
class DevCsms:
    proc: subprocess.Popen[str]
    ws_url: str
    http_url: str
    #: Where and with which ``serve`` arguments it was started (for ``restart``).
    workdir: Path | None = None
    args: tuple[str, ...] = ()

    @classmethod
    def start(cls, workdir: Path, *args: str) -> DevCsms:
        log = open(workdir / "devcsms.log", "a")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            [PYTHON, "-m", "evsed_devcsms", "serve", "--port", "0", "--http-port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"ws=(\S+) http=(\S+)", line)
        if not match:
            proc.kill()
            raise RuntimeError(f"dev CSMS did not start: {line!r}")
        return cls(proc, match.group(1), match.group(2), workdir, args)

    def restart(self, down_s: float = 0.0, args: tuple[str, ...] | None = None) -> None:
        """Stop the CSMS (chargers see the connection drop), wait ``down_s``, and start it
        again on the same ports with the same arguments (or ``args``: e.g. with TLS). The new
        process has a fresh journal and state: transaction ids start at 1 again, admin API
        settings are gone."""
        assert self.workdir is not None, "restart needs a CSMS made by DevCsms.start"
        ws_port, http_port = urlsplit(self.ws_url).port, urlsplit(self.http_url).port
        self.stop()
        time.sleep(down_s)
        ports = ("--port", str(ws_port), "--http-port", str(http_port))
        if args is not None:
            self.args = args
        fresh = DevCsms.start(self.workdir, *self.args, *ports)
        self.proc, self.ws_url, self.http_url = fresh.proc, fresh.ws_url, fresh.http_url

    @property
    def admin(self) -> AdminClient:
        return AdminClient(self.http_url)  # the URL is the same after a restart

    def api(self, path: str, body: dict[str, Any] | None = None) -> Any:
        """GET ``path``, or POST ``body`` to it."""
        return self.admin.request("GET" if body is None else "POST", path, body)

    def messages(self, cp: str | None = None) -> list[dict[str, Any]]:
        return self.admin.messages(cp=cp)

    def calls(self, cp: str | None = None, action: str | None = None) -> list[dict[str, Any]]:
        """CALLs the charger sent (type 2, direction in), optionally of one action."""
        return [
            m
            for m in self.messages(cp)
            if m["type"] == 2 and m["dir"] == "in" and (action is None or m["action"] == action)
        ]

    def wait_for_calls(
        self, action: str, count: int = 1, cp: str = "CP01", timeout: float = 15.0
    ) -> list[dict[str, Any]]:
        """Wait until the charger has sent at least ``count`` CALLs of ``action``."""
        calls: list[dict[str, Any]] = wait_for(
            lambda: (found := self.calls(cp, action)) and len(found) >= count and found,
            timeout,
            f"{count} x {action}",
        )
        return calls

    def call(
        self,
        action: str,
        payload: dict[str, Any],
        cp: str = "CP01",
        timeout: float | None = None,
        *,
        validate: bool = True,
    ) -> dict[str, Any]:
        """Send a CALL to the charger (``POST /api/call``): ``{"id", "result"}`` or
        ``{"id", "error"}``; ``validate=False`` sends a payload that breaks the schema."""
        return self.admin.call(cp, action, payload, timeout=timeout, validate=validate)

    def result(
        self, action: str, payload: dict[str, Any], cp: str = "CP01", timeout: float | None = None
    ) -> dict[str, Any]:
        """The charger's CALLRESULT payload for a CALL; fails on a CALLERROR."""
        answer = self.call(action, payload, cp, timeout)
        assert "result" in answer, f"{action} answered with {answer}"
        result: dict[str, Any] = answer["result"]
        return result

    def send_raw(
        self, frame: str, cp: str = "CP01", timeout: float | None = None
    ) -> dict[str, Any]:
        """Send one frame as typed (``POST /api/send-raw``): the charger's answer, or
        ``{"id": None}`` for a frame without a readable message id."""
        return self.admin.send_raw(cp, frame, timeout=timeout)

    def set_id_tag(
        self,
        id_tag: str,
        status: str | None,
        parent_id_tag: str | None = None,
        expiry_date: str | None = None,
    ) -> None:
        """What Authorize, StartTransaction and StopTransaction answer for ``id_tag``
        (None: back to the ``--tags`` answer)."""
        self.admin.set_id_tag(id_tag, status, parent_id_tag=parent_id_tag, expiry_date=expiry_date)

    def answer(
        self,
        action: str,
        mode: str,
        delay: float = 0.0,
        times: int | None = None,
        code: str | None = None,
    ) -> None:
        """How the charger's CALLs of ``action`` are answered: ``drop`` (never), ``delay``
        (after ``delay`` s), ``error`` (CALLERROR with errorCode ``code``) or ``normal``;
        ``times`` CALLs only."""
        self.admin.set_answer_rule(action, mode, delay=delay, times=times, code=code)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@dataclass
class Evsed:
    proc: subprocess.Popen[str]
    config: Path
    log_path: Path

    @classmethod
    def start(
        cls,
        workdir: Path,
        csms_url: str,
        charger_id: str = "CP01",
        *,
        env: dict[str, str] | None = None,
        **sections: Any,
    ) -> Evsed:
        """Start the daemon; ``env`` adds environment variables (e.g. a private D-Bus)."""
        config = write_config(workdir, csms_url, charger_id, **sections)
        return cls.launch(config, workdir / "evsed.log", env=env)

    @classmethod
    def launch(cls, config: Path, log_path: Path, *, env: dict[str, str] | None = None) -> Evsed:
        """Start the daemon on an existing config file (as after a reboot)."""
        log = open(log_path, "a")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            [PYTHON, "-m", "evsed", "--config", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            # faulthandler: a daemon that hangs on SIGTERM dumps its stacks when stop() aborts it.
            env={**os.environ, "PYTHONFAULTHANDLER": "1", **(env or {})},
        )
        daemon = cls(proc, config, log_path)
        try:
            wait_for(daemon._ready, 20, "evsed control socket")
        except TimeoutError:
            daemon.kill()
            raise RuntimeError("evsed did not start:\n" + log_path.read_text()) from None
        return daemon

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"evsed exited with {self.proc.returncode}:\n{self.log()}")
        return self.ctl("status").returncode == 0

    def log(self) -> str:
        return self.log_path.read_text()

    def ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [PYTHON, "-m", "evsed.control.cli", "--config", str(self.config), *args],
            capture_output=True,
            text=True,
            timeout=30,
        )

    def sim(self, *words: str, connector: int | None = None) -> str:
        """``evsectl sim WORDS`` (``--connector N`` when ``connector`` is given)."""
        where = ("--connector", str(connector)) if connector is not None else ()
        result = self.ctl("sim", *where, *words)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    def status(self) -> dict[str, Any]:
        result = self.ctl("status", "--json")
        assert result.returncode == 0, result.stderr
        status: dict[str, Any] = json.loads(result.stdout)
        return status

    def wait_registered(self, timeout: float = 15.0) -> None:
        """Until the CSMS has accepted the daemon's BootNotification."""
        wait_for(
            lambda: self.status()["ocpp"]["registration"] == "Accepted", timeout, "registration"
        )

    def charge(self, tag: str = "04E91C2A", connector: int = 1) -> None:
        """Plug the simulated car in at ``connector``, present ``tag``, let the car ask for
        power; returns once that connector's contactor is closed."""
        self.sim("plug", connector=connector)
        self.sim("swipe", tag, connector=connector)
        self.sim("ev-state", "C", connector=connector)
        wait_for(
            lambda: self.connector(connector)["contactor_closed"],
            what=f"contactor of connector {connector} closed",
        )

    def connector(self, connector_id: int = 1) -> dict[str, Any]:
        return next(c for c in self.status()["connectors"] if c["id"] == connector_id)

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM and wait; a daemon still running after ``timeout`` gets SIGABRT (its Python
        stacks go to the log) and then SIGKILL. Returns the exit code (-6 or -9 then)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGABRT)
                try:
                    self.proc.wait(5)
                except subprocess.TimeoutExpired:
                    self.kill()
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()


# GPIO pins of the simulated connectors (coil, mirror contact), by connector id.
SIM_PINS = {1: (17, 27), 2: (22, 23), 3: (5, 6), 4: (13, 19)}


def write_config(
    workdir: Path, csms_url: str, charger_id: str, *, connectors: int = 1, **sections: Any
) -> Path:
    """A config for a simulated charger with ``connectors`` connectors in ``workdir``.

    ``sections`` override keys per table (``hal__sim`` for ``[hal.sim]``); a section named
    ``connector`` (``connector__meter``, ...) applies to every ``[[connectors]]`` table, one
    named ``connector2`` (``connector2__meter``, ...) to connector 2 only."""
    base: dict[str, dict[str, Any]] = {
        "charger": {
            "id": charger_id,
            "state_dir": str(workdir / "state"),
            "control_socket": str(workdir / "control.sock"),
        },
        "csms": {"url": csms_url, "reconnect_min_s": 0.2, "reconnect_max_s": 1.0},
        "charging": {"meter_values_interval_s": 2.0, "c_debounce_s": 0.2},
        "hal": {"kind": "sim"},
        "ota": {"enabled": False},  # firmware-update tests turn it on
        "logging": {"level": "DEBUG"},
    }
    tables: list[dict[str, dict[str, Any]]] = []
    for number in range(1, connectors + 1):
        coil, feedback = SIM_PINS[number]
        tables.append(
            {
                "": {"id": number},
                "meter": {"poll_interval_s": 0.2, "timeout_s": 0.5, "device_id": number},
                "contactor": {"pin": coil, "feedback_pin": feedback},
            }
        )
    for name, values in sections.items():
        head, _, sub = name.partition("__")
        if head == "connector" or (head.startswith("connector") and head[9:].isdigit()):
            chosen = tables if head == "connector" else [tables[int(head[9:]) - 1]]
            for table in chosen:
                table.setdefault(sub.replace("__", "."), {}).update(values)
        else:
            base.setdefault(name.replace("__", "."), {}).update(values)
    lines: list[str] = []
    for name, values in base.items():
        lines += [f"[{name}]", *_toml_values(values), ""]
    for table in tables:
        lines += ["[[connectors]]", *_toml_values(table.pop("")), ""]
        for name, values in table.items():
            lines += [f"[connectors.{name}]", *_toml_values(values), ""]
    path = workdir / "evsed.toml"
    path.write_text("\n".join(lines))
    return path


def _toml_values(values: dict[str, Any]) -> list[str]:
    return [f"{key} = {json.dumps(value)}" for key, value in values.items()]


def run_demo(
    name: str, description: str, run: Callable[[Path], int], argv: list[str] | None
) -> int:
    """Command-line wrapper of a demo: a fresh work directory, kept (and named) on failure or
    with ``--keep``, removed otherwise."""
    import argparse
    import shutil
    import tempfile

    parser = argparse.ArgumentParser(prog=name, description=description)
    parser.add_argument("--keep", action="store_true", help="keep the work directory and logs")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix=f"evsed-{name}-"))
    try:
        code = run(workdir)
    except Exception as exc:
        print(f"{name} FAILED: {exc}\nlogs in {workdir}", file=sys.stderr)
        return 1
    if args.keep or code:
        print(f"logs in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return code
