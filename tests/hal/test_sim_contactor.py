"""SimContactorWiring under the real GpioContactor driver: mirror contact, weld, coil observers."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest
from gpiozero.pins.mock import MockFactory

from hal.gpio_contactor import GpioContactor
from hal.sim.contactor import SimContactorWiring

COIL, MIRROR = 17, 27

# GpioContactor.stop() clears its feedback callbacks on purpose; gpiozero warns about any None.
pytestmark = pytest.mark.filterwarnings("ignore::gpiozero.exc.CallbackSetToNone")


@pytest.fixture
def rig() -> Iterator[tuple[SimContactorWiring, GpioContactor]]:
    factory = MockFactory()
    wiring = SimContactorWiring(factory, COIL, MIRROR)
    contactor = GpioContactor(COIL, MIRROR, pin_factory=factory)
    yield wiring, contactor
    contactor.stop()


def test_observers_see_each_coil_edge_with_a_perf_counter_stamp(
    rig: tuple[SimContactorWiring, GpioContactor],
) -> None:
    wiring, contactor = rig
    edges: list[tuple[bool, int]] = []
    wiring.on_coil_change.append(lambda level, ns: edges.append((level, ns)))

    before = time.perf_counter_ns()
    contactor.close()
    contactor.close()  # already high: no edge
    contactor.open()
    contactor.open()  # already low: no edge
    after = time.perf_counter_ns()

    assert [level for level, _ in edges] == [True, False]
    assert before <= edges[0][1] <= edges[1][1] <= after


def test_mirror_contact_follows_the_coil(rig: tuple[SimContactorWiring, GpioContactor]) -> None:
    wiring, contactor = rig
    contactor.close()
    assert contactor.feedback_closed and wiring.contacts_closed
    contactor.open()
    assert not contactor.feedback_closed and not wiring.contacts_closed


def test_welded_contacts_keep_the_mirror_closed_after_the_coil_drops(
    rig: tuple[SimContactorWiring, GpioContactor],
) -> None:
    wiring, contactor = rig
    edges: list[bool] = []
    wiring.on_coil_change.append(lambda level, _ns: edges.append(level))
    contactor.close()
    wiring.set_welded(True)

    contactor.open()

    assert edges == [True, False]  # the coil did drop
    assert not wiring.coil_energised
    assert contactor.feedback_closed and wiring.contacts_closed
    wiring.set_welded(False)
    assert not contactor.feedback_closed and not wiring.contacts_closed


def test_a_failing_observer_is_logged_and_does_not_stop_the_contactor(
    rig: tuple[SimContactorWiring, GpioContactor], caplog: pytest.LogCaptureFixture
) -> None:
    wiring, contactor = rig
    seen: list[bool] = []

    def broken(_level: bool, _ns: int) -> None:
        raise RuntimeError("observer bug")

    wiring.on_coil_change += [broken, lambda level, _ns: seen.append(level)]
    with caplog.at_level(logging.ERROR, logger="hal.sim.contactor"):
        contactor.close()

    assert contactor.feedback_closed
    assert seen == [True]
    assert "observer" in caplog.text
