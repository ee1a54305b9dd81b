"""Shared by the power-loss and offline tests: a development CSMS that can go down and come back
on the same port, and readers for what the charger sent to it."""

from __future__ import annotations

import json
import socket
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from evsed_devtools.harness import DevCsms, Evsed, wait_for

CP = "CP01"
TAG = "04E91C2A"
TX_ACTIONS = ("StartTransaction", "MeterValues", "StopTransaction")
ENERGY = "Energy.Active.Import.Register"


def utc_now() -> str:
    """Now, in the form the charger writes timestamps (comparable as strings)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Csms:
    """The development CSMS on one fixed port. ``stop`` and ``start`` play a CSMS outage; each
    process keeps its own journal and :meth:`calls` reads them all, in order."""

    def __init__(self, workdir: Path, *args: str) -> None:
        self.workdir = workdir
        self.args = args
        self.port = free_port()
        self.dirs: list[Path] = []
        self.server: DevCsms | None = None
        self.start()

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp"

    @property
    def up(self) -> DevCsms:
        assert self.server is not None, "the CSMS is down"
        return self.server

    def start(self) -> None:
        workdir = self.workdir / f"csms-{len(self.dirs) + 1}"
        workdir.mkdir()
        self.dirs.append(workdir)
        self.server = DevCsms.start(
            workdir,
            "--port",
            str(self.port),
            "--tags",
            TAG,
            "--heartbeat-interval",
            "60",
            *self.args,
            "--journal",
            str(workdir / "journal.jsonl"),
        )

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def journal(self) -> list[dict[str, Any]]:
        """Every frame of every CSMS process so far, in order; ``n`` numbers the process."""
        entries: list[dict[str, Any]] = []
        for number, workdir in enumerate(self.dirs, start=1):
            # Ours, or the journal the e2e conftest asked for instead (the last --journal wins).
            for path in workdir.glob("*.jsonl"):
                lines = path.read_text().splitlines(keepends=True)
                entries += [{**json.loads(x), "n": number} for x in lines if x.endswith("\n")]
        return entries

    def calls(self, action: str | None = None, *actions: str) -> list[dict[str, Any]]:
        """CALLs the charger sent, of ``action`` (and ``actions``) or all; each with ``answer``,
        the CSMS's CALLRESULT payload (None if it sent none)."""
        wanted = {action, *actions} if action else None
        entries = self.journal()
        answers = {(e["n"], e["id"]): e for e in entries if e["dir"] == "out" and e["type"] == 3}
        calls = []
        for e in entries:
            if e["dir"] != "in" or e["type"] != 2 or e["cp"] != CP:
                continue
            if wanted is None or e["action"] in wanted:
                answer = answers.get((e["n"], e["id"]))
                calls.append({**e, "answer": answer["payload"] if answer else None})
        return calls

    def change_configuration(self, key: str, value: str) -> None:
        answer = self.up.api(
            "/api/call",
            {"cp": CP, "action": "ChangeConfiguration", "payload": {"key": key, "value": value}},
        )
        assert answer["result"]["status"] == "Accepted", answer

    def call(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        answer: dict[str, Any] = self.up.api(
            "/api/call", {"cp": CP, "action": action, "payload": payload}
        )
        assert "result" in answer, answer
        result: dict[str, Any] = answer["result"]
        return result


def registered(evsed: Evsed) -> None:
    wait_for(lambda: evsed.status()["ocpp"]["connection"] == "connected", what="connection")
    evsed.wait_registered()


def drained(evsed: Evsed, timeout: float = 20.0) -> None:
    wait_for(lambda: evsed.status()["ocpp"]["outbox_pending"] == 0, timeout, "the outbox to drain")


def queued_actions(state_dir: Path) -> list[str]:
    """The actions waiting in the daemon's outbox, oldest first (read-only, while it runs)."""
    db = sqlite3.connect(f"file:{state_dir / 'evsed.sqlite3'}?mode=ro", uri=True)
    try:
        return [action for (action,) in db.execute("SELECT action FROM outbox ORDER BY seq")]
    finally:
        db.close()


def energy_wh(meter_values: dict[str, Any]) -> list[int]:
    """The Energy.Active.Import.Register samples of a MeterValues.req payload."""
    return [
        int(sample["value"])
        for value in meter_values["meterValue"]
        for sample in value["sampledValue"]
        if sample.get("measurand") == ENERGY
    ]


def statuses(calls: list[dict[str, Any]], connector_id: int) -> list[str]:
    return [
        c["payload"]["status"]
        for c in calls
        if c["action"] == "StatusNotification" and c["payload"]["connectorId"] == connector_id
    ]
