"""Host <-> CP-MCU link codec: frames, message layouts, receiver rules (docs/mcu-protocol.md).

Pure: no device I/O; the only clock is :class:`DropReporter`'s, and it is injectable. Drivers
feed received bytes to a :class:`FrameDecoder` and write what :func:`encode_control` /
:func:`encode_status` return.
"""

from __future__ import annotations

import enum
import logging
import math
import struct
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, fields, replace

from cobs import cobs

from hal.errors import HalTransientError
from hal.types import DUTY_OFF, CpState, McuFault, PilotControl, PilotStatus

DELIMITER = 0x00
_HEADER = struct.Struct("<BB")  # type, seq (spec §2)
_CRC = struct.Struct("<I")  # zlib.crc32 over type|seq|payload (spec §2)
MIN_FRAME = _HEADER.size + _CRC.size
MAX_FIRMWARE_VERSION = 32  # spec §3.2
SEQ_WINDOW = 127  # accept seq if (seq - last) mod 256 is in 1..SEQ_WINDOW (spec §4)

# spec §3.1 CONTROL payload: duty (u16, 0.01 %), flags (u8)
CONTROL_LAYOUT = struct.Struct("<HB")
# spec §3.2 STATUS fixed part: cp_state (ASCII), duty (u16), cp_high_mv (i16), cp_low_mv (i16),
# pp_max_current_a (u8), flags (u8), faults (u8), reset_reason (u8), fw_len (u8); fw follows.
STATUS_LAYOUT = struct.Struct("<cHhhBBBBB")
MAX_DECODED = MIN_FRAME + STATUS_LAYOUT.size + MAX_FIRMWARE_VERSION
MAX_ENCODED = MAX_DECODED + MAX_DECODED // 254 + 1  # COBS adds one byte per 254 (and one)


class MsgType(enum.IntEnum):
    """Frame type byte (spec §3). The high bit marks the MCU -> host direction."""

    CONTROL = 0x01  # host -> MCU
    STATUS = 0x81  # MCU -> host


class ControlFlags(enum.IntFlag):
    """CONTROL ``flags`` byte (spec §3.1). Receivers ignore reserved bits."""

    ALLOW_POWER = 0x01
    LOCK = 0x02
    ACK_FAULTS = 0x04
    LOCK_RETRY = 0x08  # a new lock attempt after a failed one (spec §6.5)


class StatusFlags(enum.IntFlag):
    """STATUS ``flags`` byte (spec §3.2). Receivers ignore reserved bits."""

    RCD_TRIPPED = 0x01
    RELAY_CLOSED = 0x02
    DIODE_OK = 0x04
    DRIVING_F = 0x08  # the MCU forces state F itself (spec §6.4)
    LOCKED = 0x10  # lock position feedback: locked (spec §6.5)


class DropKind(enum.StrEnum):
    """Why a received frame was dropped (spec §4). Values are :class:`LinkStats` field names."""

    BAD_COBS = "bad_cobs"
    SHORT = "short"
    BAD_CRC = "bad_crc"
    UNKNOWN_TYPE = "unknown_type"
    BAD_LENGTH = "bad_length"
    BAD_VALUE = "bad_value"
    OUT_OF_ORDER = "out_of_order"


@dataclass(frozen=True, slots=True)
class LinkStats:
    """Receive counters of one direction of the link (spec §4)."""

    frames_ok: int = 0
    bad_cobs: int = 0  # not valid COBS, or longer than MAX_ENCODED without a delimiter
    short: int = 0  # fewer than MIN_FRAME bytes after COBS decoding
    bad_crc: int = 0
    unknown_type: int = 0  # unknown type byte, or a type not sent in this direction
    bad_length: int = 0  # payload length does not match the type's layout
    bad_value: int = 0  # a field outside its range (duty > 10000, unknown CP state, non-ASCII)
    out_of_order: int = 0  # duplicate or old sequence number

    @property
    def dropped(self) -> int:
        """Total number of frames dropped, whatever the reason."""
        return sum(getattr(self, kind.value) for kind in DropKind)

    def as_dict(self) -> dict[str, int]:
        """``frames_ok`` then every drop counter, by field name (``LinkStats(**d)`` rebuilds)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


class FrameError(HalTransientError):
    """A received frame violates the spec; ``kind`` says which receiver rule (spec §4)."""

    def __init__(self, kind: DropKind, detail: str) -> None:
        super().__init__(f"{kind.value}: {detail}")
        self.kind = kind


@dataclass(frozen=True, slots=True)
class Frame:
    """A COBS-decoded frame whose CRC matched; the payload is not interpreted yet."""

    msg_type: int
    seq: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class ControlMessage:
    """A valid CONTROL frame (spec §3.1)."""

    seq: int
    control: PilotControl


@dataclass(frozen=True, slots=True, init=False)
class StatusMessage:
    """A valid STATUS frame (spec §3.2)."""

    seq: int
    status: PilotStatus

    def __init__(self, seq: int, status: PilotStatus, diode_ok: bool | None = None) -> None:
        # ``diode_ok`` predates PilotStatus.diode_ok; when given, it overrides the status's.
        if diode_ok is not None and diode_ok != status.diode_ok:
            status = replace(status, diode_ok=diode_ok)
        object.__setattr__(self, "seq", seq)
        object.__setattr__(self, "status", status)

    @property
    def diode_ok(self) -> bool:
        """The live diode check behind McuFault.DIODE (``status.diode_ok``)."""
        return self.status.diode_ok


Message = ControlMessage | StatusMessage


def seq_is_newer(seq: int, last: int) -> bool:
    """Spec §4: ``seq`` follows ``last`` if (seq - last) mod 256 is in 1..SEQ_WINDOW."""
    return 1 <= (seq - last) % 256 <= SEQ_WINDOW


def encode_frame(msg_type: int, seq: int, payload: bytes) -> bytes:
    """Spec §2: ``00 | COBS(type | seq | payload | crc32 LE) | 00``, ready for the wire.

    The leading delimiter lets the receiver resynchronise right after line noise.
    """
    body = _HEADER.pack(msg_type & 0xFF, seq & 0xFF) + payload
    encoded: bytes = cobs.encode(body + _CRC.pack(zlib.crc32(body)))
    return b"\x00" + encoded + b"\x00"


def decode_frame(encoded: bytes) -> Frame:
    """Undo :func:`encode_frame` for the bytes between two delimiters (spec §2, §4)."""
    if len(encoded) > MAX_ENCODED:
        raise FrameError(DropKind.BAD_COBS, f"{len(encoded)} bytes without a delimiter")
    try:
        raw: bytes = cobs.decode(encoded)
    except cobs.DecodeError as exc:
        raise FrameError(DropKind.BAD_COBS, str(exc)) from exc
    if len(raw) < MIN_FRAME:
        raise FrameError(DropKind.SHORT, f"{len(raw)} bytes")
    body, (crc,) = raw[: -_CRC.size], _CRC.unpack(raw[-_CRC.size :])
    if zlib.crc32(body) != crc:
        raise FrameError(DropKind.BAD_CRC, f"type 0x{body[0]:02x} seq {body[1]}")
    msg_type, seq = _HEADER.unpack(body[: _HEADER.size])
    return Frame(msg_type, seq, body[_HEADER.size :])


def _check_duty(duty: int) -> None:
    if not 0 <= duty <= DUTY_OFF:
        raise ValueError(f"duty {duty} outside 0..{DUTY_OFF} (0.01 % units)")


def control_payload(control: PilotControl) -> bytes:
    """Spec §3.1: the CONTROL payload for ``control``."""
    _check_duty(control.duty)
    flags = ControlFlags(0)
    if control.allow_power:
        flags |= ControlFlags.ALLOW_POWER
    if control.lock:
        flags |= ControlFlags.LOCK
    if control.ack_faults:
        flags |= ControlFlags.ACK_FAULTS
    if control.lock_retry:
        flags |= ControlFlags.LOCK_RETRY
    return CONTROL_LAYOUT.pack(control.duty, flags)


def status_payload(status: PilotStatus, *, diode_ok: bool | None = None) -> bytes:
    """Spec §3.2: the STATUS payload for ``status``; raises ValueError if a field cannot fit.

    ``diode_ok``, when given, overrides ``status.diode_ok``.
    """
    _check_duty(status.duty)
    firmware = status.firmware_version.encode("ascii")
    if len(firmware) > MAX_FIRMWARE_VERSION:
        raise ValueError(f"firmware version longer than {MAX_FIRMWARE_VERSION} bytes")
    flags = StatusFlags(0)
    if status.rcd_tripped:
        flags |= StatusFlags.RCD_TRIPPED
    if status.relay_closed:
        flags |= StatusFlags.RELAY_CLOSED
    if status.diode_ok if diode_ok is None else diode_ok:
        flags |= StatusFlags.DIODE_OK
    if status.mcu_driving_f:
        flags |= StatusFlags.DRIVING_F
    if status.locked:
        flags |= StatusFlags.LOCKED
    try:
        fixed = STATUS_LAYOUT.pack(
            status.cp_state.value.encode("ascii"),
            status.duty,
            status.cp_high_mv,
            status.cp_low_mv,
            status.pp_max_current_a,
            flags,
            int(status.faults),
            status.reset_reason,
            len(firmware),
        )
    except struct.error as exc:
        raise ValueError(f"status does not fit the wire layout: {exc}") from exc
    return fixed + firmware


def encode_control(control: PilotControl, seq: int) -> bytes:
    """A complete CONTROL frame (spec §3.1) with sequence number ``seq``."""
    return encode_frame(MsgType.CONTROL, seq, control_payload(control))


def encode_status(status: PilotStatus, seq: int, *, diode_ok: bool | None = None) -> bytes:
    """A complete STATUS frame (spec §3.2) with sequence number ``seq``."""
    return encode_frame(MsgType.STATUS, seq, status_payload(status, diode_ok=diode_ok))


def decode_control(seq: int, payload: bytes) -> ControlMessage:
    """Spec §3.1: a CONTROL payload back into a :class:`PilotControl`."""
    if len(payload) != CONTROL_LAYOUT.size:
        raise FrameError(DropKind.BAD_LENGTH, f"control payload of {len(payload)} bytes")
    duty, raw_flags = CONTROL_LAYOUT.unpack(payload)
    if duty > DUTY_OFF:
        raise FrameError(DropKind.BAD_VALUE, f"duty {duty}")
    flags = ControlFlags(raw_flags)  # reserved bits are ignored
    control = PilotControl(
        duty=duty,
        allow_power=ControlFlags.ALLOW_POWER in flags,
        lock=ControlFlags.LOCK in flags,
        ack_faults=ControlFlags.ACK_FAULTS in flags,
        lock_retry=ControlFlags.LOCK_RETRY in flags,
    )
    return ControlMessage(seq, control)


def decode_status(seq: int, payload: bytes) -> StatusMessage:
    """Spec §3.2: a STATUS payload back into a :class:`PilotStatus`."""
    if len(payload) < STATUS_LAYOUT.size:
        raise FrameError(DropKind.BAD_LENGTH, f"status payload of {len(payload)} bytes")
    (cp, duty, high, low, pp, raw_flags, faults, reset_reason, fw_len) = STATUS_LAYOUT.unpack(
        payload[: STATUS_LAYOUT.size]
    )
    if fw_len > MAX_FIRMWARE_VERSION or len(payload) != STATUS_LAYOUT.size + fw_len:
        raise FrameError(DropKind.BAD_LENGTH, f"status payload of {len(payload)} bytes")
    try:
        cp_state = CpState(cp.decode("ascii"))
        firmware = payload[STATUS_LAYOUT.size :].decode("ascii")
    except (UnicodeDecodeError, ValueError) as exc:
        raise FrameError(DropKind.BAD_VALUE, f"status field: {exc}") from exc
    if duty > DUTY_OFF:
        raise FrameError(DropKind.BAD_VALUE, f"duty {duty}")
    flags = StatusFlags(raw_flags)  # reserved bits are ignored
    status = PilotStatus(
        cp_state=cp_state,
        duty=duty,
        cp_high_mv=high,
        cp_low_mv=low,
        pp_max_current_a=pp,
        rcd_tripped=StatusFlags.RCD_TRIPPED in flags,
        relay_closed=StatusFlags.RELAY_CLOSED in flags,
        faults=McuFault(faults),
        firmware_version=firmware,
        reset_reason=reset_reason,
        diode_ok=StatusFlags.DIODE_OK in flags,
        mcu_driving_f=StatusFlags.DRIVING_F in flags,
        locked=StatusFlags.LOCKED in flags,
    )
    return StatusMessage(seq, status)


_DECODERS: dict[MsgType, Callable[[int, bytes], Message]] = {
    MsgType.CONTROL: decode_control,
    MsgType.STATUS: decode_status,
}


def decode_message(frame: Frame, accept: MsgType) -> Message:
    """Interpret ``frame``; only ``accept`` is valid in the receiving direction (spec §4)."""
    if frame.msg_type != accept:
        raise FrameError(DropKind.UNKNOWN_TYPE, f"type 0x{frame.msg_type:02x}")
    return _DECODERS[accept](frame.seq, frame.payload)


class FrameDecoder:
    """Turns arbitrary received chunks into valid messages, applying the spec §4 rules.

    Bytes up to the first delimiter after :meth:`reset` are discarded (the stream may start
    mid-frame). Every dropped frame is counted in :attr:`stats` and reported to ``on_drop``.
    """

    def __init__(self, accept: MsgType, on_drop: Callable[[DropKind], None] | None = None) -> None:
        self._accept = accept
        self._on_drop = on_drop
        self._buffer = bytearray()
        self._synced = False
        self._last_seq: int | None = None
        self._stats = LinkStats()

    @property
    def stats(self) -> LinkStats:
        """Counters since construction (kept across :meth:`reset`)."""
        return self._stats

    def reset(self) -> None:
        """Start over on a new connection: hunt for a delimiter, accept any next sequence."""
        self._buffer.clear()
        self._synced = False
        self._last_seq = None

    def resync(self) -> None:
        """Spec §4: after the link timeout the next valid frame is accepted whatever its seq."""
        self._last_seq = None

    def feed(self, data: bytes) -> list[Message]:
        """Consume ``data``; return the valid messages it completed, in order."""
        messages: list[Message] = []
        start = 0
        while (end := data.find(DELIMITER, start)) >= 0:
            piece = data[start:end]
            start = end + 1
            if not self._synced:
                self._synced = True
                self._buffer.clear()
                continue
            if self._buffer:
                self._buffer += piece
                piece = bytes(self._buffer)
                self._buffer.clear()
            if piece:
                message = self._decode(piece)
                if message is not None:
                    messages.append(message)
        if self._synced and start < len(data):
            self._buffer += data[start:]
            if len(self._buffer) > MAX_ENCODED:
                # Endless garbage: drop it and hunt for the next delimiter.
                self._buffer.clear()
                self._synced = False
                self._drop(DropKind.BAD_COBS)
        return messages

    def _decode(self, encoded: bytes) -> Message | None:
        try:
            message = decode_message(decode_frame(encoded), self._accept)
        except FrameError as exc:
            self._drop(exc.kind)
            return None
        if self._last_seq is not None and not seq_is_newer(message.seq, self._last_seq):
            self._drop(DropKind.OUT_OF_ORDER)
            return None
        self._last_seq = message.seq
        self._stats = replace(self._stats, frames_ok=self._stats.frames_ok + 1)
        return message

    def _drop(self, kind: DropKind) -> None:
        count: int = getattr(self._stats, kind.value)
        self._stats = replace(self._stats, **{kind.value: count + 1})
        if self._on_drop is not None:
            self._on_drop(kind)


class DropReporter:
    """Rate-limited warnings about dropped frames: at most one line per kind per ``interval``.

    Each line carries the number of drops of that kind since the previous line, so nothing is
    hidden, only aggregated (spec §4 "log at a sane rate").
    """

    def __init__(
        self,
        logger: logging.Logger,
        peer: str,
        *,
        interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._peer = peer
        self._interval = interval
        self._clock = clock
        self._pending: dict[DropKind, int] = {}
        self._last_logged: dict[DropKind, float] = {}

    def __call__(self, kind: DropKind) -> None:
        pending = self._pending.get(kind, 0) + 1
        now = self._clock()
        if now - self._last_logged.get(kind, -math.inf) < self._interval:
            self._pending[kind] = pending
            return
        self._pending[kind] = 0
        self._last_logged[kind] = now
        self._logger.warning("dropped %d frame(s) from %s: %s", pending, self._peer, kind.value)
