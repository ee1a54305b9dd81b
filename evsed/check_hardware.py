"""``evsed check-hardware --config FILE``: probe every part the config names, report, exit.

For each connector: the MCU link (a valid status frame within the timeout, and no fault the MCU
reports), the meter (one read), the contactor feedback (with the coil off the mirror contact
must read open; the coil is never energised); and the site meter with local load management
(``charging.site_fuse_a`` > 0). The drivers are the daemon's own (:func:`build_hardware`), so
in sim mode they talk to freshly started simulators. Nothing else starts: no CSMS client, no
state database, no control socket. Exit 0 when every part is OK, 1 otherwise, 78 on a
configuration error.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from evsed.config import Config, load_config
from evsed.errors import EXIT_CONFIG, ConfigError
from evsed.hardware import Hardware, build_hardware
from hal.errors import MeterError
from hal.interfaces import Contactor, Meter, Pilot
from hal.types import McuFault, PilotStatus

EXIT_PROBLEM = 1
FEEDBACK_SAMPLES = 5  # reads of the mirror contact, 20 ms apart: a bouncing input shows
# Latched after the host went quiet (the daemon stopped, or has not started): not a fault here.
EXPECTED_MCU_FLAGS = McuFault.HOST_TIMEOUT


@dataclass(frozen=True)
class Finding:
    """One line of the report."""

    where: str  # "connector 1", "site"
    part: str  # "MCU link", "meter", "contactor"
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{self.where:<12} {self.part:<10} {'OK' if self.ok else 'FAIL':<5} {self.detail}"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="evsed check-hardware",
        description="Probe each connector's MCU link, meter and contactor feedback (and the "
        "site meter), print one line per part and exit non-zero on any problem. Stop evsed "
        "first: the probes open the same serial lines.",
    )
    parser.add_argument("--config", required=True, help="TOML configuration file")
    parser.add_argument(
        "--timeout", type=float, default=2.0, help="seconds to wait for each MCU (default 2)"
    )
    parser.add_argument("--verbose", action="store_true", help="the drivers' log on stderr")
    args = parser.parse_args(argv)
    if not 0 < args.timeout <= 60:
        parser.error("--timeout must be between 0 and 60 seconds")
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.CRITICAL,
        format="%(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"evsed check-hardware: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if _daemon_answers(config.control_socket):
        print(
            f"evsed check-hardware: evsed is running (its control socket {config.control_socket}"
            " answers): stop it first (systemctl stop evsed), the probes need its serial lines",
            file=sys.stderr,
        )
        return EXIT_PROBLEM
    try:
        findings = asyncio.run(check(config, args.timeout))
    except ConfigError as exc:
        print(f"evsed check-hardware: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    print(
        f"charger {config.charger.id}: {len(config.connectors)} connector(s), hal "
        f"{config.hal.kind}{_mixed(config)}"
    )
    for finding in findings:
        print(finding.line())
    problems = sum(not f.ok for f in findings)
    print(f"{problems} problem(s)" if problems else "all parts OK")
    return EXIT_PROBLEM if problems else 0


def _mixed(config: Config) -> str:
    if config.hal.kind != "sim":
        return ""
    sim = config.hal.sim
    real = [
        name
        for name, simulated in (
            ("pilot", sim.simulate_pilot),
            ("meter", sim.simulate_meter),
            ("contactor", sim.simulate_contactor),
        )
        if not simulated
    ]
    return f" (real: {', '.join(real)})" if real else ""


def _daemon_answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except PermissionError:
            return True  # there, but not ours to use: a daemon runs
        except OSError:
            return False  # none, or a stale one left by a crash
    return True


async def check(config: Config, mcu_timeout: float) -> list[Finding]:
    """Build the drivers, probe each part, release everything; the findings in order."""
    hardware = await build_hardware(config)
    try:
        return await _probe_all(config, hardware, mcu_timeout)
    finally:
        if hardware.world is not None:
            await hardware.world.stop()


async def _probe_all(config: Config, hardware: Hardware, mcu_timeout: float) -> list[Finding]:
    findings: list[Finding] = []
    sim = config.hal.sim if config.hal.kind == "sim" else None
    for c in config.connectors:
        parts = hardware.connectors[c.id]
        where = f"connector {c.id}"
        real_port = None if sim is not None and sim.simulate_pilot else c.pilot.port
        findings.append(await _probe_pilot(where, parts.pilot, mcu_timeout, real_port))
        findings.append(await _probe_meter(where, parts.meter))
        findings.append(await _probe_contactor(where, parts.contactor))
    if hardware.site_meter is not None:
        findings.append(await _probe_meter("site", hardware.site_meter))
    return findings


async def _probe_pilot(where: str, pilot: Pilot, timeout: float, real_port: str | None) -> Finding:
    """A valid status frame within ``timeout``; the pilot's control stays at its default (no
    PWM, power not allowed) and its last frame on stop says so too."""
    if real_port is not None and not os.path.exists(real_port):
        return Finding(
            where, "MCU link", False, f"{real_port} does not exist (UART enabled? udev rule?)"
        )
    first: asyncio.Future[PilotStatus] = asyncio.get_running_loop().create_future()

    def on_status(status: PilotStatus) -> None:
        if not first.done():
            first.set_result(status)

    started = time.monotonic()
    await pilot.start(on_status, lambda _ok: None)
    try:
        status = await asyncio.wait_for(first, timeout)
    except TimeoutError:
        stats = pilot.stats
        heard = (
            f"{stats.dropped} bad frame(s): wrong baud rate or wiring?"
            if stats.dropped
            else "nothing at all: MCU powered, TX/RX crossed?"
        )
        return Finding(where, "MCU link", False, f"no valid status frame in {timeout:g} s; {heard}")
    finally:
        await pilot.stop()
    elapsed = time.monotonic() - started
    detail = (
        f"status frame after {elapsed:.2f} s: CP {status.cp_state}, "
        f"MCU firmware {status.firmware_version or '?'}"
    )
    faults = status.faults & ~EXPECTED_MCU_FLAGS
    if faults:
        names = ", ".join(str(f.name).lower() for f in McuFault if f and f in faults)
        return Finding(where, "MCU link", False, f"{detail}; the MCU reports faults: {names}")
    return Finding(where, "MCU link", True, detail)


async def _probe_meter(where: str, meter: Meter) -> Finding:
    try:
        await meter.start()
        reading = await meter.read()
    except MeterError as exc:
        return Finding(where, "meter", False, str(exc))
    finally:
        await meter.stop()
    volts = "/".join(f"{v:.0f}" for v in reading.voltage_v)
    amps = "/".join(f"{a:.1f}" for a in reading.current_a)
    return Finding(
        where, "meter", True, f"{reading.energy_import_wh:.0f} Wh imported, {volts} V, {amps} A"
    )


async def _probe_contactor(where: str, contactor: Contactor) -> Finding:
    """Coil off, so the mirror contact must read open every time it is sampled."""
    contactor.start(lambda _closed: None)
    try:
        if contactor.commanded_closed:  # never the case: the driver starts with the coil off
            return Finding(where, "contactor", False, "the coil output is on")
        readings = await _sample(lambda: contactor.feedback_closed)
    finally:
        contactor.stop()
    if any(readings):
        return Finding(
            where,
            "contactor",
            False,
            f"coil off but the mirror contact reads closed ({sum(readings)} of {len(readings)} "
            "reads): welded main contacts, or feedback wired or configured the other way round "
            "(feedback_active_high)",
        )
    return Finding(where, "contactor", True, "coil off, mirror contact open")


async def _sample(read: Callable[[], bool]) -> list[bool]:
    readings = []
    for _ in range(FEEDBACK_SAMPLES):
        readings.append(read())
        await asyncio.sleep(0.02)
    return readings
