"""The simulated meter's non-volatile energy register (``SimMeterServer(energy_file=...)``).

A real meter keeps its count through a crash or power cut of the charger; so must the
simulated one, or end-to-end tests that kill the daemon would see the energy start again at 0.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hal.meter_maps import MAPS
from hal.modbus_meter import ModbusMeter
from hal.sim.meter import SimMeterServer


class FakeClock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


def three_phase(amps: float) -> tuple[float, float, float]:
    return (amps, amps, amps)


async def read_energy_wh(port: int) -> float:
    driver = ModbusMeter(MAPS["sdm630"], transport="tcp", host="127.0.0.1", port=port, timeout=0.5)
    await driver.start()
    try:
        return (await driver.read()).energy_import_wh
    finally:
        await driver.stop()


async def test_every_served_value_is_stored_before_it_leaves(tmp_path: Path) -> None:
    register = tmp_path / "energy"
    clock = FakeClock()
    server = SimMeterServer(lambda: three_phase(10.0), energy_file=register, clock=clock)
    await server.start()
    try:
        await read_energy_wh(server.port)  # the first request measures the 10 A load
        clock.now += 3600.0  # one hour at 3 x 230 V x 10 A
        served = await read_energy_wh(server.port)
        # Read while the server still runs, as after a kill -9 nothing else would be written.
        stored = float(register.read_text())
    finally:
        await server.stop()
    assert served == pytest.approx(6900.0, abs=0.5)
    assert stored >= served - 0.01  # float32 on the wire


async def test_a_new_process_counts_on_from_the_stored_register(tmp_path: Path) -> None:
    register = tmp_path / "energy"
    register.write_text("52300.5\n")
    server = SimMeterServer(lambda: three_phase(0.0), energy_file=register, initial_energy_wh=1.0)
    await server.start()
    try:
        assert await read_energy_wh(server.port) == pytest.approx(52300.5, abs=0.01)
    finally:
        await server.stop()


def test_without_a_stored_register_the_initial_energy_is_used(tmp_path: Path) -> None:
    server = SimMeterServer(
        lambda: three_phase(0.0), energy_file=tmp_path / "absent", initial_energy_wh=7.0
    )
    assert server.energy_wh == pytest.approx(7.0)


@pytest.mark.parametrize("content", ["", "lots", "-3.0", "nan"])
def test_a_damaged_register_file_is_refused(tmp_path: Path, content: str) -> None:
    register = tmp_path / "energy"
    register.write_text(content)
    with pytest.raises(ValueError, match="energy"):
        SimMeterServer(lambda: three_phase(0.0), energy_file=register)
