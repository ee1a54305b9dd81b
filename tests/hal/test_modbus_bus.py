"""Meters sharing one Modbus line (ModbusBus): real pymodbus server and client, real ptys.

The twin wallbox case: two meters, device ids 1 and 2, on one RS-485 line, which the daemon
must open once (two clients on one serial port would take each other's answers).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pymodbus.framer import FramerRTU

from hal.errors import MeterError
from hal.meter_maps import MAPS
from hal.modbus_bus import BusRegistry, BusSettings, ModbusBus
from hal.modbus_meter import ModbusMeter
from hal.sim.meter import SimMeterBus, SimMeterDevice
from hal.sim.serial_line import PtyNullModem

TIMEOUT_S = 0.2


def fds_open_on(path: str) -> int:
    """How many file descriptors of this process point at ``path``."""
    count = 0
    for entry in os.scandir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the fd of the scan itself is gone by now
            if os.readlink(entry.path) == path:
                count += 1
    return count


@dataclass
class TwinLine:
    """Two simulated meters on one RTU line and the two drivers the daemon would build."""

    cable: PtyNullModem
    server: SimMeterBus
    bus: ModbusBus
    meter1: ModbusMeter
    meter2: ModbusMeter


@pytest.fixture
async def twin() -> AsyncIterator[TwinLine]:
    cable = PtyNullModem()
    server = SimMeterBus(
        [
            SimMeterDevice(lambda: (10.0, 10.0, 10.0), device_id=1, initial_energy_wh=1_000.0),
            SimMeterDevice(lambda: (20.0, 0.0, 0.0), device_id=2, initial_energy_wh=52_000.0),
        ],
        serial_port=cable.meter_path,
    )
    settings = BusSettings("rtu", serial_port=cable.client_path, timeout=TIMEOUT_S)
    registry = BusRegistry()
    bus = registry.bus_for(settings, 1, "connector 1")
    assert registry.bus_for(settings, 2, "connector 2") is bus
    meters = [ModbusMeter(MAPS["sdm630"], bus=bus, device_id=n) for n in (1, 2)]
    cable.start()
    await server.start()
    try:
        yield TwinLine(cable, server, bus, *meters)
    finally:
        for meter in meters:
            await meter.stop()
        await server.stop()
        cable.close()


async def test_two_meters_on_one_rtu_line_read_their_own_device_over_one_open_port(
    twin: TwinLine,
) -> None:
    path = twin.cable.client_path
    before = fds_open_on(path)  # the simulated cable keeps its own end open

    await twin.meter1.start()
    await twin.meter2.start()
    one = await twin.meter1.read()
    two = await twin.meter2.read()

    assert one.current_a == pytest.approx((10.0, 10.0, 10.0))
    assert one.energy_import_wh == pytest.approx(1_000.0, abs=1.0)
    assert two.current_a == pytest.approx((20.0, 0.0, 0.0))
    assert two.power_w == pytest.approx(230.0 * 20.0)
    assert two.energy_import_wh == pytest.approx(52_000.0, abs=1.0)
    assert fds_open_on(path) == before + 1
    assert twin.bus.users == 2


async def test_two_meters_polled_at_once_each_get_their_own_answers(twin: TwinLine) -> None:
    for _ in range(5):
        one, two, one_again = await asyncio.gather(
            twin.meter1.read(), twin.meter2.read(), twin.meter1.read()
        )
        assert one.current_a == pytest.approx((10.0, 10.0, 10.0))
        assert one_again.current_a == pytest.approx((10.0, 10.0, 10.0))
        assert two.current_a == pytest.approx((20.0, 0.0, 0.0))
    assert fds_open_on(twin.cable.client_path) == 2  # the cable's end and the one client


async def test_stopping_one_meter_leaves_the_line_open_for_the_other(twin: TwinLine) -> None:
    path = twin.cable.client_path
    before = fds_open_on(path)
    await twin.meter1.read()
    await twin.meter2.read()

    await twin.meter1.stop()
    assert fds_open_on(path) == before + 1
    assert (await twin.meter2.read()).current_a == pytest.approx((20.0, 0.0, 0.0))

    await twin.meter2.stop()
    assert fds_open_on(path) == before  # the last one out closes the line
    assert (await twin.meter1.read()).current_a == pytest.approx((10.0, 10.0, 10.0))
    assert fds_open_on(path) == before + 1


async def test_a_silent_meter_fails_alone_and_its_neighbour_keeps_answering(
    twin: TwinLine,
) -> None:
    twin.server.device(1).set_offline(True)
    results = await asyncio.gather(twin.meter1.read(), twin.meter2.read(), return_exceptions=True)
    failure, reading = results
    assert isinstance(failure, MeterError)
    assert "id 1: no valid answer to FC4 0x0000+18: silent for 2 attempt(s) of 0.2 s" in str(
        failure
    )
    assert not isinstance(reading, BaseException)
    assert reading.current_a == pytest.approx((20.0, 0.0, 0.0))

    twin.server.device(1).set_offline(False)
    assert (await twin.meter1.read()).current_a == pytest.approx((10.0, 10.0, 10.0))


async def test_an_answer_from_the_neighbour_is_named_for_the_meter_that_asked(
    twin: TwinLine,
) -> None:
    await twin.meter1.read()
    # Every request is answered by device 2, as when two meters were both set to one id.
    frame = bytes([2, 4, 36, *bytes(36)])
    twin.cable.answer = frame + FramerRTU.compute_CRC(frame).to_bytes(2, "big")
    with pytest.raises(MeterError, match=r"sdm630 at rtu .* id 1: .*answer from device id 2"):
        await twin.meter1.read()
    twin.cable.answer = None
    assert (await twin.meter1.read()).current_a == pytest.approx((10.0, 10.0, 10.0))


def test_meters_on_one_line_with_different_baudrates_are_refused() -> None:
    registry = BusRegistry()
    registry.bus_for(BusSettings("rtu", serial_port="/dev/ttyUSB0"), 1, "connector 1")
    with pytest.raises(ValueError, match="connector 2") as refused:
        registry.bus_for(
            BusSettings("rtu", serial_port="/dev/ttyUSB0", baudrate=19200), 2, "connector 2"
        )
    assert str(refused.value) == (
        "connector 2: the meter on rtu /dev/ttyUSB0 has baudrate 19200, but connector 1's meter"
        " on that line has baudrate 9600: meters on one line share one client and must agree"
        " on baudrate, parity, stopbits, timeout, retries"
    )


def test_two_meters_with_one_device_id_on_a_line_are_refused() -> None:
    registry = BusRegistry()
    registry.bus_for(BusSettings("tcp", host="10.0.0.5"), 1, "connector 1")
    taken = r"connector 2: device id 1 on tcp 10\.0\.0\.5:502 is already connector 1's meter"
    with pytest.raises(ValueError, match=taken):
        registry.bus_for(BusSettings("tcp", host="10.0.0.5"), 1, "connector 2")


def test_lines_are_told_apart_by_endpoint_or_serial_device(tmp_path: Path) -> None:
    registry = BusRegistry()
    gateway = registry.bus_for(BusSettings("tcp", host="10.0.0.5"), 1, "connector 1")
    other_port = registry.bus_for(BusSettings("tcp", host="10.0.0.5", port=503), 1, "connector 2")
    assert gateway is not other_port
    # Settings of the other transport do not matter: a TCP line has no baud rate.
    same = registry.bus_for(BusSettings("tcp", host="10.0.0.5", baudrate=19200), 2, "connector 3")
    assert same is gateway

    cable = PtyNullModem()
    try:
        by_id = tmp_path / "usb-FTDI_RS485-if00-port0"
        by_id.symlink_to(cable.client_path)
        serial = registry.bus_for(BusSettings("rtu", serial_port=str(by_id)), 1, "connector 4")
        alias = registry.bus_for(BusSettings("rtu", serial_port=cable.client_path), 2, "conn 5")
        assert alias is serial
    finally:
        cable.close()
    assert len(registry.buses()) == 3


def test_a_meter_takes_a_bus_or_line_settings_not_both() -> None:
    bus = ModbusBus(BusSettings("tcp"))
    with pytest.raises(ValueError, match=r"baudrate belong to the shared bus tcp 127\.0\.0\.1:502"):
        ModbusMeter(MAPS["sdm630"], bus=bus, baudrate=19200)
    with pytest.raises(ValueError, match="transport"):
        ModbusMeter(MAPS["sdm630"])
    with pytest.raises(ValueError, match="parity"):
        BusSettings("rtu", serial_port="/dev/ttyUSB0", parity="X")
