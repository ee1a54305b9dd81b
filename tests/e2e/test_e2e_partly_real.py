"""Mixed setups: a simulated control pilot with a "real" meter (any Modbus TCP server), and
mock GPIO on a board without a contactor."""

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from evsed.config import load_config
from evsed.hardware import build_hardware
from evsed_devtools.harness import DevCsms, Evsed, wait_for, write_config
from hal.sim.meter import SimMeterServer


@pytest.fixture
def outside_meter() -> Iterator[SimMeterServer]:
    """A meter the daemon does not own: served from another thread, as another device would."""
    loop = asyncio.new_event_loop()
    server = SimMeterServer(lambda: (2.0, 2.0, 2.0), initial_energy_wh=123_456.0)
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
    yield server
    asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


def test_simulated_pilot_with_a_real_meter(
    tmp_path: Path, csms: DevCsms, outside_meter: SimMeterServer
) -> None:
    evsed = Evsed.start(
        tmp_path,
        csms.ws_url,
        hal__sim={"simulate_meter": False},
        connector__meter={"transport": "tcp", "host": "127.0.0.1", "port": outside_meter.port},
    )
    try:
        wait_for(lambda: (evsed.connector()["energy_wh"] or 0) >= 123_456, what="outside meter")
        # The outside meter's load is its own: 3 x 2 A at 230 V, contactor or not.
        assert 1300 < evsed.connector()["power_w"] < 1460
        evsed.sim("plug")
        wait_for(lambda: evsed.connector()["ocpp_status"] == "Preparing", what="sim pilot works")
    finally:
        assert evsed.stop() == 0


async def test_mock_gpio_in_hardware_mode_has_a_mirror_that_follows_the_coil(
    tmp_path: Path,
) -> None:
    config = load_config(
        write_config(
            tmp_path,
            "ws://127.0.0.1:9/ocpp",
            "CP01",
            hal={"kind": "hardware"},
            connector__contactor={"pin_factory": "mock"},
            connector__meter={"transport": "tcp", "port": 9},
        )
    )
    hardware = await build_hardware(config)
    seen: list[bool] = []
    hardware.connectors[1].contactor.start(seen.append)
    hardware.connectors[1].contactor.close()
    assert hardware.connectors[1].contactor.feedback_closed
    hardware.connectors[1].contactor.open()
    assert not hardware.connectors[1].contactor.feedback_closed
    await asyncio.sleep(0.05)
    assert seen == [True, False]
    hardware.connectors[1].contactor.stop()
