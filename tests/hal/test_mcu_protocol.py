"""Codec and receiver rules of the host <-> MCU link (docs/mcu-protocol.md §2-§4)."""

from __future__ import annotations

import dataclasses
import logging
import re
import struct
import zlib
from pathlib import Path

import pytest
from cobs import cobs

from hal.iec61851 import current_to_duty
from hal.mcu_protocol import (
    MAX_ENCODED,
    ControlMessage,
    DropKind,
    DropReporter,
    FrameDecoder,
    LinkStats,
    MsgType,
    StatusMessage,
    control_payload,
    decode_frame,
    encode_control,
    encode_frame,
    encode_status,
    seq_is_newer,
    status_payload,
)
from hal.types import DUTY_OFF, DUTY_STATE_F, CpState, McuFault, PilotControl, PilotStatus

SPEC = Path(__file__).resolve().parents[2] / "docs" / "mcu-protocol.md"

STATUS_C = PilotStatus(
    cp_state=CpState.C,
    duty=2667,
    cp_high_mv=6012,
    cp_low_mv=-11987,
    pp_max_current_a=32,
    relay_closed=True,
    faults=McuFault.NONE,
    firmware_version="cp-mcu 2.4.1",
    reset_reason=2,
)


def _bad_crc_frame(seq: int) -> bytes:
    body = bytes([MsgType.STATUS, seq]) + status_payload(STATUS_C)
    crc = zlib.crc32(body) ^ 0x1
    return b"\x00" + bytes(cobs.encode(body + struct.pack("<I", crc))) + b"\x00"


@pytest.mark.parametrize(
    "control",
    [
        PilotControl(),
        PilotControl(duty=DUTY_STATE_F),
        PilotControl(duty=1667, allow_power=True),
        PilotControl(duty=5000, allow_power=True, lock=True, ack_faults=True),
        PilotControl(duty=DUTY_OFF, lock=True),
        PilotControl(duty=DUTY_OFF, lock_retry=True),
    ],
)
def test_control_round_trip(control: PilotControl) -> None:
    decoder = FrameDecoder(MsgType.CONTROL)
    assert decoder.feed(encode_control(control, 7)) == [ControlMessage(7, control)]


@pytest.mark.parametrize(
    ("status", "diode_ok"),
    [
        (PilotStatus(CpState.A), True),
        (STATUS_C, True),
        (STATUS_C, False),
        (
            PilotStatus(
                CpState.F,
                duty=0,
                cp_high_mv=-12000,
                cp_low_mv=-12000,
                rcd_tripped=True,
                faults=McuFault.HOST_TIMEOUT | McuFault.RCD | McuFault.INTERNAL,
                firmware_version="x" * 32,
                reset_reason=255,
            ),
            True,
        ),
    ],
)
def test_status_round_trip(status: PilotStatus, diode_ok: bool) -> None:
    decoder = FrameDecoder(MsgType.STATUS)
    frame = encode_status(status, 200, diode_ok=diode_ok)
    assert decoder.feed(frame) == [StatusMessage(200, status, diode_ok)]


@pytest.mark.parametrize(
    "status",
    [
        PilotStatus(CpState.C, duty=1600, diode_ok=False),
        PilotStatus(CpState.F, duty=0, cp_high_mv=-12000, mcu_driving_f=True),
        PilotStatus(CpState.B, locked=True, faults=McuFault.LOCK),
        PilotStatus(
            CpState.F,
            duty=0,
            faults=McuFault.HOST_TIMEOUT,
            diode_ok=False,
            mcu_driving_f=True,
        ),
    ],
)
def test_status_round_trip_carries_diode_ok_and_driving_f_in_pilot_status(
    status: PilotStatus,
) -> None:
    [message] = FrameDecoder(MsgType.STATUS).feed(encode_status(status, 3))
    assert isinstance(message, StatusMessage)
    assert message.status == status
    assert message.diode_ok is status.diode_ok


def test_status_flag_bits() -> None:
    def flags(status: PilotStatus) -> int:
        return status_payload(status)[8]

    assert flags(PilotStatus(CpState.A)) == 0b0100  # diode_ok defaults to 1 (no PWM)
    assert flags(PilotStatus(CpState.A, diode_ok=False)) == 0b0000
    assert flags(PilotStatus(CpState.F, duty=0, mcu_driving_f=True)) == 0b1100
    assert flags(PilotStatus(CpState.B, rcd_tripped=True, relay_closed=True)) == 0b0111
    assert flags(PilotStatus(CpState.B, locked=True)) == 0b10100


def test_control_flag_bits() -> None:
    def flags(control: PilotControl) -> int:
        return control_payload(control)[2]

    assert flags(PilotControl(allow_power=True, lock=True, ack_faults=True)) == 0b0111
    assert flags(PilotControl(lock_retry=True)) == 0b1000


def test_status_message_keeps_its_diode_ok_argument() -> None:
    """``StatusMessage(seq, status, diode_ok)`` and ``encode_status(diode_ok=)`` still work."""
    explicit = StatusMessage(1, PilotStatus(CpState.C), False)
    assert explicit.diode_ok is False and explicit.status.diode_ok is False
    assert explicit == StatusMessage(1, PilotStatus(CpState.C, diode_ok=False))
    assert StatusMessage(1, PilotStatus(CpState.C, diode_ok=False)).diode_ok is False
    assert StatusMessage(1, PilotStatus(CpState.C)).diode_ok is True
    overridden = encode_status(PilotStatus(CpState.C, diode_ok=False), 1, diode_ok=True)
    assert overridden == encode_status(PilotStatus(CpState.C), 1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        explicit.seq = 2  # type: ignore[misc]


def test_worked_examples_match_the_spec() -> None:
    """docs/mcu-protocol.md §8: the hex printed there is what the codec produces."""
    spec = SPEC.read_text(encoding="utf-8")
    section = spec[spec.index("## 8. Worked examples") :]
    wire = [bytes.fromhex(h) for h in re.findall(r"^on wire : ([0-9a-f ]+)$", section, re.M)]
    decoded = [bytes.fromhex(h) for h in re.findall(r"^decoded : ([0-9a-f ]+)$", section, re.M)]
    assert len(wire) == len(decoded) == 2

    control = PilotControl(duty=current_to_duty(16.0), allow_power=True)
    assert control.duty == 2666
    status = PilotStatus(
        CpState.C,
        duty=2666,
        cp_high_mv=5980,
        cp_low_mv=-11950,
        pp_max_current_a=32,
        relay_closed=True,
        diode_ok=True,
        faults=McuFault.NONE,
        firmware_version="1.2.0",
        reset_reason=1,
    )
    assert encode_control(control, 5) == wire[0]
    assert encode_status(status, 0x2A) == wire[1]
    assert [cobs.decode(w[1:-1]) for w in wire] == decoded
    assert FrameDecoder(MsgType.CONTROL).feed(wire[0]) == [ControlMessage(5, control)]
    assert FrameDecoder(MsgType.STATUS).feed(wire[1]) == [StatusMessage(0x2A, status)]


def test_link_stats_snapshot_as_dict() -> None:
    decoder = FrameDecoder(MsgType.STATUS)
    decoder.feed(encode_status(STATUS_C, 1) + _bad_crc_frame(2) + encode_status(STATUS_C, 1))
    snapshot = decoder.stats
    assert snapshot.as_dict() == {
        "frames_ok": 1,
        "bad_cobs": 0,
        "short": 0,
        "bad_crc": 1,
        "unknown_type": 0,
        "bad_length": 0,
        "bad_value": 0,
        "out_of_order": 1,
    }
    assert list(snapshot.as_dict())[1:] == [kind.value for kind in DropKind]
    assert LinkStats(**snapshot.as_dict()) == snapshot
    with pytest.raises(dataclasses.FrozenInstanceError):
        snapshot.frames_ok = 0  # type: ignore[misc]
    decoder.feed(encode_status(STATUS_C, 2))
    assert snapshot.frames_ok == 1 and decoder.stats.frames_ok == 2  # a snapshot, not a view


def test_frame_layout_is_cobs_of_type_seq_payload_crc_le() -> None:
    frame = encode_control(PilotControl(duty=1000, allow_power=True, lock=True), 0x42)
    assert frame[0] == 0 and frame[-1] == 0 and 0 not in frame[1:-1]
    raw = cobs.decode(frame[1:-1])
    assert raw[:5] == bytes([0x01, 0x42, 0xE8, 0x03, 0x03])
    assert raw[5:] == struct.pack("<I", zlib.crc32(raw[:5]))
    assert decode_frame(frame[1:-1]).payload == control_payload(
        PilotControl(duty=1000, allow_power=True, lock=True)
    )


def test_status_layout_offsets() -> None:
    payload = status_payload(STATUS_C)
    assert payload[0:1] == b"C"
    assert struct.unpack_from("<Hhh", payload, 1) == (2667, 6012, -11987)
    assert list(payload[7:12]) == [32, 0b110, 0, 2, 12]
    assert payload[12:] == b"cp-mcu 2.4.1"


@pytest.mark.parametrize(
    ("seq", "last", "newer"),
    [(1, 0, True), (0, 255, True), (127, 0, True), (128, 0, False), (0, 0, False), (5, 6, False)],
)
def test_sequence_window(seq: int, last: int, newer: bool) -> None:
    assert seq_is_newer(seq, last) is newer


def test_encoder_rejects_values_that_do_not_fit() -> None:
    with pytest.raises(ValueError, match="duty"):
        encode_control(PilotControl(duty=10001), 0)
    with pytest.raises(ValueError, match="firmware"):
        encode_status(PilotStatus(CpState.A, firmware_version="v" * 33), 0)
    with pytest.raises(ValueError, match="fit"):
        encode_status(PilotStatus(CpState.A, cp_high_mv=40000), 0)


def test_decoder_handles_split_and_joined_chunks() -> None:
    frames = [encode_status(STATUS_C, seq) for seq in range(250, 256)]
    frames += [encode_status(STATUS_C, seq) for seq in range(3)]  # wraps 255 -> 0
    stream = b"".join(frames)
    decoder = FrameDecoder(MsgType.STATUS)
    messages = [m for i in range(len(stream)) for m in decoder.feed(stream[i : i + 1])]
    assert [m.seq for m in messages] == [250, 251, 252, 253, 254, 255, 0, 1, 2]
    assert decoder.stats == LinkStats(frames_ok=9)
    joined = FrameDecoder(MsgType.STATUS)
    assert len(joined.feed(stream)) == 9


def test_decoder_discards_a_partial_frame_at_start_and_garbage_between_frames() -> None:
    first, second = encode_status(STATUS_C, 1), encode_status(STATUS_C, 2)
    decoder = FrameDecoder(MsgType.STATUS)
    messages = decoder.feed(first[5:] + second + b"\x13\x37noise\xff" + encode_status(STATUS_C, 3))
    assert [m.seq for m in messages] == [2, 3]
    assert decoder.stats.frames_ok == 2
    assert decoder.stats.dropped == 1  # the noise between two delimiters


@pytest.mark.parametrize(
    ("wire", "kind"),
    [
        (_bad_crc_frame(9), DropKind.BAD_CRC),
        (b"\x00" + cobs.encode(b"\x81\x09\x01\x02") + b"\x00", DropKind.SHORT),
        (b"\x00\x05\x81\x09\x00", DropKind.BAD_COBS),  # code byte points past the end
        (encode_frame(0x7E, 9, status_payload(STATUS_C)), DropKind.UNKNOWN_TYPE),
        (encode_control(PilotControl(), 9), DropKind.UNKNOWN_TYPE),  # wrong direction
        (encode_frame(MsgType.STATUS, 9, status_payload(STATUS_C)[:-1]), DropKind.BAD_LENGTH),
        (
            encode_frame(MsgType.STATUS, 9, b"Z" + status_payload(STATUS_C)[1:]),
            DropKind.BAD_VALUE,
        ),
        (
            encode_frame(MsgType.STATUS, 9, b"C\x11\x27" + status_payload(STATUS_C)[3:]),
            DropKind.BAD_VALUE,
        ),
        (encode_status(STATUS_C, 8), DropKind.OUT_OF_ORDER),  # duplicate
        (encode_status(STATUS_C, 200), DropKind.OUT_OF_ORDER),  # 136 behind
    ],
)
def test_invalid_frames_are_dropped_counted_and_do_not_advance_seq(
    wire: bytes, kind: DropKind
) -> None:
    drops: list[DropKind] = []
    decoder = FrameDecoder(MsgType.STATUS, drops.append)
    assert len(decoder.feed(encode_status(PilotStatus(CpState.B), 8))) == 1
    assert decoder.feed(wire) == []
    assert drops == [kind]
    assert getattr(decoder.stats, kind.value) == 1 and decoder.stats.dropped == 1
    assert [m.seq for m in decoder.feed(encode_status(PilotStatus(CpState.B), 9))] == [9]


def test_resync_accepts_any_sequence_number_after_a_link_timeout() -> None:
    decoder = FrameDecoder(MsgType.STATUS)
    decoder.feed(encode_status(STATUS_C, 100))
    assert decoder.feed(encode_status(STATUS_C, 0)) == []
    decoder.resync()
    assert [m.seq for m in decoder.feed(encode_status(STATUS_C, 0))] == [0]


def test_endless_garbage_is_bounded_and_counted_once() -> None:
    decoder = FrameDecoder(MsgType.STATUS)
    decoder.feed(b"\x00")
    decoder.feed(b"\x55" * (MAX_ENCODED * 4))
    assert decoder.stats.bad_cobs == 1
    assert [m.seq for m in decoder.feed(encode_status(STATUS_C, 1))] == [1]


def test_drop_reporter_logs_at_most_once_per_second_per_kind_with_counts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    report = DropReporter(logging.getLogger("test.link"), "MCU", clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="test.link"):
        for _ in range(5):
            report(DropKind.BAD_CRC)
            now[0] += 0.1
        report(DropKind.SHORT)
        now[0] = 1.05
        report(DropKind.BAD_CRC)
    assert [r.getMessage() for r in caplog.records] == [
        "dropped 1 frame(s) from MCU: bad_crc",
        "dropped 1 frame(s) from MCU: short",
        "dropped 5 frame(s) from MCU: bad_crc",
    ]
