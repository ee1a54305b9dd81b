"""Limit latency: how fast a new limit reaches the car's pilot.

Two figures, each from the daemon's point of view to the duty cycle the simulated CP MCU
receives (``SimMcu._control_received``, wrapped at run time to stamp each control frame):

1. Smart charging: the CSMS sends SetChargingProfile (a TxDefaultProfile lower than the
   current offer); from the moment the CSMS has the SetChargingProfile.conf to the first
   control frame whose duty offers the new limit. The profile is committed and applied before
   the charger answers, so this figure is often negative (the MCU had the new duty before the
   answer reached the CSMS); the time from sending the request is given as well.
2. Local load management: the site's other loads step up (``SimSite.other_loads_a``); from the
   moment the daemon's site meter read returns the reading that shows the spike to the first
   control frame with a lowered duty. The time from the spike itself (which includes waiting
   for the next site reading, poll interval 0.2 s) is given as well.

The real daemon (``evsed.daemon.Daemon``, simulated HAL) runs in this process against an
in-process development CSMS on 127.0.0.1, one connector charging in free mode. Offers only go
down during a staircase (raising waits 5 s, IEC 61851-1); after each staircase the limit is
lifted and the benchmark waits for the offer to come back.

Run: ``.venv/bin/python bench/limit_latency.py [--reps N] [--json]``. Exits 0 when the run
completed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import platform
import random
import resource
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from safety_latency import BenchError, _stats, _stopped, until

from evsed.config import load_config
from evsed.daemon import Daemon
from evsed_devcsms.server import DevCsms
from evsed_devcsms.state import CsmsSettings
from hal.iec61851 import duty_to_current
from hal.types import CpState, MeterReading, PilotControl

CHARGER_ID = "bench-02"
FUSE_A = 32.0
INSTALLATION_A = 16.0
READY_TIMEOUT_S = 20.0
DUTY_TIMEOUT_S = 3.0
RAISE_TIMEOUT_S = 15.0  # back up after a staircase: the 5 s rule plus a site reading
PROFILE_STEPS = [15.0 - 1.0 * i for i in range(10)]  # 15 A down to 6 A
SPIKE_STEPS = [FUSE_A - a for a in PROFILE_STEPS]  # other loads that leave 15 A .. 6 A


def write_config(workdir: Path, csms_url: str) -> Path:
    text = f"""\
[charger]
id = "{CHARGER_ID}"
state_dir = "{workdir / "state"}"
control_socket = "{workdir / "control.sock"}"

[csms]
url = "{csms_url}"
heartbeat_interval_s = 10
reconnect_min_s = 0.2
reconnect_max_s = 1.0

[charging]
free_mode = true
c_debounce_s = 0.0
meter_values_interval_s = 1
site_fuse_a = {FUSE_A}
site_fallback_current_a = 6.0

[site_meter]
poll_interval_s = 0.2
timeout_s = 0.5

[hal]
kind = "sim"

[[connectors]]
id = 1
max_current_a = {INSTALLATION_A}
[connectors.meter]
poll_interval_s = 0.2
timeout_s = 0.5

[logging]
level = "WARNING"
"""
    path = workdir / "evsed.toml"
    path.write_text(text)
    return path


class DutyProbe:
    """Stamps every control frame the simulated MCU receives, and wakes a waiter when the
    offered current satisfies its condition."""

    def __init__(self) -> None:
        self.offer_a = 0.0
        self._waiter: tuple[Callable[[float], bool], asyncio.Future[int]] | None = None

    def wrap(self, received: Callable[[PilotControl], None]) -> Callable[[PilotControl], None]:
        def stamped(control: PilotControl) -> None:
            stamp = time.perf_counter_ns()
            received(control)
            self.offer_a = duty_to_current(control.duty)
            if self._waiter is not None and self._waiter[0](self.offer_a):
                future = self._waiter[1]
                self._waiter = None
                if not future.done():
                    future.set_result(stamp)

        return stamped

    async def until(self, condition: Callable[[float], bool], what: str, timeout: float) -> int:
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiter = (condition, future)
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise BenchError(
                f"no duty {what} within {timeout:g} s (offer {self.offer_a})"
            ) from None


class SpikeProbe:
    """Stamps when the daemon's site meter read returns a reading at or above a level."""

    def __init__(self) -> None:
        self.level_a: float | None = None
        self.t_read_ns: int | None = None

    def wrap(self, read: Callable[[], Awaitable[MeterReading]]) -> Callable[[], Awaitable[Any]]:
        async def stamped() -> MeterReading:
            reading = await read()
            level = self.level_a
            if level is not None and self.t_read_ns is None and max(reading.current_a) >= level:
                self.t_read_ns = time.perf_counter_ns()
            return reading

        return stamped


def _tx_default(limit: float) -> dict[str, Any]:
    return {
        "chargingProfileId": 1,
        "stackLevel": 0,
        "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Absolute",
        "chargingSchedule": {
            "startSchedule": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "chargingRateUnit": "A",
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}],
        },
    }


async def measure(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    async with DevCsms(CsmsSettings(heartbeat_interval=10), port=0, http_port=0) as csms:
        daemon = Daemon(load_config(write_config(workdir, csms.ws_url)))
        daemon_task = asyncio.create_task(daemon.run(), name="evsed")
        try:
            return await _run(args, csms, daemon, daemon_task)
        finally:
            daemon.terminate()
            await _stopped(daemon_task)


async def _run(
    args: argparse.Namespace, csms: DevCsms, daemon: Daemon, daemon_task: asyncio.Task[None]
) -> dict[str, Any]:
    def ready() -> bool:
        charger, client = daemon.charger, daemon.client
        return (
            charger is not None
            and client is not None
            and all(c.pilot_link_ok for c in charger.connectors.values())
            and client.snapshot()["registration"] == "Accepted"
            and charger.site_snapshot() is not None
            and bool(charger.site_snapshot()["meter_ok"])  # type: ignore[index]
        )

    await until(ready, "the daemon to be up and registered", daemon_task, READY_TIMEOUT_S)
    charger = daemon.charger
    assert charger is not None and charger.hardware.site_meter is not None
    world = charger.hardware.world
    mcu = world.connector(1).mcu
    duty = DutyProbe()
    mcu._control_received = duty.wrap(mcu._control_received)
    spike = SpikeProbe()
    site_meter = charger.hardware.site_meter
    site_meter.read = spike.wrap(site_meter.read)  # type: ignore[method-assign]
    mcu.plug(world.cable_rating_a)
    await until(lambda: charger.connectors[1].state.tx_active, "a transaction", daemon_task, 10)
    mcu.set_ev_state(CpState.C)
    await duty.until(
        lambda a: a >= INSTALLATION_A - 0.15, "at the installation limit", READY_TIMEOUT_S
    )
    rng = random.Random(args.seed)

    conf_ns: list[int] = []
    req_ns: list[int] = []
    started = time.perf_counter()
    while len(conf_ns) < args.reps:
        for limit in PROFILE_STEPS[: args.reps - len(conf_ns)]:
            await asyncio.sleep(rng.uniform(0.01, 0.06))
            waiting = asyncio.ensure_future(
                duty.until(lambda a, lim=limit: abs(a - lim) < 0.15, f"{limit} A", DUTY_TIMEOUT_S)
            )
            t_req = time.perf_counter_ns()
            outcome = await csms.call(
                CHARGER_ID,
                "SetChargingProfile",
                {"connectorId": 1, "csChargingProfiles": _tx_default(limit)},
            )
            t_conf = time.perf_counter_ns()
            if outcome.result != {"status": "Accepted"}:
                raise BenchError(f"SetChargingProfile answered {outcome}")
            t_duty = await waiting
            conf_ns.append(t_duty - t_conf)
            req_ns.append(t_duty - t_req)
        await csms.call(CHARGER_ID, "ClearChargingProfile", {})
        await duty.until(lambda a: a >= INSTALLATION_A - 0.15, "back up", RAISE_TIMEOUT_S)

    read_ns: list[int] = []
    spike_ns: list[int] = []
    site = world.site
    while len(read_ns) < args.reps:
        for other in SPIKE_STEPS[: args.reps - len(read_ns)]:
            await asyncio.sleep(rng.uniform(0.01, 0.25))  # a random phase of the site polls
            before = duty.offer_a
            waiting = asyncio.ensure_future(
                duty.until(lambda a, b=before: a < b, f"below {before} A", DUTY_TIMEOUT_S)
            )
            spike.level_a, spike.t_read_ns = other, None
            t_spike = time.perf_counter_ns()
            site.other_loads_a = (other, other, other)
            t_duty = await waiting
            if spike.t_read_ns is None:
                raise BenchError("the duty went down before the site meter showed the spike")
            read_ns.append(t_duty - spike.t_read_ns)
            spike_ns.append(t_duty - t_spike)
            spike.level_a = None
            # Let the offer settle at what the fuse leaves before the next step.
            await duty.until(lambda a, o=other: a <= FUSE_A - o + 0.15, "settled", DUTY_TIMEOUT_S)
        site.other_loads_a = (0.0, 0.0, 0.0)
        await duty.until(lambda a: a >= INSTALLATION_A - 0.15, "back up", RAISE_TIMEOUT_S)
    wall_s = time.perf_counter() - started
    mcu.unplug()
    await charger.connectors[1].settled()
    return {
        "benchmark": "limit_latency",
        "reps": args.reps,
        "profile_conf_to_duty_ms": _stats(conf_ns),
        "profile_request_to_duty_ms": _stats(req_ns),
        "site_reading_to_lowered_duty_ms": _stats(read_ns),
        "site_spike_to_lowered_duty_ms": _stats(spike_ns),
        "site_poll_interval_s": 0.2,
        "wall_s": round(wall_s, 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "seed": args.seed,
        "python": platform.python_version(),
        "machine": f"{platform.system()} {platform.machine()}",
    }


def print_text(result: dict[str, Any]) -> None:
    def line(name: str, key: str) -> None:
        s = result[key]
        print(
            f"  {name:<28} min {s['min']:8.3f}  median {s['median']:8.3f}  "
            f"p99 {s['p99']:8.3f}  max {s['max']:8.3f}"
        )

    print(f"evsed limit latency, {result['reps']} repetitions each (ms)")
    line("SetChargingProfile.conf", "profile_conf_to_duty_ms")
    line("SetChargingProfile.req", "profile_request_to_duty_ms")
    line("site reading (spike)", "site_reading_to_lowered_duty_ms")
    line("site spike (incl. poll)", "site_spike_to_lowered_duty_ms")
    print("  (each: to the first control frame at the MCU with the new / lowered duty;")
    print("   negative: the MCU had the duty before the answer reached the CSMS)")
    print(f"  site poll interval: {result['site_poll_interval_s']:g} s")
    print(f"  wall time: {result['wall_s']:.1f} s   peak RSS: {result['peak_rss_mib']:.1f} MiB")
    print(f"  platform:  Python {result['python']} on {result['machine']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Time a new charging profile, and a site load spike, to the duty cycle the "
        "MCU receives (simulated hardware, 127.0.0.1 only)."
    )
    parser.add_argument("--reps", type=int, default=100, help="repetitions of each (100)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--seed", type=int, default=61851, help="seed for the random waits")
    args = parser.parse_args(argv)
    if args.reps < 1:
        parser.error("--reps must be at least 1")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    for noisy in ("ocpp", "websockets", "pymodbus"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    with tempfile.TemporaryDirectory(prefix="evsed-bench-") as tmp:
        try:
            result = asyncio.run(measure(args, Path(tmp)))
        except BenchError as exc:
            print(f"limit_latency: run failed: {exc}", file=sys.stderr)
            return 1
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_text(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
