"""Hostile Modbus replies: a meter that answers with anything at all.

The real driver (``hal.modbus_meter.ModbusMeter`` with the SDM630 map, pymodbus over TCP on
127.0.0.1) reads a server that answers each request with what hypothesis picks: random bytes,
a well-formed reply carrying random registers (NaN, infinities, absurd values, energy going
backwards), a reply with the wrong length, byte count, function code or transaction id, a
Modbus exception, silence, or a closed connection. Every read either returns a reading whose
values are all finite and within the driver's plausibility ranges, with the energy register
never going backwards, or raises ``MeterError`` (which the charger turns into
PowerMeterFailure and a safe stop) within the driver's deadline; nothing else escapes.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import struct
import time
from typing import Any

from conftest import EXAMPLES
from hypothesis import given, settings
from hypothesis import strategies as st

from hal.errors import MeterError
from hal.meter_maps import MAPS
from hal.modbus_meter import ModbusMeter

TIMEOUT_S = 0.1
REPLIES = ("random", "registers", "count", "function", "tid", "exception", "silence", "close")

reply_plan = st.lists(
    st.tuples(st.sampled_from(REPLIES), st.binary(max_size=300), st.integers(0, 255)),
    min_size=1,
    max_size=6,
)


class HostileMeter:
    """A Modbus TCP server that answers request ``n`` as ``plan[n % len(plan)]`` says."""

    def __init__(self, plan: list[tuple[str, bytes, int]]) -> None:
        self.plan = plan
        self.requests = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.server.wait_closed(), 1)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                header = await reader.readexactly(7)
                tid, _pid, length, unit = struct.unpack(">HHHB", header)
                pdu = await reader.readexactly(length - 1)
                kind, blob, number = self.plan[self.requests % len(self.plan)]
                self.requests += 1
                answer = self._answer(kind, blob, number, tid, unit, pdu)
                if answer is None:
                    if kind == "close":
                        return
                    continue
                writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.transport.abort()

    @staticmethod
    def _answer(
        kind: str, blob: bytes, number: int, tid: int, unit: int, pdu: bytes
    ) -> bytes | None:
        function = pdu[0]
        count = struct.unpack(">H", pdu[3:5])[0] if len(pdu) >= 5 else 1
        words = (blob * (2 * count // max(1, len(blob)) + 1))[: 2 * count] if blob else b""
        words = words.ljust(2 * count, b"\x7f")

        def mbap(body: bytes, t: int = tid) -> bytes:
            return struct.pack(">HHHB", t, 0, len(body) + 1, unit) + body

        if kind == "random":
            return blob
        if kind == "registers":
            return mbap(bytes([function, 2 * count]) + words)
        if kind == "count":
            short = words[: max(0, 2 * count - 2 - number % 8)]
            return mbap(bytes([function, number]) + short)
        if kind == "function":
            return mbap(bytes([number | 1, 2 * count]) + words)
        if kind == "tid":
            return mbap(bytes([function, 2 * count]) + words, (tid + 1 + number) & 0xFFFF)
        if kind == "exception":
            return mbap(bytes([function | 0x80, number]))
        return None  # silence, close


def check_reading(reading: Any, last_wh: float | None) -> None:
    for name in ("energy_import_wh", "power_w", "frequency_hz"):
        assert math.isfinite(getattr(reading, name)), name
    for name in ("current_a", "voltage_v"):
        assert all(math.isfinite(v) for v in getattr(reading, name)), name
    if last_wh is not None:
        assert reading.energy_import_wh >= last_wh


async def _read_all(plan: list[tuple[str, bytes, int]]) -> None:
    server = HostileMeter(plan)
    port = await server.start()
    meter = ModbusMeter(
        MAPS["sdm630"], transport="tcp", host="127.0.0.1", port=port, timeout=TIMEOUT_S, retries=0
    )
    last_wh = None
    try:
        await meter.start()
        for _ in range(len(plan) + 2):
            started = time.monotonic()
            try:
                reading = await meter.read()
            except MeterError:
                pass
            else:
                check_reading(reading, last_wh)
                last_wh = reading.energy_import_wh
            took = time.monotonic() - started
            assert took < meter._deadline_s + 0.5, f"a read took {took:.2f} s"
    finally:
        await meter.stop()
        await server.stop()


@settings(max_examples=max(1, EXAMPLES // 2), deadline=None)  # silent replies cost a timeout
@given(plan=reply_plan)
def test_hostile_replies_give_a_sane_reading_or_a_meter_error(
    plan: list[tuple[str, bytes, int]],
) -> None:
    asyncio.run(_read_all(plan))
