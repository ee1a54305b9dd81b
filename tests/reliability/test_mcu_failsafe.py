"""A daemon killed with -9 while charging leaves no contactor closed: the MCU's own failsafe
(DESIGN.md, docs/mcu-protocol.md §6.2: no valid host frame for 500 ms -> relay path open,
state F, ``host_timeout`` latched) opens the relay path the contactor coil is supplied through.

The simulated MCU runs in a process of its own (``outside_mcu.py``) on a pseudo-terminal that
the daemon opens as its pilot port (``[hal.sim] simulate_pilot = false``), so it outlives the
daemon, as the real MCU does. Each repetition: a free-mode session charges (the MCU's relay
path closed at the host's request), the daemon gets SIGKILL at a random moment, and the relay
path must be open within the host timeout plus the MCU's status period; then the daemon starts
again on the same state directory, clears the latch and can charge again.
``EVSED_RELIABILITY_SESSIONS`` repetitions (default 6, at most as many as asked).
"""

from __future__ import annotations

import json
import random
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import SESSIONS

from evsed_devtools.harness import PYTHON, DevCsms, Evsed, wait_for

HOST_TIMEOUT_S = 0.5  # SimMcu's default, as the real MCU's (docs/mcu-protocol.md §6.2)
MARGIN_S = 0.3


class OutsideMcu:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [PYTHON, str(Path(__file__).with_name("outside_mcu.py"))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.pty = self.proc.stdout.readline().split()[1]

    def say(self, command: str) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        answer: dict[str, Any] = json.loads(self.proc.stdout.readline())
        return answer

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def mcu() -> Iterator[OutsideMcu]:
    outside = OutsideMcu()
    yield outside
    outside.close()


def test_a_daemon_killed_while_charging_leaves_the_relay_path_open(
    tmp_path: Path, csms: DevCsms, mcu: OutsideMcu
) -> None:
    rng = random.Random()
    repetitions = max(1, min(SESSIONS, 6))

    def start() -> Evsed:
        evsed = Evsed.start(
            tmp_path,
            csms.ws_url,
            hal__sim={"simulate_pilot": False},
            connector__pilot={"port": mcu.pty},
            charging={"free_mode": True, "c_debounce_s": 0.0},
        )
        evsed.wait_registered()
        return evsed

    evsed = start()
    mcu.say("plug")
    opened_after: list[float] = []
    for _ in range(repetitions):
        mcu.say("C")
        wait_for(lambda: mcu.say("status")["relay_closed"], 10, "the MCU's relay path closed")
        assert evsed.connector()["contactor_closed"]
        time.sleep(rng.uniform(0.0, 1.0))
        evsed.kill()
        killed = time.monotonic()
        wait_for(lambda: not mcu.say("status")["relay_closed"], 3, "the failsafe")
        opened_after.append(time.monotonic() - killed)
        status = mcu.say("status")
        assert status["host_timeout"], status
        assert status["cp_state"] == "F", status
        mcu.say("B")
        evsed = start()
        wait_for(lambda: not mcu.say("status")["host_timeout"], 10, "the latch cleared")
    print("relay path open after kill -9 (s):", [round(t, 3) for t in opened_after])
    assert max(opened_after) <= HOST_TIMEOUT_S + MARGIN_S, opened_after
    assert evsed.stop() == 0
