"""Fuzzing the MCU line: random bytes, corrupted frames and well-formed frames with random
payloads, on their own and between the simulated MCU's real frames into a running daemon.

The decoder never raises and returns only STATUS messages (docs/mcu-protocol.md §2, §4: drop
and count). In the daemon, a car is plugged in and paused in state B of a free-mode session
(PWM on, contactor open); whatever else arrives on its line, the contactor never closes: bad
frames are dropped, and a well-formed frame is only taken when its payload decodes (random
payloads that decode to a car asking for power, C or D, are not sent: that would be a
legitimate request). After each example the daemon is alive and its link is up again.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import EXAMPLES
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from inprocess import Rig, running

from hal.mcu_protocol import (
    FrameDecoder,
    FrameError,
    MsgType,
    StatusMessage,
    decode_status,
    encode_frame,
    encode_status,
    status_payload,
)
from hal.types import CpState, PilotStatus

FUZZ = settings(  # each example waits for two real frames (0.2 s)
    max_examples=max(1, EXAMPLES // 2),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
UNIT = settings(max_examples=EXAMPLES * 10, deadline=None)


def flipped(frame: bytes, rng: random.Random, flips: int) -> bytes:
    data = bytearray(frame)
    for _ in range(flips):
        i = rng.randrange(1, len(data) - 1)  # keep the delimiters: a frame-shaped lie
        data[i] ^= 1 << rng.randrange(8)
    return bytes(data)


def asks_for_power(payload: bytes, seq: int) -> bool:
    try:
        return decode_status(seq, payload).status.cp_state in (CpState.C, CpState.D)
    except (FrameError, ValueError):
        return False


noise = st.binary(max_size=600)
STATUS_BYTES = len(status_payload(PilotStatus(CpState.B)))
frames_with_random_payloads = st.tuples(
    st.sampled_from([int(MsgType.STATUS)] * 3 + [int(MsgType.CONTROL)]) | st.integers(0, 255),
    st.integers(0, 255),
    st.binary(max_size=80) | st.binary(min_size=STATUS_BYTES, max_size=STATUS_BYTES),
)


@UNIT
@given(chunks=st.lists(noise, max_size=8))
def test_the_decoder_never_raises_on_random_bytes(chunks: list[bytes]) -> None:
    decoder = FrameDecoder(MsgType.STATUS)
    for chunk in chunks:
        for message in decoder.feed(chunk):
            assert isinstance(message, StatusMessage)


@UNIT
@given(frame=frames_with_random_payloads)
def test_a_well_formed_frame_with_any_payload_is_decoded_or_dropped(
    frame: tuple[int, int, bytes],
) -> None:
    msg_type, seq, payload = frame
    decoder = FrameDecoder(MsgType.STATUS)
    messages = decoder.feed(b"\x00" + encode_frame(msg_type, seq, payload))
    assert all(isinstance(m, StatusMessage) for m in messages)
    if msg_type != MsgType.STATUS:
        assert not messages


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    with running(tmp_path, charging={"free_mode": True, "c_debounce_s": 0.0}) as rig:
        mcu = rig.call_soon(lambda: rig.world().connector(1).mcu)
        rig.call_soon(lambda: mcu.plug(32))
        rig.wait(
            lambda: rig.connector().state.tx_active and rig.connector().state.pilot.value == "pwm",
            10,
            "a paused free-mode session",
        )
        rig.mcu = mcu  # type: ignore[attr-defined]
        pilot = rig.call_soon(lambda: rig.daemon.charger.hardware.connectors[1].pilot)
        before = rig.call_soon(lambda: pilot.stats.frames_ok)
        yield rig
        assert not [e for e in rig.coil_edges if e[1]], "the contactor closed"
        stats = rig.call_soon(lambda: pilot.stats)
        assert stats.frames_ok > before  # the real frames kept coming through
        print("host-side link counters:", stats)


def inject(rig: Rig, data: bytes) -> None:
    """Write ``data`` between the simulated MCU's frames; return once the daemon has read it
    and two more real frames (the first may be swallowed by undelimited garbage)."""
    mcu = rig.mcu  # type: ignore[attr-defined]
    pilot = rig.call_soon(lambda: rig.daemon.charger.hardware.connectors[1].pilot)
    seen = rig.call_soon(lambda: pilot.stats.frames_ok)
    rig.call_soon(lambda: mcu.write_raw(data))
    rig.wait(lambda: pilot.stats.frames_ok >= seen + 2, 5, "real frames after the injection")


def link_up_again(rig: Rig) -> None:
    rig.alive()
    rig.wait(lambda: rig.connector().pilot_link_ok, 5, "the MCU link up")


@FUZZ
@given(data=noise)
def test_random_bytes_on_the_line_never_close_the_contactor(rig: Rig, data: bytes) -> None:
    inject(rig, data)
    link_up_again(rig)


@FUZZ
@given(seed=st.integers(0, 2**32 - 1), flips=st.integers(1, 6))
def test_corrupted_frames_of_a_car_asking_for_power_are_dropped(
    rig: Rig, seed: int, flips: int
) -> None:
    mcu = rig.mcu  # type: ignore[attr-defined]
    real = rig.call_soon(lambda: mcu.status)
    frame = encode_status(
        PilotStatus(**{**_fields(real), "cp_state": CpState.C}),
        ((mcu.last_sent_seq or 0) + 1) & 0xFF,
    )
    inject(rig, flipped(frame, random.Random(seed), flips))
    link_up_again(rig)


@FUZZ
@given(frame=frames_with_random_payloads)
def test_well_formed_frames_with_random_payloads_never_close_the_contactor(
    rig: Rig, frame: tuple[int, int, bytes]
) -> None:
    msg_type, seq, payload = frame
    assume(not (msg_type == MsgType.STATUS and asks_for_power(payload, seq)))
    inject(rig, encode_frame(msg_type, seq, payload))
    link_up_again(rig)


def _fields(status: PilotStatus) -> dict[str, object]:
    return {name: getattr(status, name) for name in PilotStatus.__dataclass_fields__}
