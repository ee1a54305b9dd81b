"""kill -9 at random points of randomized sessions on both connectors of a twin charger, with
CSMS outages: no transaction message lost, none reported twice, meter readings monotonic.

tests/e2e/test_power_loss_stress.py does this for one connector with 50 sessions and a finer
check of each re-sent copy; this test adds the second connector: both charge at once, so a kill
catches two transactions in different phases, and each connector's messages must stay its own.
Each round starts a session on each connector (a card of its own: the card names the session
in every Start and Stop), then does one of the chaos plans (kill -9 while both charge, kill -9
right after one stop, kill -9 while the CSMS is down, the CSMS down while both charge), then
ends what is still running (car unplugged, card presented again, or remote stop).

What the CSMS journals (one per CSMS process) must show, per session that charged:

- exactly one StartTransaction and one StopTransaction payload (an identical copy of a message
  is allowed: OCPP-J is at-least-once when the answer is lost to a kill or an outage; a second,
  different Start or Stop for a session is a duplicate and fails);
- a stop reason that fits (PowerLoss only when a kill ended it);
- per connector, meterStart, every Energy.Active.Import.Register sample and meterStop in time
  order never go down, across kills (the simulated meter keeps its register on disk).

Size: ``EVSED_RELIABILITY_SESSIONS`` sessions (two per round; default 6, e.g. 200 for a soak).
Seed: ``EVSED_RELIABILITY_SEED`` (printed).
"""

from __future__ import annotations

import itertools
import json
import os
import random
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import SESSIONS
from outbox_support import energy_wh, free_port

from evsed.control.cli import request
from evsed_devtools.harness import DevCsms, Evsed

SEED = int(os.environ.get("EVSED_RELIABILITY_SEED", str(random.SystemRandom().randrange(10**6))))
PLANS = ("kill-charging", "kill-after-stop", "kill-csms-down", "csms-down-charging")
CP = "CP01"
ALLOWED_REASONS = {"EVDisconnected", "Local", "Remote", "PowerLoss"}


class Twin:
    def __init__(self, workdir: Path, tags: list[str]) -> None:
        self.workdir = workdir
        self.tags = tags
        self.port = free_port()
        self.csms: DevCsms | None = None
        self.csms_dirs: list[Path] = []
        self.evsed: Evsed | None = None
        self.kills = 0
        self.log: list[str] = []

    def note(self, text: str) -> None:
        self.log.append(f"{time.monotonic():.2f} {text}")

    def csms_up(self) -> None:
        workdir = self.workdir / f"csms-{len(self.csms_dirs) + 1}"
        workdir.mkdir()
        self.csms_dirs.append(workdir)
        self.csms = DevCsms.start(
            workdir,
            "--port",
            str(self.port),
            "--tags",
            ",".join(self.tags),
            "--journal",
            str(workdir / "journal.jsonl"),
        )
        self.note("CSMS up")

    def csms_down(self) -> None:
        if self.csms is not None:
            self.csms.stop()
            self.csms = None
            self.note("CSMS down")

    def start(self) -> None:
        self.evsed = Evsed.start(
            self.workdir,
            f"ws://127.0.0.1:{self.port}/ocpp",
            CP,
            connectors=2,
            csms={"call_timeout_s": 10.0, "reconnect_min_s": 0.1, "reconnect_max_s": 0.5},
            charging={"meter_values_interval_s": 1.0, "c_debounce_s": 0.1},
            logging={"level": "INFO"},
        )
        self.note("evsed up")

    def kill(self, rng: random.Random) -> None:
        assert self.evsed is not None
        self.evsed.kill()
        self.kills += 1
        self.note("evsed killed")
        time.sleep(rng.uniform(0.0, 0.5))
        self.start()

    def ctl(self, *words: str, connector: int) -> dict[str, Any]:
        reply = request(
            self.workdir / "control.sock",
            {"cmd": "sim", "args": list(words), "connector": connector},
        )
        assert reply.get("ok"), f"{words}: {reply}"
        return reply

    def connector(self, n: int) -> dict[str, Any]:
        status = request(self.workdir / "control.sock", {"cmd": "status"})["status"]
        found: dict[str, Any] = next(c for c in status["connectors"] if c["id"] == n)
        return found

    def wait(self, predicate: Callable[[], bool], timeout: float, what: str) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.05)
        self.note(f"gave up waiting for {what}")
        return False

    def begin(self, n: int, tag: str) -> bool:
        if not self.wait(lambda: self.connector(n)["phase"] == "Idle", 10, f"{n} idle"):
            return False
        self.ctl("plug", connector=n)
        self.ctl("swipe", tag, connector=n)
        self.ctl("ev-state", "C", connector=n)
        ok = self.wait(lambda: self.connector(n)["contactor_closed"], 10, f"{n} charging")
        self.note(f"connector {n} {tag} charging: {ok}")
        return ok

    def end(self, n: int, tag: str, rng: random.Random) -> None:
        if not self.connector(n)["transaction_active"]:
            self.ctl("unplug", connector=n)
            return
        how = rng.choice(("unplug", "swipe", "remote"))
        tx = self.connector(n)["transaction_id"]
        if how == "remote" and self.csms is not None and tx is not None:
            self.csms.api("/api/remote-stop", {"cp": CP, "transaction_id": tx})
        elif how == "swipe":
            self.ctl("swipe", tag, connector=n)
        self.ctl("ev-state", "B", connector=n)
        self.ctl("unplug", connector=n)
        self.note(f"connector {n} {tag} stopped by {how}")


def journal(dirs: list[Path]) -> list[dict[str, Any]]:
    entries = []
    for n, d in enumerate(dirs, start=1):
        for path in sorted(d.glob("*.jsonl")):
            entries += [{**json.loads(x), "n": n} for x in path.read_text().splitlines() if x]
    return entries


def test_kill_9_on_a_twin_charger_loses_and_doubles_no_transaction_message(
    tmp_path: Path,
) -> None:
    rng = random.Random(SEED)
    rounds = max(1, SESSIONS // 2)
    tags = [f"T{r:03d}C{n}" for r in range(rounds) for n in (1, 2)]
    twin = Twin(tmp_path, tags)
    print(f"seed {SEED}, {rounds} rounds")
    twin.csms_up()
    twin.start()
    charged: dict[str, int] = {}  # tag -> connector
    killed: set[str] = set()  # sessions a kill ended
    try:
        for r in range(rounds):
            plan = PLANS[r % len(PLANS)] if r < len(PLANS) else rng.choice(PLANS)
            twin.note(f"round {r}: {plan}")
            running = {}
            for n in (1, 2):
                tag = f"T{r:03d}C{n}"
                if twin.begin(n, tag):
                    charged[tag] = n
                    running[n] = tag
            time.sleep(rng.uniform(0.5, 2.0))
            if plan == "kill-charging":
                killed |= set(running.values())
                twin.kill(rng)
                running.clear()
            elif plan == "kill-after-stop" and running:
                n = rng.choice(sorted(running))
                twin.end(n, running.pop(n), rng)
                time.sleep(rng.uniform(0.0, 0.3))
                killed |= set(running.values())
                twin.kill(rng)
                running.clear()
            elif plan == "kill-csms-down":
                twin.csms_down()
                time.sleep(rng.uniform(0.5, 1.5))
                killed |= set(running.values())
                twin.kill(rng)
                running.clear()
                time.sleep(rng.uniform(0.5, 1.5))
                twin.csms_up()
            elif plan == "csms-down-charging":
                twin.csms_down()
                time.sleep(rng.uniform(1.0, 2.5))
                for n, tag in list(running.items()):
                    twin.end(n, tag, rng)
                running.clear()
                time.sleep(rng.uniform(0.2, 1.0))
                twin.csms_up()
            for n, tag in running.items():
                twin.end(n, tag, rng)
            for n in (1, 2):  # a killed daemon came back with nothing plugged in
                twin.wait(lambda n=n: not twin.connector(n)["transaction_active"], 10, "tx end")
        if twin.csms is None:
            twin.csms_up()
        assert twin.wait(
            lambda: (
                request(tmp_path / "control.sock", {"cmd": "status"})["status"]["ocpp"][
                    "outbox_pending"
                ]
                == 0
            ),
            60,
            "the outbox drained",
        ), "\n".join(twin.log)
    finally:
        if twin.evsed is not None:
            twin.evsed.stop()
        twin.csms_down()
    problems = check(journal(twin.csms_dirs), charged, killed)
    assert not problems, f"seed {SEED}:\n" + "\n".join(problems + twin.log)


def check(entries: list[dict[str, Any]], charged: dict[str, int], killed: set[str]) -> list[str]:
    problems: list[str] = []
    calls = [e for e in entries if e["dir"] == "in" and e["type"] == 2 and e["cp"] == CP]
    starts: dict[str, list[dict[str, Any]]] = defaultdict(list)
    stops: dict[str, list[dict[str, Any]]] = defaultdict(list)
    readings: dict[int, list[tuple[str, int, str]]] = defaultdict(list)
    for c in calls:
        p = c["payload"]
        if c["action"] == "StartTransaction":
            starts[p["idTag"]].append(p)
            readings[p["connectorId"]].append((p["timestamp"], p["meterStart"], "start"))
        elif c["action"] == "StopTransaction":
            stops[p.get("idTag", "?")].append(p)
        elif c["action"] == "MeterValues" and "transactionId" in p:
            for wh in energy_wh(p):
                readings[p["connectorId"]].append((p["meterValue"][0]["timestamp"], wh, "mv"))
    resent = 0
    for tag, n in charged.items():
        for name, seen in (("StartTransaction", starts[tag]), ("StopTransaction", stops[tag])):
            distinct = {json.dumps(p, sort_keys=True) for p in seen}
            if not seen:
                problems.append(f"{tag}: no {name} (lost)")
            elif len(distinct) > 1:
                problems.append(f"{tag}: {len(distinct)} different {name}s (duplicate): {seen}")
            resent += len(seen) - 1
        for stop in stops[tag][:1]:
            reason = stop.get("reason", "Local")
            if reason not in ALLOWED_REASONS:
                problems.append(f"{tag}: stop reason {reason}")
            if reason == "PowerLoss" and tag not in killed:
                problems.append(f"{tag}: PowerLoss although no kill ended it")
            readings[n].append((stop["timestamp"], stop["meterStop"], "stop"))
    for tag in set(starts) - set(charged):
        problems.append(f"{tag}: a StartTransaction for a session that never charged")
    for n, series in readings.items():
        ordered = sorted(set(series))
        for (t0, a, k0), (t1, b, k1) in itertools.pairwise(ordered):
            if b < a:
                problems.append(f"connector {n}: energy {a} ({k0} {t0}) -> {b} ({k1} {t1})")
    print(
        f"{len(charged)} sessions charged, {len(killed)} ended by a kill, {resent} re-sent copies"
    )
    return problems
