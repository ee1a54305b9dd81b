"""SimWorld with two connectors, driven through the real drivers over its real transports.

SerialPilot on each connector's pty, GpioContactor on the world's MockFactory pins, and
ModbusMeters sharing one ModbusBus on the world's meter line (TCP on 127.0.0.1 or RTU on a
simulated serial cable), as a twin wallbox's daemon would use them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from hal.errors import MeterError
from hal.gpio_contactor import GpioContactor
from hal.iec61851 import current_to_duty
from hal.meter_maps import MAPS
from hal.modbus_bus import BusRegistry, BusSettings
from hal.modbus_meter import ModbusMeter
from hal.serial_pilot import SerialPilot
from hal.sim.world import SimCommandError, SimConnectorSpec, SimWorld
from hal.types import CpState, PilotControl

pytestmark = [
    pytest.mark.timeout(30),
    # GpioContactor.stop() clears its feedback callbacks on purpose; gpiozero warns about any None.
    pytest.mark.filterwarnings("ignore::gpiozero.exc.CallbackSetToNone"),
]

TIMEOUT_S = 0.2
TWIN = (
    SimConnectorSpec(1, coil_pin=17, feedback_pin=27, meter_device_id=1),
    SimConnectorSpec(2, coil_pin=22, feedback_pin=23, meter_device_id=2, phases=1),
)


async def until(predicate: Callable[[], bool], what: str, timeout: float = 3.0) -> None:
    """Poll ``predicate`` every 10 ms for at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def running(world: SimWorld) -> AsyncIterator[SimWorld]:
    await world.start()
    try:
        yield world
    finally:
        await world.stop()


@pytest.fixture
async def twin(tmp_path: Path) -> AsyncIterator[SimWorld]:
    specs = [
        SimConnectorSpec(
            spec.connector_id,
            spec.coil_pin,
            spec.feedback_pin,
            spec.meter_device_id,
            spec.phases,
            energy_file=tmp_path / f"energy-{spec.connector_id}",
        )
        for spec in TWIN
    ]
    async with running(SimWorld(specs)) as world:
        yield world


def meters_on(world: SimWorld) -> list[ModbusMeter]:
    """One driver per connector, sharing one line, as the daemon builds them."""
    if world.meter_transport == "rtu":
        line = BusSettings("rtu", serial_port=world.meter_serial_port, timeout=TIMEOUT_S)
    else:
        line = BusSettings("tcp", port=world.meter_port, timeout=TIMEOUT_S)
    registry = BusRegistry()
    return [
        ModbusMeter(
            MAPS["sdm630"],
            bus=registry.bus_for(line, c.spec.meter_device_id, f"connector {c.connector_id}"),
            device_id=c.spec.meter_device_id,
        )
        for c in world.connectors
    ]


@contextlib.asynccontextmanager
async def started(meters: list[ModbusMeter]) -> AsyncIterator[list[ModbusMeter]]:
    try:
        yield meters
    finally:
        for meter in meters:
            await meter.stop()


@pytest.fixture
def contactors(twin: SimWorld) -> Iterator[dict[int, GpioContactor]]:
    drivers = {
        c.connector_id: GpioContactor(
            c.spec.coil_pin, c.spec.feedback_pin, pin_factory=twin.pin_factory
        )
        for c in twin.connectors
    }
    yield drivers
    for driver in drivers.values():
        driver.stop()


async def test_plugging_connector_2_leaves_connector_1_in_state_a(twin: SimWorld) -> None:
    assert twin.command(["plug"], connector_id=2) == "plugged in"
    assert twin.command(["ev-state", "C"], connector_id=2) == "car presents state C"

    assert twin.connector(2).mcu.cp_state is CpState.C
    assert twin.connector(1).mcu.cp_state is CpState.A
    one, two = twin.snapshot()["connectors"]
    assert (one["id"], one["cp_state"], two["id"], two["cp_state"]) == (1, "A", 2, "C")


async def test_each_pilot_port_reaches_its_own_connector(twin: SimWorld) -> None:
    twin.command(["plug"], connector_id=2)
    pilots = {c.connector_id: SerialPilot(c.pilot_port) for c in twin.connectors}
    seen: dict[int, list[CpState]] = {1: [], 2: []}
    for connector_id, pilot in pilots.items():
        await pilot.start(
            lambda status, n=connector_id: seen[n].append(status.cp_state), lambda ok: None
        )
    try:
        await until(lambda: bool(seen[1] and seen[2]), "a status frame from each MCU")
        pilots[2].set_control(PilotControl(duty=current_to_duty(10.0)))
        await until(lambda: twin.connector(2).mcu.control.duty == 1666, "connector 2's duty")
        one, two = twin.snapshot()["connectors"]
    finally:
        for pilot in pilots.values():
            await pilot.stop()
    assert set(seen[1]) == {CpState.A} and set(seen[2]) == {CpState.B}
    assert (two["pwm_duty"], two["offered_current_a"]) == (1666, pytest.approx(10.0, abs=0.01))
    assert (one["pwm_duty"], one["offered_current_a"]) == (10000, 0.0)  # no PWM


async def test_energy_accrues_only_on_the_connector_whose_car_draws(
    twin: SimWorld, contactors: dict[int, GpioContactor]
) -> None:
    pilot = SerialPilot(twin.connector(2).pilot_port)
    await pilot.start(lambda status: None, lambda ok: None)
    try:
        twin.command(["plug"], connector_id=2)
        twin.command(["ev-state", "C"], connector_id=2)
        pilot.set_control(PilotControl(duty=current_to_duty(16.0), allow_power=True))
        contactors[2].close()
        await until(lambda: twin.connector(2).drawn_current_a() > 15.9, "car 2 drawing 16 A")
        assert twin.connector(1).drawn_current_a() == 0.0
        async with started(meters_on(twin)) as (meter1, meter2):
            first1, first2 = await meter1.read(), await meter2.read()
            await until(lambda: twin.connector(2).meter.energy_wh > 1.0, "1 Wh on connector 2")
            last1, last2 = await meter1.read(), await meter2.read()
    finally:
        contactors[2].open()
        await pilot.stop()

    assert last2.current_a == pytest.approx((16.0, 0.0, 0.0), abs=0.01)  # single-phase
    assert last2.energy_import_wh > first2.energy_import_wh + 0.5
    assert last1.current_a == (0.0, 0.0, 0.0)
    assert last1.energy_import_wh == first1.energy_import_wh == 0.0
    one, two = twin.snapshot()["connectors"]
    assert one["meter_energy_wh"] == 0.0 and two["meter_energy_wh"] >= 1.0
    assert (one["contacts_closed"], two["ev_current_a"]) == (False, 16.0)


async def test_each_connector_keeps_its_meter_register_in_its_own_file(tmp_path: Path) -> None:
    (tmp_path / "energy-2").write_text("52300.5\n")
    specs = [
        SimConnectorSpec(n, p, p + 1, n, energy_file=tmp_path / f"energy-{n}")
        for n, p in ((1, 5), (2, 7))
    ]
    world = SimWorld(specs)
    async with running(world), started(meters_on(world)) as (meter1, meter2):
        assert (await meter1.read()).energy_import_wh == 0.0
        assert (await meter2.read()).energy_import_wh == pytest.approx(52300.5, abs=0.01)
    assert float((tmp_path / "energy-1").read_text()) == 0.0
    assert float((tmp_path / "energy-2").read_text()) == pytest.approx(52300.5)


async def test_faults_stay_on_their_connector(
    twin: SimWorld, contactors: dict[int, GpioContactor]
) -> None:
    twin.command(["fault", "weld"], connector_id=1)
    twin.command(["fault", "rcd"], connector_id=2)

    assert contactors[1].feedback_closed and not contactors[2].feedback_closed
    assert twin.connector(2).mcu.status.rcd_tripped
    assert not twin.connector(1).mcu.status.rcd_tripped
    one, two = twin.snapshot()["connectors"]
    assert (one["faults"], two["faults"]) == (["weld"], ["rcd"])
    assert twin.command(["clear", "weld"], connector_id=1) == "fault weld cleared"
    assert not contactors[1].feedback_closed


async def test_meter_offline_on_one_connector_leaves_the_other_device_answering(
    twin: SimWorld,
) -> None:
    async with started(meters_on(twin)) as (meter1, meter2):
        twin.command(["fault", "meter-offline"], connector_id=1)
        with pytest.raises(MeterError, match="id 1: no valid answer"):
            await meter1.read()
        assert (await meter2.read()).voltage_v[0] == pytest.approx(230.0)
        twin.command(["clear", "meter-offline"], connector_id=1)
        assert (await meter1.read()).voltage_v[0] == pytest.approx(230.0)


@pytest.mark.parametrize("transport", ["tcp", "rtu"])
async def test_both_meter_transports_serve_both_device_ids(transport: str) -> None:
    world = SimWorld(TWIN, voltage_v=231.0, meter_transport=transport)
    async with running(world), started(meters_on(world)) as meters:
        readings = await asyncio.gather(*(meter.read() for meter in meters))
        snapshot = world.snapshot()
    assert [r.voltage_v[0] for r in readings] == pytest.approx([231.0, 231.0])
    assert [m.bus for m in meters] == [meters[0].bus] * 2  # one line, one client
    if transport == "rtu":
        assert snapshot["meter"] == {"transport": "rtu", "serial_port": world.meter_serial_port}
        assert world.meter_serial_port.startswith("/dev/pts/")
    else:
        tcp = {"transport": "tcp", "host": "127.0.0.1", "port": world.meter_port}
        assert snapshot["meter"] == tcp
        assert world.meter_port > 0


async def test_snapshot_is_plain_json_data(twin: SimWorld) -> None:
    snapshot = twin.snapshot()
    assert json.loads(json.dumps(snapshot)) == snapshot
    assert set(snapshot["connectors"][0]) == {
        "id",
        "cp_state",
        "ev_current_a",
        "drawn_current_a",
        "contacts_closed",
        "meter_device_id",
        "meter_energy_wh",
        "pwm_duty",
        "offered_current_a",
        "relay_closed",
        "faults",
    }


async def test_an_unknown_connector_is_refused_by_name(twin: SimWorld) -> None:
    refusal = r"no simulated connector 3; the charger has \[1, 2\]"
    with pytest.raises(SimCommandError, match=refusal):
        twin.command(["plug"], connector_id=3)
    with pytest.raises(SimCommandError, match="no simulated connector 0"):
        twin.connector(0)


def test_connectors_cannot_share_an_id_a_meter_id_or_a_pin() -> None:
    one = SimConnectorSpec(1, coil_pin=17, feedback_pin=27, meter_device_id=1)
    with pytest.raises(ValueError, match=r"share a connector id: \[1\]"):
        SimWorld([one, SimConnectorSpec(1, 5, 6, 2)])
    with pytest.raises(ValueError, match=r"share a meter device id: \[1\]"):
        SimWorld([one, SimConnectorSpec(2, 5, 6, 1)])
    with pytest.raises(ValueError, match=r"share a pin: \[27\]"):
        SimWorld([one, SimConnectorSpec(2, 27, 6, 2)])
    with pytest.raises(ValueError, match="meter_transport 'udp'"):
        SimWorld([one], meter_transport="udp")
