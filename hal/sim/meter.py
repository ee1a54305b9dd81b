"""Simulated energy meters: a real Modbus TCP server on 127.0.0.1 (or RTU on a serial device).

A :class:`SimMeterDevice` serves the registers of a :class:`~hal.meter_maps.RegisterMap` (the
Eastron SDM630 v2 by default) under its device id; a :class:`SimMeterBus` answers for one or
more of them, as meters sharing one RS-485 line (or one TCP gateway) do, and
:class:`SimMeterServer` is the common case of one meter on a server of its own. So
:class:`hal.modbus_meter.ModbusMeter` talks to it exactly as to a meter behind a Modbus TCP
gateway, or on an RS-485 line. Addresses come from the shared map; the values are encoded here with
:mod:`struct`, independently of :func:`hal.meter_maps.decode`, so a bug in the decoder cannot
cancel itself out in tests.

Each meter measures what its ``load()`` says flows now (per-phase current in A) at a fixed
voltage and integrates the energy every 100 ms and on every request. With ``energy_file`` its
energy register is non-volatile, as a real meter's is: a process that dies (kill -9) and starts
again goes on counting from the last value any client was served.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import struct
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final, cast

from pymodbus.constants import ExcCodes
from pymodbus.pdu import ModbusPDU
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from hal.meter_maps import MAPS, Register, RegisterMap

log = logging.getLogger(__name__)

Load = Callable[[], tuple[float, float, float]]

INTEGRATION_PERIOD_S: Final = 0.1
_STRUCT: Final[dict[str, str]] = {
    "int16": "h",
    "uint16": "H",
    "int32": "i",
    "uint32": "I",
    "int64": "q",
    "uint64": "Q",
    "float32": "f",
}


def encode(register: Register, value: float) -> list[int]:
    """Encode ``value`` (SI units) into the raw registers a meter would serve."""
    fmt = _STRUCT[register.datatype]
    raw = value / register.scale
    data = struct.pack(f">{fmt}", raw if fmt == "f" else round(raw))
    words = [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
    return words if register.word_order == "big" else words[::-1]


class SimMeterDevice:
    """One simulated meter: its register map, energy register and faults (see module docstring).

    A :class:`SimMeterBus` serves it under ``device_id``, alone or beside other meters.

    ``set_offline(True)`` makes the meter go silent: requests still reach it but its answers
    are dropped, so clients see timeouts, as with an RS485 meter that lost power or its bus;
    the other meters of its server keep answering. ``clock`` is injectable so tests can
    advance time without sleeping.

    Energy always integrates all three phases of ``load()``; with a single-phase map
    (SDM120) only L1 is served, so ``load()`` should then report 0 A on L2 and L3.

    With ``energy_file`` set, the energy register starts from the value stored there (if
    any) instead of ``initial_energy_wh``, and is written there before every answer and when
    its server stops, so no reading a client saw is ever lost: a meter's count never goes
    back, even across a crash of the process that simulates it. The file is replaced
    atomically but not fsynced (that would stall the event loop); it survives a killed
    process, not a crash of the machine.
    """

    def __init__(
        self,
        load: Load,
        *,
        device_id: int = 1,
        voltage_v: float = 230.0,
        frequency_hz: float = 50.0,
        initial_energy_wh: float = 0.0,
        register_map: RegisterMap | None = None,
        clock: Callable[[], float] = time.monotonic,
        energy_file: Path | None = None,
    ) -> None:
        """Prepare the meter; a :class:`SimMeterBus` serves it."""
        if not 1 <= device_id <= 247:
            raise ValueError(f"device id {device_id} is outside 1..247")
        self._load = load
        self._device_id = device_id
        self._voltage_v = voltage_v
        self._frequency_hz = frequency_hz
        self._map = register_map if register_map is not None else MAPS["sdm630"]
        self._clock = clock
        self._energy_file = energy_file
        self._store_failing = False
        self._energy_wh = _stored_energy_wh(energy_file, initial_energy_wh)
        self._power_w = 0.0  # power measured at the last integration step
        self._last_t = clock()
        self._offline = False
        self._forced: dict[str, float] = {}

    @property
    def device_id(self) -> int:
        """The Modbus device id (unit id) the meter answers to."""
        return self._device_id

    @property
    def register_map(self) -> RegisterMap:
        return self._map

    @property
    def energy_wh(self) -> float:
        """Imported energy so far, in Wh."""
        self.integrate()
        return self._energy_wh

    @property
    def offline(self) -> bool:
        """True while the meter does not answer."""
        return self._offline

    def set_offline(self, offline: bool) -> None:
        """Stop (True) or resume (False) answering requests; energy keeps counting."""
        if offline != self._offline:
            log.info(
                "simulated meter id %d %s", self._device_id, "offline" if offline else "online"
            )
        self._offline = offline

    def force(self, field: str, value: float | None) -> None:
        """Serve ``value`` for ``field`` (e.g. ``"voltage_l1"``) instead of the simulated one.

        ``None`` ends the override. This is the hook tests use to feed NaN or implausible
        numbers to the driver.
        """
        register = self._map.registers().get(field)
        if register is None:
            raise ValueError(f"register map {self._map.name!r} has no field {field!r}")
        if value is None:
            self._forced.pop(field, None)
            return
        try:
            encode(register, value)
        except (ValueError, OverflowError, struct.error) as exc:
            raise ValueError(f"{field} is {register.datatype}: cannot carry {value}") from exc
        self._forced[field] = value

    # -- simulation ---------------------------------------------------------------------

    def integrate(self) -> None:
        """Add the energy of the power measured at the previous step, then measure again."""
        now = self._clock()
        dt = max(0.0, now - self._last_t)
        self._last_t = now
        self._energy_wh += self._power_w * dt / 3600.0
        self._power_w = sum(self._voltage_v * current for current in self._load())

    def store_energy(self) -> None:
        """Keep the register in ``energy_file`` (write a sibling, then rename over it).

        A file that cannot be written (the disk is full) does not stop the meter answering, as
        a real meter's register does not depend on our disk: the count is kept in memory and
        stored again at the next request that can be."""
        if self._energy_file is None:
            return
        scratch = self._energy_file.with_name(self._energy_file.name + ".new")
        try:
            scratch.write_text(f"{self._energy_wh!r}\n")
            os.replace(scratch, self._energy_file)
        except OSError as exc:
            if not self._store_failing:
                log.warning("simulated meter: cannot store its energy register: %s", exc)
            self._store_failing = True
        else:
            self._store_failing = False

    def _values(self) -> dict[str, float]:
        """The value of every field right now, in SI units."""
        currents = self._load()
        powers = [self._voltage_v * current for current in currents]
        values: dict[str, float] = {"energy_import": self._energy_wh, "energy_export": 0.0}
        values["power_total"] = sum(powers)
        values["frequency"] = self._frequency_hz
        for index, phase in enumerate(("l1", "l2", "l3")):
            values[f"voltage_{phase}"] = self._voltage_v
            values[f"current_{phase}"] = currents[index]
            values[f"power_{phase}"] = powers[index]
        if self._map.power_l1 == self._map.power_total:  # single-phase meter (SDM120)
            values["power_total"] = values["power_l1"]
        values.update(self._forced)
        return values

    # -- Modbus plumbing ----------------------------------------------------------------

    def build_device(self) -> SimDevice:
        """One zero-filled register block per function code, spanning the map's addresses.

        Reads inside the span are answered (unused registers read 0, so a driver may merge
        requests across gaps); reads outside it get ILLEGAL_ADDRESS, as from a real meter.
        """
        spans: dict[int, tuple[int, int]] = {}
        for register in self._map.registers().values():
            low, high = spans.get(register.function_code, (register.address, register.address))
            spans[register.function_code] = (
                min(low, register.address),
                max(high, register.address + register.count),
            )

        def block(function_code: int) -> list[SimData]:
            if function_code not in spans:
                return [SimData(0, datatype=DataType.INVALID)]
            low, high = spans[function_code]
            return [SimData(low, values=[0] * (high - low), datatype=DataType.REGISTERS)]

        bits = [SimData(0, count=16, values=False, datatype=DataType.BITS)]
        return SimDevice(
            self._device_id,
            simdata=(bits, list(bits), block(3), block(4)),
            action=self._on_request,
        )

    async def _on_request(
        self,
        function_code: int,
        start_address: int,
        _address: int,
        _count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        """Refresh the served registers from the simulation just before pymodbus answers."""
        if set_values is not None:
            return ExcCodes.ILLEGAL_FUNCTION  # a meter's measurements are read-only
        self.integrate()
        self.store_energy()  # before the value leaves: what was served is never lost
        values = self._values()
        for name, register in self._map.registers().items():
            if register.function_code == function_code:
                offset = register.address - start_address
                registers[offset : offset + register.count] = encode(register, values[name])
        return None


class SimMeterBus:
    """One Modbus server answering for several simulated meters, each under its device id.

    Over TCP (``host:port`` on 127.0.0.1 by default, port 0 = let the kernel pick) it is a
    gateway with meters behind it: a request for an id it does not have gets exception 11
    (GATEWAY_NO_RESPONSE). With ``serial_port`` set it speaks Modbus RTU on that serial device
    (e.g. one end of a :class:`~hal.sim.serial_line.PtyNullModem`): the meters share one
    RS-485 line, and a request for an id nobody has goes unanswered, as on a real line.
    ``stop()`` then ``start()`` serves again on the same port (clients see refused
    connections meanwhile).
    """

    def __init__(
        self,
        devices: Sequence[SimMeterDevice],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        serial_port: str = "",
        baudrate: int = 9600,
    ) -> None:
        """Prepare the server; nothing listens before :meth:`start`."""
        ids = [device.device_id for device in devices]
        if not ids or len(set(ids)) != len(ids):
            raise ValueError(f"a simulated meter line needs meters with distinct ids, got {ids}")
        self._devices = {device.device_id: device for device in devices}
        self._host = host
        self._port = port
        self._serial_port = serial_port
        self._baudrate = baudrate
        self._server: ModbusTcpServer | ModbusSerialServer | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._silence_reply = False

    @property
    def port(self) -> int:
        """TCP port served (the real one once :meth:`start` bound port 0)."""
        return self._port

    @property
    def serial_port(self) -> str:
        """The serial device served over RTU; "" over TCP."""
        return self._serial_port

    @property
    def devices(self) -> tuple[SimMeterDevice, ...]:
        return tuple(self._devices.values())

    def device(self, device_id: int) -> SimMeterDevice:
        """The meter answering to ``device_id``; KeyError if none does."""
        return self._devices[device_id]

    async def start(self) -> None:
        """Listen on ``host:port`` (or open ``serial_port``); returns once requests are served."""
        if self._server is not None:
            raise RuntimeError("simulated meter already started")
        for device in self._devices.values():
            device.integrate()
        simdevices = [device.build_device() for device in self._devices.values()]
        if self._serial_port:
            self._server = ModbusSerialServer(
                simdevices,
                port=self._serial_port,
                baudrate=self._baudrate,
                ignore_missing_devices=True,
                trace_packet=self._trace_packet,
                trace_pdu=self._trace_pdu,
            )
            await self._server.serve_forever(background=True)
            where = f"rtu {self._serial_port}"
        else:
            self._server = ModbusTcpServer(
                simdevices,
                address=(self._host, self._port),
                trace_packet=self._trace_packet,
                trace_pdu=self._trace_pdu,
            )
            await self._server.serve_forever(background=True)
            if self._port == 0:
                # Bound by the kernel: nothing can take the port between picking and binding.
                listener = cast(asyncio.Server, self._server.transport)
                self._port = int(listener.sockets[0].getsockname()[1])
            where = f"tcp {self._host}:{self._port}"
        self._ticker = asyncio.create_task(self._tick(), name="sim-meter-integrate")
        meters = ", ".join(f"{d.register_map.name} id {i}" for i, d in self._devices.items())
        log.info("simulated meters %s serving on %s", meters, where)

    async def stop(self) -> None:
        """Stop listening and drop every client connection."""
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        if self._server is not None:
            # pymodbus 3.16 leaves shutdown() unannotated.
            await self._server.shutdown()  # type: ignore[no-untyped-call]
            self._server = None
        for device in self._devices.values():
            device.integrate()
            device.store_energy()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(INTEGRATION_PERIOD_S)
            for device in self._devices.values():
                device.integrate()

    def _trace_pdu(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        # pymodbus frames the answer right after this call, then hands it to _trace_packet.
        if sending:
            device = self._devices.get(pdu.dev_id)
            self._silence_reply = device is not None and device.offline
        return pdu

    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        # Dropping the response frame (not the request) leaves pymodbus' receive buffer
        # clean, so the meter answers normally as soon as it is back online.
        if sending and self._silence_reply:
            self._silence_reply = False
            return b""
        return data


class SimMeterServer(SimMeterBus):
    """One simulated meter on a server of its own, over TCP or RTU (see module docstring).

    The arguments are those of :class:`SimMeterDevice` and :class:`SimMeterBus`; or, instead
    of ``load`` and the other meter arguments, ``meter``: a meter built already.
    ``energy_wh``, ``offline``, ``set_offline`` and ``force`` are the meter's (``meter``).
    """

    def __init__(
        self,
        load: Load | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        voltage_v: float = 230.0,
        frequency_hz: float = 50.0,
        device_id: int = 1,
        initial_energy_wh: float = 0.0,
        register_map: RegisterMap | None = None,
        clock: Callable[[], float] = time.monotonic,
        serial_port: str = "",
        baudrate: int = 9600,
        energy_file: Path | None = None,
        meter: SimMeterDevice | None = None,
    ) -> None:
        """Prepare the meter; nothing listens before :meth:`start`."""
        if meter is None:
            if load is None:
                raise ValueError("a simulated meter server needs load (or meter)")
            meter = SimMeterDevice(
                load,
                device_id=device_id,
                voltage_v=voltage_v,
                frequency_hz=frequency_hz,
                initial_energy_wh=initial_energy_wh,
                register_map=register_map,
                clock=clock,
                energy_file=energy_file,
            )
        elif load is not None:
            raise ValueError("a simulated meter server takes load or meter, not both")
        self.meter = meter
        super().__init__([meter], host=host, port=port, serial_port=serial_port, baudrate=baudrate)

    @property
    def energy_wh(self) -> float:
        """Imported energy so far, in Wh."""
        return self.meter.energy_wh

    @property
    def offline(self) -> bool:
        """True while the meter does not answer."""
        return self.meter.offline

    def set_offline(self, offline: bool) -> None:
        """Stop (True) or resume (False) answering requests; energy keeps counting."""
        self.meter.set_offline(offline)

    def force(self, field: str, value: float | None) -> None:
        """Serve ``value`` for ``field`` instead of the simulated one; see SimMeterDevice."""
        self.meter.force(field, value)


def _stored_energy_wh(path: Path | None, default: float) -> float:
    """The energy register kept in ``path``; ``default`` when there is none yet."""
    if path is None:
        return default
    try:
        text = path.read_text()
    except FileNotFoundError:
        return default
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{path}: not a simulated meter energy register: {text[:40]!r}") from None
    if not value >= 0.0:  # also rejects NaN
        raise ValueError(f"{path}: energy register must be >= 0 Wh, got {value}")
    return value
