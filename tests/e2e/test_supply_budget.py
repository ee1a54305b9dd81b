"""The supply budget seen from the simulated MCUs, at every control frame.

The daemon runs in this process (as bench/safety_latency.py runs it), against an in-process
development CSMS on 127.0.0.1, on a twin-socket charger with a 20 A supply. Two views:

- what the daemon tells the MCUs, in the order it does: after every control the pilot drivers
  send, the sum of the duties sent so far (the last one per connector) is within the supply, so
  a share is lowered before another is raised, never the other way round;
- what the simulated MCUs receive: once the frames that arrived together have been taken in
  (the MCUs share the daemon's event loop, so frames written back to back are read in one loop
  iteration), the sum of what the two PWMs offer is within the supply.

Cars come and go in an order that makes the shares move both ways.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from pathlib import Path

from evsed.config import load_config
from evsed.daemon import Daemon
from evsed_devcsms.server import DevCsms
from evsed_devcsms.state import CsmsSettings
from evsed_devtools.harness import write_config
from hal.iec61851 import duty_to_current
from hal.types import CpState, PilotControl

SUPPLY_A = 20.0


async def _until(predicate: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def test_the_sum_of_the_offers_never_exceeds_the_supply(tmp_path: Path) -> None:
    async with DevCsms(CsmsSettings(heartbeat_interval=60), port=0, http_port=0) as csms:
        config = load_config(
            write_config(
                tmp_path,
                csms.ws_url,
                "CP01",
                connectors=2,
                charging={"free_mode": True, "supply_max_current_a": SUPPLY_A},
                logging={"level": "WARNING"},
            )
        )
        daemon = Daemon(config)
        task = asyncio.create_task(daemon.run())
        try:
            await _until(lambda: daemon.charger is not None and daemon.client is not None, "up")
            charger = daemon.charger
            assert charger is not None
            world = charger.hardware.world
            loop = asyncio.get_running_loop()
            offered = {1: 0.0, 2: 0.0}
            sums: list[float] = []
            check_pending = False

            def check() -> None:
                nonlocal check_pending
                check_pending = False
                sums.append(sum(offered.values()))

            def watch(cid: int) -> None:
                mcu = world.connector(cid).mcu
                received = mcu._control_received

                def observed(control: PilotControl) -> None:
                    nonlocal check_pending
                    received(control)
                    amps = duty_to_current(control.duty) if control.duty else 0.0
                    offered[cid] = round(amps, 1)
                    if not check_pending:
                        check_pending = True
                        loop.call_soon(check)

                mcu._control_received = observed

            sent = {1: 0.0, 2: 0.0}
            sent_sums: list[float] = []

            def observe_driver(cid: int) -> None:
                pilot = charger.hardware.connectors[cid].pilot
                set_control = pilot.set_control

                def observed(control: PilotControl) -> None:
                    amps = duty_to_current(control.duty) if control.duty else 0.0
                    sent[cid] = round(amps, 1)
                    sent_sums.append(sum(sent.values()))
                    set_control(control)

                pilot.set_control = observed  # type: ignore[method-assign]

            for cid in (1, 2):
                watch(cid)
                observe_driver(cid)
            mcu = {cid: world.connector(cid).mcu for cid in (1, 2)}

            def pwm(cid: int) -> float:
                s = charger.connectors[cid].state
                return s.pwm_a if s.pilot.value == "pwm" else 0.0

            mcu[1].plug(32)
            mcu[1].set_ev_state(CpState.C)
            await _until(lambda: offered[1] == 16.0, "connector 1 at 16 A")
            for _ in range(2):
                mcu[2].plug(32)
                mcu[2].set_ev_state(CpState.C)
                await _until(lambda: pwm(1) == 10.0 and pwm(2) == 10.0, "10 A each")
                await asyncio.sleep(0.5)
                mcu[2].set_ev_state(CpState.B)
                mcu[2].unplug()
                await _until(lambda: pwm(1) == 16.0, "connector 1 back to 16 A", timeout=10)
            mcu[2].plug(8)  # an 8 A cable: connector 1 keeps what it leaves (12 A)
            mcu[2].set_ev_state(CpState.C)
            await _until(lambda: pwm(2) == 8.0, "connector 2 at its cable's 8 A")
            await _until(lambda: pwm(1) == 12.0, "connector 1 at the rest")
            mcu[2].set_ev_state(CpState.B)
            mcu[2].unplug()
            await _until(lambda: pwm(1) == 16.0, "connector 1 back to 16 A", timeout=10)
            mcu[2].plug(13)  # a 13 A cable
            mcu[2].set_ev_state(CpState.C)
            await _until(lambda: pwm(2) == 10.0, "connector 2 at its share")
            await _until(lambda: pwm(1) == 10.0, "connector 1 at its share")
            mcu[1].set_ev_state(CpState.B)
            mcu[1].unplug()
            await _until(lambda: pwm(2) == 13.0, "connector 2 up to its cable", timeout=10)
            await asyncio.sleep(0.3)
        finally:
            daemon.terminate()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, 30)
    assert len(sums) > 50, sums
    assert max(sums) <= SUPPLY_A, [s for s in sums if s > SUPPLY_A]
    assert len(sent_sums) > 10, sent_sums
    assert max(sent_sums) <= SUPPLY_A, [s for s in sent_sums if s > SUPPLY_A]
