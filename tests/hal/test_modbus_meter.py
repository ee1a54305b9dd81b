"""ModbusMeter against a real pymodbus server (SimMeterServer) on 127.0.0.1, and the maps."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import os
import struct
import time
import tty
from collections.abc import AsyncIterator

import pytest
from pymodbus.client import AsyncModbusTcpClient

from hal.errors import MeterError
from hal.meter_maps import (
    DATATYPES,
    MAPS,
    Register,
    RegisterMap,
    decode,
    map_from_dict,
    register_count,
)
from hal.modbus_meter import ModbusMeter, ReadBlock, plan_reads
from hal.sim.meter import SimMeterServer, encode

TIMEOUT_S = 0.2
RETRIES = 1


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


def words(fmt: str, value: float, *, low_word_first: bool = False) -> list[int]:
    """Raw registers of ``value`` packed big-endian with ``fmt``, built here on purpose."""
    data = struct.pack(f">{fmt}", value)
    regs = [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
    return regs[::-1] if low_word_first else regs


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


class PtyNullModem:
    """Two pty pairs joined master to master: a serial cable between two device paths.

    ``corrupt_replies`` flips the last byte (the CRC) of everything the meter side sends.
    """

    def __init__(self) -> None:
        self.corrupt_replies = False
        self._fds: list[int] = []
        meter_master, self.meter_path = self._open()
        client_master, self.client_path = self._open()
        loop = asyncio.get_running_loop()
        loop.add_reader(meter_master, self._relay, meter_master, client_master, True)
        loop.add_reader(client_master, self._relay, client_master, meter_master, False)
        self._masters = (meter_master, client_master)

    def _open(self) -> tuple[int, str]:
        master, slave = os.openpty()
        tty.setraw(master)
        os.set_blocking(master, False)
        self._fds += [master, slave]
        return master, os.ttyname(slave)

    def _relay(self, source: int, sink: int, from_meter: bool) -> None:
        try:
            data = os.read(source, 4096)
        except (BlockingIOError, OSError):
            return
        if from_meter and self.corrupt_replies and data:
            data = data[:-1] + bytes([data[-1] ^ 0xFF])
        os.write(sink, data)

    def close(self) -> None:
        loop = asyncio.get_running_loop()
        for master in self._masters:
            loop.remove_reader(master)
        for fd in self._fds:
            os.close(fd)


async def test_rtu_reads_and_reports_crc_errors_as_meter_errors(load: Load) -> None:
    cable = PtyNullModem()
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
        with pytest.raises(MeterError, match="no valid answer"):
            await driver.read()
        assert time.monotonic() - started < TIMEOUT_S * (RETRIES + 1) + 0.3
        cable.corrupt_replies = False
        assert (await driver.read()).current_a == pytest.approx((16.0, 16.0, 16.0))
    finally:
        await driver.stop()
        await server.stop()
        cable.close()


# -- decoding, independent of the wire ---------------------------------------------------


@pytest.mark.parametrize(
    ("map_name", "field", "regs", "expected"),
    [
        ("sdm630", "voltage_l1", words("f", 231.5), 231.5),
        ("sdm630", "power_total", words("f", -1234.5), -1234.5),
        ("sdm630", "energy_import", words("f", 12.5), 12_500.0),
        ("sdm120", "current_l1", words("f", 7.25), 7.25),
        ("sdm120", "energy_export", words("f", 3.0), 3_000.0),
        ("em340", "voltage_l1", words("i", 2305, low_word_first=True), 230.5),
        ("em340", "current_l2", words("i", 16_123, low_word_first=True), 16.123),
        ("em340", "power_total", words("i", -123_456, low_word_first=True), -12_345.6),
        ("em340", "energy_import", words("i", 0x0012_3456, low_word_first=True), 119_304_600.0),
        ("em340", "frequency", words("h", 499), 49.9),
        ("abb_b23", "voltage_l3", words("I", 2_298), 229.8),
        ("abb_b23", "current_l1", words("I", 1_600), 16.0),
        ("abb_b23", "power_total", words("i", -70_000), -700.0),
        (
            "abb_b23",
            "energy_import",
            words("Q", 0x0001_0000_0002_0003),
            0x0001_0000_0002_0003 * 10.0,
        ),
        ("abb_b23", "frequency", words("H", 5_001), 50.01),
    ],
)
def test_decode_matches_independently_packed_values(
    map_name: str, field: str, regs: list[int], expected: float
) -> None:
    register = getattr(MAPS[map_name], field)
    assert decode(register, regs) == pytest.approx(expected)


def test_decode_agrees_with_pymodbus_conversion() -> None:
    convert = AsyncModbusTcpClient.convert_from_registers
    datatype = AsyncModbusTcpClient.DATATYPE
    for order in ("big", "little"):
        regs = words("q", -0x0102_0304_0506, low_word_first=order == "little")
        register = Register(0, 3, "int64", order)
        assert decode(register, regs) == convert(regs, datatype.INT64, word_order=order)
        regs = words("f", 49.75, low_word_first=order == "little")
        register = Register(0, 4, "float32", order)
        assert decode(register, regs) == convert(regs, datatype.FLOAT32, word_order=order)


def test_simulator_encoding_round_trips_every_field() -> None:
    for register_map in MAPS.values():
        for name, register in register_map.registers().items():
            value = 123.4 if register.datatype != "uint64" else 5_000.0
            assert decode(register, encode(register, value)) == pytest.approx(
                value, rel=1e-6, abs=abs(register.scale)
            ), (register_map.name, name)


def test_decode_rejects_wrong_register_count() -> None:
    with pytest.raises(ValueError, match="needs 2 registers"):
        decode(MAPS["sdm630"].voltage_l1, [0])


def test_register_count_of_every_datatype() -> None:
    expected = {"int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "float32": 2}
    expected |= {"int64": 4, "uint64": 4}
    assert {datatype: register_count(datatype) for datatype in DATATYPES} == expected
    with pytest.raises(ValueError, match="float64"):
        register_count("float64")


# -- custom maps ---------------------------------------------------------------------------

SDM630_AS_DICT = {
    "name": "my-sdm630",
    "function_code": 4,
    "datatype": "float32",
    "word_order": "big",
    "voltage_l1": 0x00,
    "voltage_l2": 0x02,
    "voltage_l3": 0x04,
    "current_l1": 0x06,
    "current_l2": 0x08,
    "current_l3": 0x0A,
    "power_l1": 0x0C,
    "power_l2": 0x0E,
    "power_l3": 0x10,
    "power_total": 0x34,
    "frequency": 0x46,
    "energy_import": {"address": 0x48, "scale": 1000},
    "energy_export": {"address": 0x4A, "scale": 1000.0},
}


def test_map_from_dict_builds_the_same_map_as_the_builtin() -> None:
    custom = map_from_dict(SDM630_AS_DICT)
    assert custom.registers() == MAPS["sdm630"].registers()
    assert custom.name == "my-sdm630"


def test_map_from_dict_per_register_settings_override_defaults() -> None:
    custom = map_from_dict(
        {
            **SDM630_AS_DICT,
            "frequency": {"address": 0x33, "datatype": "int16", "scale": 0.1},
            "power_total": {"address": 0x28, "datatype": "int32", "word_order": "little"},
        }
    )
    assert custom.frequency == Register(0x33, 4, "int16", "big", 0.1)
    assert custom.power_total == Register(0x28, 4, "int32", "little", 1.0)


@pytest.mark.parametrize(
    ("change", "names"),
    [
        ({"energy_import": None}, "energy_import"),
        ({"voltage_l1": {"address": 0, "datatype": "float64"}}, "voltage_l1.*float64"),
        ({"current_l2": {"address": 8, "function_code": 6}}, "current_l2.*function_code"),
        ({"power_l1": {"address": "0x0C"}}, "power_l1.*address"),
        ({"power_l2": {"address": 0x0E, "scael": 2}}, "power_l2.*scael"),
        ({"power_l3": {"scale": 2}}, "power_l3.*address"),
        ({"frequency": {"address": 0x46, "word_order": "middle"}}, "frequency.*word_order"),
        ({"energy_export": {"address": 0x4A, "scale": 0}}, "energy_export.*scale"),
        ({"voltage_l3": 0xFFFF}, "voltage_l3.*address"),
        ({"voltage": 0x00}, "unknown field.*voltage"),
        ({"max_gap": -1}, "max_gap"),
        ({"name": ""}, "name"),
    ],
)
def test_map_from_dict_errors_name_the_field(change: dict[str, object], names: str) -> None:
    spec = {**SDM630_AS_DICT, **change}
    spec = {key: value for key, value in spec.items() if value is not None}
    with pytest.raises(ValueError, match=names):
        map_from_dict(spec)


def test_driver_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="transport"):
        ModbusMeter(MAPS["sdm630"], transport="udp")
    with pytest.raises(ValueError, match="serial_port"):
        ModbusMeter(MAPS["sdm630"], transport="rtu")
