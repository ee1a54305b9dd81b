"""Energy meter on Modbus TCP or RTU, driven by a :class:`~hal.meter_maps.RegisterMap`.

The driver reads every value of the map in a few block requests, decodes them with
:func:`hal.meter_maps.decode` and refuses readings that cannot be true (NaN, out of range,
an energy counter running backwards): a wrong energy value would end up on an invoice, so
:class:`hal.errors.MeterError` is better than a guess. It reconnects on its own; the caller
only has to keep calling :meth:`ModbusMeter.read`.

Every failure says its cause: silence, a CRC error or garbage on the RS-485 line (pymodbus
drops such frames without a word, so the driver looks at the bytes itself), an answer from
another device id, a Modbus exception response (Modbus Application Protocol §7), a lost
connection, or an implausible value.

Meters on one line (the two meters of a twin wallbox on one RS-485 bus, or behind one TCP
gateway) share one :class:`hal.modbus_bus.ModbusBus`: one client, one request at a time.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass
from typing import Any, Final

from pymodbus.constants import ExcCodes
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.framer import FramerRTU
from pymodbus.pdu import ModbusPDU

from hal.errors import MeterError
from hal.meter_maps import Register, RegisterMap, decode
from hal.modbus_bus import BusSettings, ModbusBus, ModbusClient
from hal.types import MeterReading

log = logging.getLogger(__name__)

# Plausibility limits: a value outside them is a decoding or wiring fault, not a measurement.
MAX_VOLTAGE_V: Final = 1000.0
MAX_ABS_CURRENT_A: Final = 5000.0
MAX_ABS_POWER_W: Final = 1_000_000.0
MAX_FREQUENCY_HZ: Final = 100.0
# Integer meters flag "not available" with all-ones registers; scaled, those land far above.
MAX_ENERGY_WH: Final = 1e12

_PHASES: Final = ("l1", "l2", "l3")

# What a meter most likely means by an exception code (Modbus Application Protocol §7).
_EXCEPTION_HINTS: Final[dict[int, str]] = {
    1: "function code not supported, check the map's function_code",
    2: "no such register, wrong model or map",
    3: "request refused, the block may be too long for this meter (max_block)",
    4: "the meter reports an internal failure",
    6: "the meter is busy",
    10: "the gateway has no path to the meter",
    11: "the gateway got no answer from the meter on its RS-485 side",
}


@dataclass(frozen=True, slots=True)
class ReadBlock:
    """One read request: ``count`` registers from ``address`` with ``function_code``."""

    function_code: int
    address: int
    count: int


def plan_reads(register_map: RegisterMap) -> list[ReadBlock]:
    """Group the map's registers into as few requests as its limits allow.

    Registers of one function code are merged while the unused registers between them do
    not exceed ``max_gap`` and the block stays within ``max_block`` registers.
    """
    spans = sorted(
        {(r.function_code, r.address, r.count) for r in register_map.registers().values()}
    )
    blocks: list[ReadBlock] = []
    for function_code, address, count in spans:
        if blocks and blocks[-1].function_code == function_code:
            last = blocks[-1]
            last_end = last.address + last.count
            end = max(last_end, address + count)
            if (
                address <= last_end + register_map.max_gap
                and end - last.address <= register_map.max_block
            ):
                blocks[-1] = ReadBlock(function_code, last.address, end - last.address)
                continue
        blocks.append(ReadBlock(function_code, address, count))
    return blocks


def describe_exception(code: int) -> str:
    """Name a Modbus exception code and what it most likely means for a meter."""
    try:
        name = ExcCodes(code).name
    except ValueError:
        name = "unknown"
    hint = _EXCEPTION_HINTS.get(code)
    return f"{code} ({name}: {hint})" if hint else f"{code} ({name})"


def describe_bad_answer(data: bytes, device_id: int, function_code: int) -> str:
    """Name what is wrong with ``data``, bytes an RTU meter sent that formed no valid answer.

    ``data`` starts where a response frame should start: device id, function code (with
    0x80 set for an exception), byte count, registers, CRC-16 (Modbus over Serial Line
    §2.5.1). A CRC error points at noise, termination or a second master on the line;
    garbage at a wrong baud rate or parity; another device id at two meters sharing an id.
    """
    if len(data) >= 2 and data[1] == function_code | 0x80:
        size = 5  # id, function code, exception code, CRC
    elif len(data) >= 3 and data[1] == function_code:
        size = 5 + data[2]  # id, function code, byte count, registers, CRC
    else:
        return f"{len(data)} bytes of garbage (wrong baud rate or parity?)"
    if len(data) < size:
        return f"a truncated answer ({len(data)} of {size} bytes)"
    crc = FramerRTU.compute_CRC(data[: size - 2]).to_bytes(2, "big")
    if crc != data[size - 2 : size]:
        return "an answer with a CRC error"
    if data[0] != device_id:
        return f"an answer from device id {data[0]}, not {device_id}"
    return f"an answer that pymodbus could not decode ({len(data)} bytes)"


class ModbusMeter:
    """A Modbus energy meter (implements :class:`hal.interfaces.Meter`).

    ``timeout`` applies to each attempt and ``retries`` counts the extra attempts per
    request, so a silent meter is reported after about ``timeout * (retries + 1)``.
    Those pymodbus retries, sent back to back, are the only retrying done here: there is
    no loop and no backoff in the driver, and a failed :meth:`read` raises at once. Polling
    again later, backing off, and deciding when a run of failures becomes a fault
    (PowerMeterFailure) is the caller's job; see docs/meters.md. For the same reason the
    caller logs the :class:`MeterError`; the driver logs failures at DEBUG only.
    The energy counters must never decrease: the last accepted values are kept for the
    life of this object (also across :meth:`stop`/:meth:`start`), so a meter that was
    swapped or reset keeps failing until the daemon builds a new driver.

    With ``bus``, the meter shares that line with other meters: a read holds the line for all
    its blocks, so on a line of n meters a read may wait up to n - 1 other reads first (the
    deadline counts from when the line is its own). What a meter remembers (the baseline
    above, whether it is failing, the bytes received for its request) stays its own.
    """

    def __init__(
        self,
        register_map: RegisterMap,
        *,
        transport: str | None = None,
        host: str | None = None,
        port: int | None = None,
        serial_port: str | None = None,
        baudrate: int | None = None,
        parity: str | None = None,
        stopbits: int | None = None,
        device_id: int = 1,
        timeout: float | None = None,
        retries: int | None = None,
        bus: ModbusBus | None = None,
    ) -> None:
        """Check the settings; nothing is opened before :meth:`start` or :meth:`read`.

        Either give the line settings (``transport`` and those of :class:`BusSettings`, whose
        defaults apply) and the meter builds a line of its own, or give ``bus``, a line shared
        with other meters, whose settings then apply: the two cannot be mixed.
        """
        line: dict[str, Any] = {
            "transport": transport,
            "host": host,
            "port": port,
            "serial_port": serial_port,
            "baudrate": baudrate,
            "parity": parity,
            "stopbits": stopbits,
            "timeout": timeout,
            "retries": retries,
        }
        given = {name: value for name, value in line.items() if value is not None}
        if bus is None:
            if transport is None:
                raise ValueError("a meter needs transport (and its line settings) or bus")
            bus = ModbusBus(BusSettings(**given))
        elif given:
            raise ValueError(
                f"{', '.join(given)} belong to the shared bus {bus.settings.where}: "
                "give bus or line settings, not both"
            )
        if not 0 <= device_id <= 255:
            raise ValueError(f"device_id {device_id!r} is outside 0..255")
        self._map = register_map
        self._bus = bus
        self._device_id = device_id
        settings = bus.settings
        self._timeout = settings.timeout
        self._retries = settings.retries
        self._blocks = plan_reads(register_map)
        self._layout = self._locate(register_map, self._blocks)
        # Guard for the whole read: connect plus every block with all its attempts. It starts
        # once the line is ours: waiting for another meter's read is not this meter's fault.
        self._deadline_s = self._timeout * ((self._retries + 1) * len(self._blocks) + 1)
        self._failing = False
        self._received = b""  # bytes received for the request in flight, to name a failure
        self._last_import_wh: float | None = None
        self._last_export_wh: float | None = None
        self._where = f"{register_map.name} at {settings.where} id {device_id}"

    def __repr__(self) -> str:
        """Name the meter the way log lines do."""
        return f"ModbusMeter({self._where})"

    @property
    def blocks(self) -> tuple[ReadBlock, ...]:
        """The requests one :meth:`read` sends, in order."""
        return tuple(self._blocks)

    @property
    def bus(self) -> ModbusBus:
        """The line this meter is on (its own, unless one was given)."""
        return self._bus

    async def start(self) -> None:
        """Open the connection; a failure is logged and left to :meth:`read` to retry."""
        async with self._bus.use(self) as client:
            if client.connected:
                return
            if await client.connect():
                log.info("meter %s: connected", self._where)
            else:
                log.warning("meter %s: cannot connect yet, will retry on read", self._where)

    async def stop(self) -> None:
        """Let go of the line; it closes when no other meter uses it. :meth:`read` after this
        reconnects."""
        await self._bus.release(self)

    async def read(self) -> MeterReading:
        """Poll the meter once.

        Raises :class:`MeterError` on timeout, connection failure, a Modbus exception
        response, or a reading that fails the sanity checks. On a shared line it first waits
        for the read of another meter under way.
        """
        async with self._bus.use(self, self._trace_received) as client:
            try:
                async with asyncio.timeout(self._deadline_s):
                    values = await self._read_values(client)
                reading = self._to_reading(values)
            except TimeoutError:
                self._bus.drop_connection()
                raise self._failed(f"no complete answer within {self._deadline_s:.1f} s") from None
            except MeterError as exc:
                raise self._failed(str(exc)) from exc.__cause__
            if self._failing:
                log.debug("meter %s: readable again", self._where)
                self._failing = False
            self._last_import_wh = reading.energy_import_wh
            if reading.energy_export_wh is not None:
                self._last_export_wh = reading.energy_export_wh
            return reading

    # -- bus access ---------------------------------------------------------------------

    @staticmethod
    def _locate(
        register_map: RegisterMap, blocks: list[ReadBlock]
    ) -> dict[str, tuple[Register, int, int]]:
        """Find, for every field, its block index and offset inside that block."""
        layout: dict[str, tuple[Register, int, int]] = {}
        for name, register in register_map.registers().items():
            for index, block in enumerate(blocks):
                offset = register.address - block.address
                if (
                    block.function_code == register.function_code
                    and offset >= 0
                    and offset + register.count <= block.count
                ):
                    layout[name] = (register, index, offset)
                    break
        return layout

    def _trace_received(self, data: bytes) -> None:
        # pymodbus passes its whole receive buffer each time bytes arrive; the last one
        # before it gives up is what the meter sent.
        self._received = data

    def _no_answer_cause(self, block: ReadBlock, exc: ModbusIOException) -> str:
        """Why ``block`` got no valid answer, from the bytes that did come back."""
        received = self._received
        if not received:
            return f"silent for {self._retries + 1} attempt(s) of {self._timeout:g} s"
        if self._bus.settings.transport == "rtu":
            return "received " + describe_bad_answer(received, self._device_id, block.function_code)
        return f"received {len(received)} bytes but no usable answer ({exc})"

    async def _read_values(self, client: ModbusClient) -> dict[str, float]:
        if not client.connected and not await client.connect():
            raise MeterError("cannot connect")
        registers = [await self._read_block(client, block) for block in self._blocks]
        return {
            name: decode(register, registers[index][offset : offset + register.count])
            for name, (register, index, offset) in self._layout.items()
        }

    async def _read_block(self, client: ModbusClient, block: ReadBlock) -> list[int]:
        what = f"FC{block.function_code} {block.address:#06x}+{block.count}"
        self._received = b""
        try:
            response: ModbusPDU
            if block.function_code == 4:
                response = await client.read_input_registers(
                    block.address, count=block.count, device_id=self._device_id
                )
            else:
                response = await client.read_holding_registers(
                    block.address, count=block.count, device_id=self._device_id
                )
        except ModbusIOException as exc:
            # No valid answer after every attempt; pymodbus' RTU framer drops frames with a
            # bad CRC and frames of other device ids, so this covers those too.
            self._bus.drop_connection()
            cause = self._no_answer_cause(block, exc)
            raise MeterError(f"no valid answer to {what}: {cause}") from exc
        except (ConnectionException, OSError) as exc:
            self._bus.drop_connection()
            raise MeterError(f"connection lost during {what}: {exc}") from exc
        except ModbusException as exc:
            raise MeterError(f"{what} failed: {exc}") from exc
        if response.isError():
            code = response.exception_code
            raise MeterError(f"{what} answered with Modbus exception {describe_exception(code)}")
        if response.function_code != block.function_code:
            # pymodbus pairs any frame of the right device id with the request in flight.
            raise MeterError(f"{what} answered with function code {response.function_code}")
        registers = list(response.registers)
        if len(registers) != block.count:
            raise MeterError(f"{what} answered {len(registers)} registers")
        return registers

    # -- sanity -------------------------------------------------------------------------

    def _failed(self, message: str) -> MeterError:
        """Build the error; the caller logs it, so the driver only notes it at DEBUG."""
        if not self._failing:
            log.debug("meter %s: failing: %s", self._where, message)
            self._failing = True
        else:
            log.debug("meter %s: still failing: %s", self._where, message)
        return MeterError(f"meter {self._where}: {message}")

    def _to_reading(self, values: dict[str, float]) -> MeterReading:
        """Check every value and build the reading; raise :class:`MeterError` if implausible."""
        for name, value in values.items():
            if not math.isfinite(value):
                raise MeterError(f"{name} is {value}")

        def limit(name: str, low: float, high: float) -> float:
            value = values.get(name, 0.0)
            if not low <= value <= high:
                raise MeterError(f"{name} = {value:g} is outside {low:g}..{high:g}")
            return value

        voltages = tuple(limit(f"voltage_{p}", 0.0, MAX_VOLTAGE_V) for p in _PHASES)
        currents = tuple(
            limit(f"current_{p}", -MAX_ABS_CURRENT_A, MAX_ABS_CURRENT_A) for p in _PHASES
        )
        powers = tuple(limit(f"power_{p}", -MAX_ABS_POWER_W, MAX_ABS_POWER_W) for p in _PHASES)
        power = limit("power_total", -MAX_ABS_POWER_W, MAX_ABS_POWER_W)
        frequency = limit("frequency", 0.0, MAX_FREQUENCY_HZ)
        energy_import = limit("energy_import", 0.0, MAX_ENERGY_WH)
        self._check_monotonic("energy_import", energy_import, self._last_import_wh)
        energy_export: float | None = None
        if "energy_export" in values:
            energy_export = limit("energy_export", 0.0, MAX_ENERGY_WH)
            self._check_monotonic("energy_export", energy_export, self._last_export_wh)
        return MeterReading(
            energy_import_wh=energy_import,
            power_w=power,
            current_a=(currents[0], currents[1], currents[2]),
            voltage_v=(voltages[0], voltages[1], voltages[2]),
            frequency_hz=frequency,
            energy_export_wh=energy_export,
            power_per_phase_w=(powers[0], powers[1], powers[2]),
        )

    @staticmethod
    def _check_monotonic(name: str, value: float, last: float | None) -> None:
        if last is not None and value < last:
            raise MeterError(f"{name} went backwards from {last:.1f} Wh to {value:.1f} Wh")
