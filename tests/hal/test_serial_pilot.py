"""SerialPilot against SimMcu over a real pseudo-terminal (docs/mcu-protocol.md §4-§6)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import struct
import time
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from cobs import cobs

from hal.mcu_protocol import (
    DropKind,
    FrameDecoder,
    LinkStats,
    MsgType,
    StatusMessage,
    encode_control,
    encode_frame,
    encode_status,
    status_payload,
)
from hal.serial_pilot import SerialPilot
from hal.sim.mcu import SimMcu, open_pty
from hal.types import DUTY_OFF, DUTY_STATE_F, CpState, McuFault, PilotControl, PilotStatus

pytestmark = pytest.mark.timeout(10)

CLAIMS_C = PilotStatus(CpState.C, duty=1600, relay_closed=True)


class Listener:
    """Records what the driver reports, with arrival times."""

    def __init__(self) -> None:
        self.statuses: list[tuple[float, PilotStatus]] = []
        self.links: list[tuple[float, bool]] = []

    def on_status(self, status: PilotStatus) -> None:
        self.statuses.append((time.monotonic(), status))

    def on_link(self, ok: bool) -> None:
        self.links.append((time.monotonic(), ok))

    @property
    def link_events(self) -> list[bool]:
        return [ok for _, ok in self.links]

    def seen(self, state: CpState) -> bool:
        return any(s.cp_state is state for _, s in self.statuses)


async def until(predicate: Callable[[], bool], timeout: float = 1.0) -> float:
    """Poll ``predicate`` every 2 ms; return the seconds it took to become true."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.002)
    return time.monotonic() - start


@pytest.fixture
def pty() -> Iterator[tuple[int, str]]:
    master, path = open_pty()
    yield master, path
    with contextlib.suppress(OSError):
        os.close(master)


@pytest.fixture
async def sim(pty: tuple[int, str]) -> AsyncIterator[SimMcu]:
    mcu = SimMcu(pty[0])
    await mcu.start()
    yield mcu
    await mcu.stop()


@pytest.fixture
async def link(pty: tuple[int, str], sim: SimMcu) -> AsyncIterator[tuple[SerialPilot, Listener]]:
    pilot, listener = SerialPilot(pty[1]), Listener()
    await pilot.start(listener.on_status, listener.on_link)
    await until(lambda: pilot.link_ok)
    yield pilot, listener
    await pilot.stop()


@pytest.fixture
def raw_host(pty: tuple[int, str]) -> Iterator[int]:
    """The test itself as the host: the slave side of the pty, no driver."""
    fd = os.open(pty[1], os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    yield fd
    os.close(fd)


def received_statuses(fd: int, decoder: FrameDecoder) -> list[PilotStatus]:
    """Every STATUS the simulated MCU has put on the wire since the last call."""
    data = b""
    with contextlib.suppress(BlockingIOError):
        while chunk := os.read(fd, 65536):
            data += chunk
    return [m.status for m in decoder.feed(data) if isinstance(m, StatusMessage)]


async def test_status_flows_and_link_comes_up(link: tuple[SerialPilot, Listener]) -> None:
    pilot, listener = link
    await until(lambda: len(listener.statuses) >= 3)
    assert listener.link_events == [True]
    assert pilot.last_status is not None
    assert pilot.last_status.cp_state is CpState.A
    assert pilot.last_status.firmware_version == "evsed-sim 1.0"
    assert pilot.stats.dropped == 0


async def test_plug_and_unplug_reach_on_status(
    link: tuple[SerialPilot, Listener], sim: SimMcu
) -> None:
    pilot, listener = link
    sim.plug(cable_rating_a=20)
    await until(lambda: listener.seen(CpState.B), timeout=0.05)
    assert pilot.last_status is not None and pilot.last_status.pp_max_current_a == 20
    sim.unplug()
    await until(lambda: pilot.last_status is not None and pilot.last_status.cp_state is CpState.A)


async def test_c_to_b_reaches_listener_within_milliseconds(
    link: tuple[SerialPilot, Listener], sim: SimMcu
) -> None:
    pilot, listener = link
    pilot.set_control(PilotControl(duty=1600, allow_power=True))
    sim.plug()
    sim.set_ev_state(CpState.C)
    await until(lambda: listener.seen(CpState.C))
    await asyncio.sleep(0.01)  # lands between two periodic frames; the change must not wait
    listener.statuses.clear()
    changed_at = time.monotonic()
    sim.set_ev_state(CpState.B)
    await until(lambda: listener.seen(CpState.B), timeout=0.05)
    arrived = next(t for t, s in listener.statuses if s.cp_state is CpState.B)
    assert arrived - changed_at < 0.01


async def test_control_changes_reach_the_mcu_within_200ms(
    link: tuple[SerialPilot, Listener], sim: SimMcu
) -> None:
    pilot, _ = link
    wanted = PilotControl(duty=2667, allow_power=True, lock=True)
    pilot.set_control(wanted)
    assert await until(lambda: sim.control == wanted, timeout=0.2) < 0.05
    assert sim.relay_closed
    frames = sim.stats.frames_ok
    await asyncio.sleep(0.25)  # unchanged state is still sent every 100 ms
    assert sim.stats.frames_ok - frames >= 2
    assert sim.stats.dropped == 0


def _bad_crc(seq: int) -> bytes:
    body = bytes([MsgType.STATUS, seq]) + status_payload(CLAIMS_C)
    return b"\x00" + bytes(cobs.encode(body + struct.pack("<I", zlib.crc32(body) ^ 0xFF))) + b"\x00"


def _truncated_cobs(seq: int) -> bytes:
    encoded = encode_status(CLAIMS_C, seq)[1:-1][:-3]
    with pytest.raises(cobs.DecodeError):
        cobs.decode(encoded)
    return b"\x00" + encoded  # no closing delimiter: the next real frame ends it


@pytest.mark.parametrize(
    ("make", "counter"),
    [
        (_bad_crc, "bad_crc"),
        (_truncated_cobs, "bad_cobs"),
        (lambda seq: encode_frame(0x42, seq, status_payload(CLAIMS_C)), "unknown_type"),
        (lambda seq: encode_status(CLAIMS_C, seq - 1), "out_of_order"),  # replays the last seq
        (lambda seq: encode_status(CLAIMS_C, seq - 20), "out_of_order"),
    ],
)
async def test_corrupt_frames_are_dropped_counted_and_never_reported(
    link: tuple[SerialPilot, Listener],
    sim: SimMcu,
    make: Callable[[int], bytes],
    counter: str,
) -> None:
    pilot, listener = link
    assert sim.last_sent_seq is not None
    ok_before = pilot.stats.frames_ok
    sim.write_raw(make((sim.last_sent_seq + 1) & 0xFF))
    await until(lambda: getattr(pilot.stats, counter) == 1, timeout=0.3)
    # Two periodic frames (~200 ms); the slack is for a loaded CI machine.
    await until(lambda: pilot.stats.frames_ok >= ok_before + 2, timeout=0.5)
    assert pilot.stats.dropped == 1
    assert not listener.seen(CpState.C)
    assert listener.link_events == [True]


async def test_garbage_on_the_wire_does_not_break_the_link(
    link: tuple[SerialPilot, Listener], sim: SimMcu
) -> None:
    pilot, listener = link
    sim.write_raw(b"\x00\xde\xad\xbe\xef\x00\x00\x01\x02\x03" + bytes(range(1, 200)))
    sim.plug()
    await until(lambda: listener.seen(CpState.B), timeout=0.3)
    assert pilot.stats.dropped >= 1
    assert pilot.link_ok and listener.link_events == [True]


async def test_mcu_failsafe_opens_relay_after_500ms_of_host_silence(
    sim: SimMcu, raw_host: int
) -> None:
    os.write(raw_host, encode_control(PilotControl(duty=1600, allow_power=True), 0))
    await until(lambda: sim.relay_closed, timeout=0.2)
    sim.plug()
    silent_since = time.monotonic()
    await asyncio.sleep(0.3)
    assert sim.relay_closed and sim.cp_state is CpState.B
    assert McuFault.HOST_TIMEOUT not in sim.faults
    assert not sim.status.mcu_driving_f
    await until(lambda: McuFault.HOST_TIMEOUT in sim.faults, timeout=0.35)
    assert 0.45 <= time.monotonic() - silent_since <= 0.6
    assert not sim.relay_closed
    assert sim.cp_state is CpState.F and sim.status.duty == 0
    assert sim.status.mcu_driving_f
    # The failsafe is on the wire too: the last STATUS frame says so.
    await asyncio.sleep(0.005)
    messages = FrameDecoder(MsgType.STATUS).feed(os.read(raw_host, 65536))
    last = messages[-1]
    assert isinstance(last, StatusMessage)
    assert last.status.cp_state is CpState.F and not last.status.relay_closed
    assert McuFault.HOST_TIMEOUT in last.status.faults
    assert last.status.mcu_driving_f


async def test_failsafe_latch_clears_only_after_ack_then_holds_f_for_300ms(
    pty: tuple[int, str], raw_host: int
) -> None:
    sim = SimMcu(pty[0], host_timeout=0.2)
    await sim.start()
    try:
        power = PilotControl(duty=1600, allow_power=True)
        wire = FrameDecoder(MsgType.STATUS)
        os.write(raw_host, encode_control(power, 0))
        await until(lambda: sim.relay_closed, timeout=0.2)
        assert not sim.status.mcu_driving_f
        await until(lambda: McuFault.HOST_TIMEOUT in sim.faults, timeout=0.3)
        for seq in range(1, 4):  # frames flow again, without ack: latch stays
            os.write(raw_host, encode_control(power, seq))
            await asyncio.sleep(0.05)
        assert sim.control == power
        assert McuFault.HOST_TIMEOUT in sim.faults and not sim.relay_closed
        assert sim.cp_state is CpState.F
        received_statuses(raw_host, wire)  # everything up to the acknowledgement
        acked_at = time.monotonic()
        os.write(raw_host, encode_control(PilotControl(1600, True, ack_faults=True), 4))
        await until(lambda: McuFault.HOST_TIMEOUT not in sim.faults, timeout=0.1)
        seq = 5
        while time.monotonic() - acked_at < 0.27:  # keep the host alive during the hold
            assert sim.cp_state is CpState.F and not sim.relay_closed
            assert sim.status.mcu_driving_f
            os.write(raw_host, encode_control(power, seq))
            seq += 1
            await asyncio.sleep(0.03)
        os.write(raw_host, encode_control(power, seq))
        await until(lambda: sim.cp_state is CpState.A, timeout=0.1)
        assert time.monotonic() - acked_at >= 0.3
        assert sim.relay_closed and sim.faults == McuFault.NONE
        assert not sim.status.mcu_driving_f
        # On the wire: F driven by the MCU while the fault is latched and during the hold,
        # then the host's PWM with driving_f clear.
        await asyncio.sleep(0.005)
        sent = received_statuses(raw_host, wire)
        hold = [
            s for s in sent if s.cp_state is CpState.F and McuFault.HOST_TIMEOUT not in s.faults
        ]
        assert hold and all(s.mcu_driving_f and s.duty == 0 for s in hold)
        assert all(s.mcu_driving_f for s in sent if s.cp_state is CpState.F)
        assert sent[-1].cp_state is CpState.A and not sent[-1].mcu_driving_f
        assert sent[-1].duty == 1600
    finally:
        await sim.stop()


async def test_host_duty_0_is_reported_as_state_f_driven_by_the_mcu(
    link: tuple[SerialPilot, Listener], sim: SimMcu
) -> None:
    pilot, listener = link
    sim.plug()
    pilot.set_control(PilotControl(duty=DUTY_STATE_F))
    await until(lambda: listener.seen(CpState.F), timeout=0.2)
    status = pilot.last_status
    assert status is not None and status.cp_state is CpState.F
    assert status.mcu_driving_f and status.duty == 0
    assert status.faults == McuFault.NONE
    pilot.set_control(PilotControl(duty=1600))
    await until(lambda: pilot.last_status is not None and pilot.last_status.cp_state is CpState.B)
    status = pilot.last_status
    assert status is not None and not status.mcu_driving_f and status.duty == 1600


async def test_state_f_from_the_pilot_circuit_is_not_driven_by_the_mcu(
    link: tuple[SerialPilot, Listener], sim: SimMcu
) -> None:
    """CP at -12 V while the host's PWM runs: cp F, but driving_f clear (a pilot fault)."""
    pilot, listener = link
    pilot.set_control(PilotControl(duty=1600, allow_power=True))
    sim.plug()
    sim.set_ev_state(CpState.C)
    await until(lambda: listener.seen(CpState.C), timeout=0.2)
    sim.set_ev_state(CpState.F)
    await until(lambda: listener.seen(CpState.F), timeout=0.1)
    status = pilot.last_status
    assert status is not None and status.cp_state is CpState.F
    assert not status.mcu_driving_f
    assert status.duty == 1600  # the MCU is still generating the host's PWM
    assert all(not s.mcu_driving_f for _, s in listener.statuses)


async def test_diode_check_is_carried_in_pilot_status(
    link: tuple[SerialPilot, Listener], sim: SimMcu
) -> None:
    pilot, _ = link
    sim.plug()
    sim.set_fault("diode", True)
    await asyncio.sleep(0.15)
    assert pilot.last_status is not None and pilot.last_status.diode_ok  # no PWM: nothing to check
    pilot.set_control(PilotControl(duty=1600))
    await until(lambda: pilot.last_status is not None and not pilot.last_status.diode_ok)
    assert McuFault.DIODE in pilot.last_status.faults
    sim.set_fault("diode", False)
    await until(lambda: pilot.last_status is not None and pilot.last_status.diode_ok)


async def test_stats_are_a_frozen_snapshot_for_evsectl(
    link: tuple[SerialPilot, Listener], sim: SimMcu
) -> None:
    pilot, _ = link
    assert sim.last_sent_seq is not None
    sim.write_raw(_bad_crc((sim.last_sent_seq + 1) & 0xFF))
    await until(lambda: pilot.stats.bad_crc == 1, timeout=0.3)
    snapshot = pilot.stats
    assert isinstance(snapshot, LinkStats)
    shown = snapshot.as_dict()
    assert list(shown) == ["frames_ok", *(kind.value for kind in DropKind)]
    assert shown["bad_crc"] == 1 and shown["frames_ok"] == snapshot.frames_ok >= 1
    assert snapshot.dropped == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        snapshot.bad_crc = 0  # type: ignore[misc]
    await until(lambda: pilot.stats.frames_ok > snapshot.frames_ok, timeout=0.5)
    assert snapshot.as_dict() == shown  # later frames do not change a snapshot


async def test_stop_sends_power_off_then_mcu_fails_safe(
    link: tuple[SerialPilot, Listener], sim: SimMcu
) -> None:
    pilot, listener = link
    pilot.set_control(PilotControl(duty=1600, allow_power=True, lock=True))
    await until(lambda: sim.relay_closed, timeout=0.2)
    await pilot.stop()
    stopped_at = time.monotonic()
    await until(lambda: not sim.relay_closed, timeout=0.05)
    assert sim.control == PilotControl(duty=DUTY_OFF, allow_power=False, lock=True)
    await asyncio.sleep(0.3)
    assert sim.cp_state is CpState.A and McuFault.HOST_TIMEOUT not in sim.faults
    await until(lambda: sim.cp_state is CpState.F, timeout=0.35)
    assert time.monotonic() - stopped_at >= 0.45
    assert listener.link_events == [True]  # no listener calls after stop()


async def test_silent_mcu_is_reported_as_link_lost_then_recovered(
    link: tuple[SerialPilot, Listener], sim: SimMcu
) -> None:
    pilot, listener = link
    sim.set_fault("mcu-silent", True)
    lost_after = await until(lambda: not pilot.link_ok, timeout=0.45)
    assert 0.15 <= lost_after <= 0.45
    assert listener.link_events == [True, False]
    sim.set_fault("mcu-silent", False)
    await until(lambda: pilot.link_ok, timeout=0.2)
    assert listener.link_events == [True, False, True]


async def test_link_lost_reported_once_when_the_mcu_never_answers(pty: tuple[int, str]) -> None:
    pilot, listener = SerialPilot(pty[1]), Listener()
    await pilot.start(listener.on_status, listener.on_link)
    try:
        await asyncio.sleep(0.45)
        assert listener.link_events == [False]
        assert not pilot.link_ok
    finally:
        await pilot.stop()


async def test_vanished_device_is_reported_and_reopened(tmp_path: Path) -> None:
    first_fd, first_path = open_pty()
    device = tmp_path / "ttyMCU"  # like a udev symlink
    device.symlink_to(first_path)
    first = SimMcu(first_fd)
    await first.start()
    pilot, listener = SerialPilot(str(device), reopen_interval=0.1), Listener()
    await pilot.start(listener.on_status, listener.on_link)
    second_fd = -1
    try:
        await until(lambda: pilot.link_ok)
        await first.stop()
        os.close(first_fd)  # the device disappears
        await until(lambda: not pilot.link_ok, timeout=0.1)
        second_fd, second_path = open_pty()
        second = SimMcu(second_fd)
        await second.start()
        device.unlink()
        device.symlink_to(second_path)
        await until(lambda: pilot.link_ok, timeout=0.5)
        second.plug()
        await until(lambda: listener.seen(CpState.B), timeout=0.2)
        assert listener.link_events == [True, False, True]
        await second.stop()
    finally:
        await pilot.stop()
        if second_fd >= 0:
            os.close(second_fd)


async def test_failing_listener_does_not_stop_dispatch(pty: tuple[int, str], sim: SimMcu) -> None:
    seen: list[CpState] = []

    def explode(status: PilotStatus) -> None:
        seen.append(status.cp_state)
        raise RuntimeError("listener bug")

    pilot = SerialPilot(pty[1])
    await pilot.start(explode, lambda ok: None)
    try:
        await until(lambda: len(seen) >= 2)
        sim.plug()
        await until(lambda: CpState.B in seen, timeout=0.05)
    finally:
        await pilot.stop()


async def test_invalid_control_is_rejected_and_the_previous_state_kept(
    link: tuple[SerialPilot, Listener], sim: SimMcu
) -> None:
    pilot, _ = link
    wanted = PilotControl(duty=1600, allow_power=True)
    pilot.set_control(wanted)
    with pytest.raises(ValueError, match="duty"):
        pilot.set_control(PilotControl(duty=12000))
    assert pilot.control == wanted
    frames = sim.stats.frames_ok
    await until(lambda: sim.stats.frames_ok >= frames + 2, timeout=0.3)
    assert sim.control == wanted


# -- the connector lock (spec §6.5) ------------------------------------------------------------


def _latest(listener: Listener) -> PilotStatus:
    return listener.statuses[-1][1]


async def test_lock_follows_the_request_and_reports_its_position(
    link: tuple[SerialPilot, Listener], sim: SimMcu
) -> None:
    pilot, listener = link
    sim.plug()
    pilot.set_control(PilotControl(lock=True))
    await until(lambda: _latest(listener).locked, timeout=0.3)
    pilot.set_control(PilotControl(lock=False))
    await until(lambda: not _latest(listener).locked, timeout=0.3)
    assert not any(McuFault.LOCK in s.faults for _, s in listener.statuses)


async def test_jammed_lock_latches_lock_after_the_timeout_and_clears_when_back_in_place(
    link: tuple[SerialPilot, Listener], sim: SimMcu
) -> None:
    pilot, listener = link
    sim.plug()
    sim.set_fault("lock", True)  # the plug is in halfway: the lock pin cannot close
    requested = time.monotonic()
    pilot.set_control(PilotControl(lock=True))
    await until(lambda: McuFault.LOCK in _latest(listener).faults, timeout=1.0)
    assert 0.45 <= time.monotonic() - requested <= 0.7
    assert not _latest(listener).locked
    # An acknowledgement does not clear it while the lock is not where the host wants it.
    pilot.set_control(PilotControl(lock=True, ack_faults=True))
    await asyncio.sleep(0.25)
    assert McuFault.LOCK in _latest(listener).faults
    # The host gives up on locking: the lock is where it is asked to be, the ack clears it.
    pilot.set_control(PilotControl(lock=False, ack_faults=True))
    await until(lambda: McuFault.LOCK not in _latest(listener).faults, timeout=0.3)


async def test_lock_retry_makes_a_new_attempt_after_a_failed_unlock(
    link: tuple[SerialPilot, Listener], sim: SimMcu
) -> None:
    pilot, listener = link
    sim.plug()
    pilot.set_control(PilotControl(lock=True))
    await until(lambda: _latest(listener).locked, timeout=0.3)
    sim.set_fault("lock", True)  # stuck in the locked position
    pilot.set_control(PilotControl(lock=False))
    await until(lambda: McuFault.LOCK in _latest(listener).faults, timeout=1.0)
    assert _latest(listener).locked
    sim.set_fault("lock", False)  # freed, but the MCU does not try again by itself
    await asyncio.sleep(0.3)
    assert _latest(listener).locked
    pilot.set_control(PilotControl(lock=False, lock_retry=True))
    await until(lambda: not _latest(listener).locked, timeout=0.3)
    assert McuFault.LOCK in _latest(listener).faults  # latched until acknowledged
    pilot.set_control(PilotControl(lock=False, ack_faults=True))
    await until(lambda: McuFault.LOCK not in _latest(listener).faults, timeout=0.3)
