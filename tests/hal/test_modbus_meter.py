"""ModbusMeter against a real pymodbus server (SimMeterServer): TCP on 127.0.0.1, RTU on ptys.

Every built-in map is read over both transports; the maps themselves (decoding, custom maps,
TOML files) are tested without a bus in test_meter_maps.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Literal

import pytest

from hal.errors import MeterError
from hal.meter_maps import MAPS, RegisterMap, load_map_file, map_from_dict
from hal.modbus_meter import ModbusMeter, ReadBlock, describe_exception, plan_reads
from hal.sim.meter import SimMeterServer
from hal.sim.serial_line import PtyNullModem

TIMEOUT_S = 0.2
RETRIES = 1
EXAMPLE_MAP = Path(__file__).parents[2] / "docs" / "examples" / "custom-meter.toml"


class FakeClock:
    """Monotonic clock the test moves by hand, so energy tests never sleep."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Load:
    """Per-phase current the simulated car draws; the test changes it."""

    def __init__(self, amps: float = 0.0) -> None:
        self.amps = (amps, amps, amps)

    def __call__(self) -> tuple[float, float, float]:
        return self.amps


def make_meter(port: int, register_map: RegisterMap | None = None) -> ModbusMeter:
    return ModbusMeter(
        register_map or MAPS["sdm630"],
        transport="tcp",
        host="127.0.0.1",
        port=port,
        timeout=TIMEOUT_S,
        retries=RETRIES,
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def load() -> Load:
    return Load()


@pytest.fixture
async def sim(load: Load, clock: FakeClock) -> AsyncIterator[SimMeterServer]:
    server = SimMeterServer(load, initial_energy_wh=1000.0, clock=clock)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def meter(sim: SimMeterServer) -> AsyncIterator[ModbusMeter]:
    driver = make_meter(sim.port)
    await driver.start()
    yield driver
    await driver.stop()


@contextlib.asynccontextmanager
async def meter_link(
    transport: Literal["tcp", "rtu"],
    register_map: RegisterMap,
    load: Load,
    clock: FakeClock,
    *,
    device_id: int = 1,
    initial_energy_wh: float = 0.0,
    voltage_v: float = 230.0,
    frequency_hz: float = 50.0,
) -> AsyncIterator[tuple[SimMeterServer, ModbusMeter, PtyNullModem | None]]:
    """A started simulator serving ``register_map`` and a driver talking to it."""
    cable = PtyNullModem() if transport == "rtu" else None
    if cable:
        cable.start()
    server = SimMeterServer(
        load,
        register_map=register_map,
        device_id=device_id,
        initial_energy_wh=initial_energy_wh,
        voltage_v=voltage_v,
        frequency_hz=frequency_hz,
        clock=clock,
        serial_port=cable.meter_path if cable else "",
    )
    try:
        await server.start()
        driver = ModbusMeter(
            register_map,
            transport=transport,
            port=server.port,
            serial_port=cable.client_path if cable else "",
            device_id=device_id,
            timeout=TIMEOUT_S,
            retries=RETRIES,
        )
        try:
            yield server, driver, cable
        finally:
            await driver.stop()
    finally:
        await server.stop()
        if cable:
            cable.close()


def rtu_frame(*payload: int) -> bytes:
    """An RTU frame with its CRC-16 (polynomial 0xA001, start 0xFFFF, low byte first).

    Computed here rather than with pymodbus, so the driver's CRC check is tested against
    Modbus over Serial Line §6.2.2, not against itself.
    """
    crc = 0xFFFF
    for byte in payload:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return bytes(payload) + crc.to_bytes(2, "little")


# -- reading the simulator ---------------------------------------------------------------


async def test_reads_voltage_frequency_current_and_power(meter: ModbusMeter, load: Load) -> None:
    load.amps = (16.0, 10.0, 6.0)
    reading = await meter.read()
    assert reading.voltage_v == pytest.approx((230.0, 230.0, 230.0))
    assert reading.frequency_hz == pytest.approx(50.0)
    assert reading.current_a == pytest.approx((16.0, 10.0, 6.0))
    assert reading.power_per_phase_w == pytest.approx((3680.0, 2300.0, 1380.0))
    assert reading.power_w == pytest.approx(230.0 * 32.0)
    assert reading.energy_import_wh == pytest.approx(1000.0, abs=0.01)
    assert reading.energy_export_wh == 0.0


async def test_energy_grows_while_current_flows_and_is_flat_without(
    sim: SimMeterServer, meter: ModbusMeter, load: Load, clock: FakeClock
) -> None:
    start = (await meter.read()).energy_import_wh
    load.amps = (10.0, 10.0, 10.0)
    assert sim.energy_wh == pytest.approx(start, abs=0.01)  # samples the new load
    clock.now += 3600.0
    charged = await meter.read()
    assert charged.power_w == pytest.approx(3 * 230.0 * 10.0)
    assert charged.energy_import_wh - start == pytest.approx(6900.0, abs=0.01)

    load.amps = (0.0, 0.0, 0.0)
    assert sim.energy_wh == pytest.approx(charged.energy_import_wh, abs=0.01)
    clock.now += 3600.0
    idle = await meter.read()
    assert idle.power_w == 0.0
    assert idle.energy_import_wh == pytest.approx(charged.energy_import_wh, abs=0.01)


async def test_simulator_integrates_in_real_time_without_reads() -> None:
    server = SimMeterServer(Load(100.0))
    await server.start()
    try:
        await asyncio.sleep(0.35)
        assert server.energy_wh > 3 * 230.0 * 100.0 * 0.2 / 3600.0
    finally:
        await server.stop()


async def test_every_map_reads_back_through_the_wire(load: Load) -> None:
    load.amps = (12.0, 8.0, 4.0)
    for name, register_map in MAPS.items():
        server = SimMeterServer(load, register_map=register_map, initial_energy_wh=52_000.0)
        await server.start()
        driver = make_meter(server.port, register_map)
        try:
            reading = await driver.read()
        finally:
            await driver.stop()
            await server.stop()
        assert reading.voltage_v[0] == pytest.approx(230.0), name
        assert reading.current_a[0] == pytest.approx(12.0), name
        assert reading.energy_import_wh == pytest.approx(52_000.0, abs=10.0), name
        if name != "sdm120":
            assert reading.power_w == pytest.approx(230.0 * 24.0), name


@pytest.mark.parametrize("transport", ["tcp", "rtu"])
@pytest.mark.parametrize("model", sorted(MAPS))
async def test_every_map_decodes_what_the_simulator_serves(
    model: str, transport: Literal["tcp", "rtu"], clock: FakeClock
) -> None:
    register_map = MAPS[model]
    three_phase = register_map.current_l2 is not None
    load = Load()
    load.amps = (12.0, 8.0, 4.0) if three_phase else (12.0, 0.0, 0.0)
    async with meter_link(
        transport,
        register_map,
        load,
        clock,
        device_id=7,
        initial_energy_wh=52_300.0,
        voltage_v=231.5,
        frequency_hz=49.9,
    ) as (server, driver, _):
        reading = await driver.read()
        served_wh = server.energy_wh
    if three_phase:
        assert reading.voltage_v == pytest.approx((231.5, 231.5, 231.5))
        assert reading.current_a == pytest.approx((12.0, 8.0, 4.0))
        assert reading.power_per_phase_w == pytest.approx((2778.0, 1852.0, 926.0))
        assert reading.power_w == pytest.approx(231.5 * 24.0)
    else:
        assert reading.voltage_v == pytest.approx((231.5, 0.0, 0.0))
        assert reading.current_a == pytest.approx((12.0, 0.0, 0.0))
        assert reading.power_per_phase_w == pytest.approx((2778.0, 0.0, 0.0))
        assert reading.power_w == pytest.approx(2778.0)
    assert reading.frequency_hz == pytest.approx(49.9)
    assert reading.energy_import_wh == pytest.approx(52_300.0, abs=0.01)
    assert reading.energy_import_wh == pytest.approx(served_wh, abs=0.01)
    if register_map.energy_export is None:
        assert reading.energy_export_wh is None
    else:
        assert reading.energy_export_wh == 0.0


async def test_example_custom_map_file_reads_an_sdm630(load: Load, clock: FakeClock) -> None:
    custom = load_map_file(EXAMPLE_MAP)
    load.amps = (16.0, 10.0, 6.0)
    link = meter_link("tcp", MAPS["sdm630"], load, clock, initial_energy_wh=7_500.0)
    async with link as (server, builtin, _):
        expected = await builtin.read()
        driver = make_meter(server.port, custom)
        try:
            reading = await driver.read()
        finally:
            await driver.stop()
    assert reading == expected
    assert reading.current_a == pytest.approx((16.0, 10.0, 6.0))
    assert reading.power_per_phase_w == pytest.approx((3680.0, 2300.0, 1380.0))
    assert reading.energy_import_wh == pytest.approx(7_500.0, abs=0.01)


def test_sdm630_is_read_in_three_block_requests() -> None:
    assert plan_reads(MAPS["sdm630"]) == [
        ReadBlock(4, 0x00, 18),  # V, I, P of L1..L3
        ReadBlock(4, 0x34, 2),  # total power
        ReadBlock(4, 0x46, 6),  # frequency, import, export
    ]


def test_plan_merges_across_allowed_gaps_and_splits_at_block_limit() -> None:
    merged = dataclasses.replace(MAPS["sdm630"], max_gap=40, max_block=125)
    assert plan_reads(merged) == [ReadBlock(4, 0x00, 0x4C)]
    capped = dataclasses.replace(MAPS["sdm630"], max_gap=40, max_block=16)
    blocks = plan_reads(capped)
    assert len(blocks) > 3
    assert all(block.count <= 16 for block in blocks)


# -- failures ----------------------------------------------------------------------------


async def test_offline_meter_raises_within_timeout_and_recovers(
    sim: SimMeterServer, meter: ModbusMeter
) -> None:
    await meter.read()
    sim.set_offline(True)
    for _ in range(2):
        started = time.monotonic()
        with pytest.raises(MeterError, match="no valid answer"):
            await meter.read()
        assert time.monotonic() - started < TIMEOUT_S * (RETRIES + 1) + 0.3
    sim.set_offline(False)
    assert (await meter.read()).voltage_v[0] == pytest.approx(230.0)


async def test_meter_absent_at_start_is_not_fatal_and_read_reconnects(
    sim: SimMeterServer, meter: ModbusMeter
) -> None:
    await sim.stop()
    late = make_meter(sim.port)
    await late.start()  # nobody listens: logged, not raised
    try:
        with pytest.raises(MeterError, match="cannot connect"):
            await late.read()
        with pytest.raises(MeterError):
            await meter.read()  # its connection was dropped by the server
        await sim.start()  # same port again
        assert (await late.read()).frequency_hz == pytest.approx(50.0)
        assert (await meter.read()).frequency_hz == pytest.approx(50.0)
    finally:
        await late.stop()


async def test_energy_going_backwards_is_rejected(
    sim: SimMeterServer, meter: ModbusMeter, load: Load
) -> None:
    assert (await meter.read()).energy_import_wh == pytest.approx(1000.0, abs=0.01)
    await sim.stop()
    swapped = SimMeterServer(load, port=sim.port, initial_energy_wh=400.0)
    await swapped.start()
    try:
        with pytest.raises(MeterError, match="energy_import went backwards"):
            await meter.read()
        with pytest.raises(MeterError, match="backwards"):
            await meter.read()  # the baseline stays at the last accepted reading
    finally:
        await swapped.stop()
    await sim.start()
    assert (await meter.read()).energy_import_wh == pytest.approx(1000.0, abs=0.01)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("voltage_l2", math.nan, "voltage_l2 is nan"),
        ("energy_import", math.inf, "energy_import is inf"),
        ("voltage_l1", 1200.0, "voltage_l1 = 1200 is outside"),
        ("power_total", -2e6, "power_total = -2e\\+06 is outside"),
        ("frequency", -1.0, "frequency"),
    ],
)
async def test_implausible_values_are_rejected(
    sim: SimMeterServer, meter: ModbusMeter, field: str, value: float, message: str
) -> None:
    sim.force(field, value)
    with pytest.raises(MeterError, match=message):
        await meter.read()
    sim.force(field, None)
    assert (await meter.read()).voltage_v == pytest.approx((230.0, 230.0, 230.0))


async def test_modbus_exception_response_is_a_meter_error(sim: SimMeterServer) -> None:
    # SDM630 "total kWh" (0x156) lies outside what the simulator serves.
    custom = map_from_dict(
        {
            "name": "sdm630-total",
            "voltage_l1": 0x00,
            "current_l1": 0x06,
            "power_total": 0x34,
            "energy_import": {"address": 0x156, "scale": 1000.0},
        }
    )
    driver = make_meter(sim.port, custom)
    try:
        with pytest.raises(MeterError, match="ILLEGAL_ADDRESS"):
            await driver.read()
    finally:
        await driver.stop()


async def test_rtu_reads_and_reports_crc_errors_as_meter_errors(load: Load) -> None:
    cable = PtyNullModem()
    cable.start()
    server = SimMeterServer(load, serial_port=cable.meter_path)
    driver = ModbusMeter(
        MAPS["sdm630"],
        transport="rtu",
        serial_port=cable.client_path,
        baudrate=9600,
        timeout=TIMEOUT_S,
        retries=RETRIES,
    )
    try:
        await server.start()
        await driver.start()
        load.amps = (16.0, 16.0, 16.0)
        assert (await driver.read()).power_w == pytest.approx(230.0 * 48.0)
        cable.corrupt_replies = True
        started = time.monotonic()
        with pytest.raises(MeterError, match="no valid answer") as caught:
            await driver.read()
        assert time.monotonic() - started < TIMEOUT_S * (RETRIES + 1) + 0.3
        assert "CRC error" in str(caught.value)
        cable.corrupt_replies = False
        assert (await driver.read()).current_a == pytest.approx((16.0, 16.0, 16.0))
    finally:
        await driver.stop()
        await server.stop()
        cable.close()


# The first request of an SDM630 read: device 1, FC4, 36 bytes (18 registers).
_GOOD_ANSWER = rtu_frame(1, 4, 36, *bytes(36))


@pytest.mark.parametrize(
    ("answer", "cause"),
    [
        (
            _GOOD_ANSWER[:-1] + bytes([_GOOD_ANSWER[-1] ^ 0xFF]),
            "received an answer with a CRC error",
        ),
        (bytes(range(0x28, 0x46)), "received 30 bytes of garbage"),
        (rtu_frame(2, 4, 36, *bytes(36)), "received an answer from device id 2, not 1"),
        (_GOOD_ANSWER[:5], r"received a truncated answer \(5 of 41 bytes\)"),
        (rtu_frame(1, 0x84, 6), r"Modbus exception 6 \(DEVICE_BUSY: the meter is busy\)"),
        (rtu_frame(1, 0x84, 11), r"exception 11 \(GATEWAY_NO_RESPONSE: the gateway got no"),
        (rtu_frame(1, 3, 36, *bytes(36)), "answered with function code 3"),
    ],
    ids=["crc", "garbage", "other-id", "truncated", "busy", "gateway", "wrong-function"],
)
async def test_rtu_line_faults_are_meter_errors_naming_the_cause(
    answer: bytes, cause: str, load: Load, clock: FakeClock
) -> None:
    async with meter_link("rtu", MAPS["sdm630"], load, clock) as (_, driver, cable):
        assert cable is not None
        await driver.read()
        cable.answer = answer
        with pytest.raises(MeterError, match=f"FC4 0x0000\\+18.*{cause}"):
            await driver.read()
        cable.answer = None
        assert (await driver.read()).voltage_v == pytest.approx((230.0, 230.0, 230.0))


async def test_rtu_exception_response_of_the_meter_is_a_meter_error(
    load: Load, clock: FakeClock
) -> None:
    async with meter_link("rtu", MAPS["sdm630"], load, clock) as (_, sdm630, cable):
        assert cable is not None
        # SDM630 "total kWh" (0x156) lies outside what the simulator serves.
        total = dataclasses.replace(
            MAPS["sdm630"],
            energy_import=dataclasses.replace(MAPS["sdm630"].energy_import, address=0x156),
        )
        driver = ModbusMeter(
            total, transport="rtu", serial_port=cable.client_path, timeout=TIMEOUT_S, retries=0
        )
        try:
            with pytest.raises(MeterError, match=r"FC4 0x0156\+2 answered with Modbus exception 2"):
                await driver.read()
        finally:
            await driver.stop()
        assert (await sdm630.read()).frequency_hz == pytest.approx(50.0)  # the line is fine


def test_exception_codes_are_named_even_when_unknown() -> None:
    assert describe_exception(2) == "2 (ILLEGAL_ADDRESS: no such register, wrong model or map)"
    assert describe_exception(5) == "5 (ACKNOWLEDGE)"
    assert describe_exception(99) == "99 (unknown)"


def test_driver_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="transport"):
        ModbusMeter(MAPS["sdm630"], transport="udp")
    with pytest.raises(ValueError, match="serial_port"):
        ModbusMeter(MAPS["sdm630"], transport="rtu")
