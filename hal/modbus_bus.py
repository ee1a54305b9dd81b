"""One Modbus line shared by the meters on it: a TCP endpoint or an RS-485 (RTU) line.

A twin wallbox has two meters on one RS-485 bus, on one serial port, with device ids 1 and 2.
They must share one client: two clients opening one serial port would both read every byte on
the line and take each other's answers (Modbus over Serial Line §2.2: one master per line). A
:class:`ModbusBus` owns that client and the lock that lets one request out at a time; each
:class:`~hal.modbus_meter.ModbusMeter` on the line keeps its own state (last energy values, its
failing flag, the bytes received for its request) and borrows the line for one whole read.

:class:`BusSettings` says which settings belong to the line rather than to a meter, and
:class:`BusRegistry` hands out one bus per line, refusing a meter whose line settings disagree
with the meters already on it, or whose device id is taken there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient

log = logging.getLogger(__name__)

ModbusClient = AsyncModbusTcpClient | AsyncModbusSerialClient
ReceiveListener = Callable[[bytes], None]

# The settings every meter of one line must agree on (the line's key aside): one client
# carries them, so a second value cannot be honoured.
_SHARED_FIELDS = {
    "tcp": ("timeout", "retries"),
    "rtu": ("baudrate", "parity", "stopbits", "timeout", "retries"),
}


@dataclass(frozen=True, slots=True)
class BusSettings:
    """How to reach one Modbus line. Meters with equal :attr:`key` are on the same line.

    ``timeout`` applies to each attempt and ``retries`` counts the extra attempts per request
    (pymodbus sends them back to back). TCP uses ``host`` and ``port``; RTU uses
    ``serial_port``, ``baudrate``, ``parity`` (``"N"``, ``"E"``, ``"O"``; always 8 data bits)
    and ``stopbits``.
    """

    transport: str
    host: str = "127.0.0.1"
    port: int = 502
    serial_port: str = ""
    baudrate: int = 9600
    parity: str = "N"
    stopbits: int = 1
    timeout: float = 1.0
    retries: int = 1

    def __post_init__(self) -> None:
        """Refuse settings no client could use."""
        if self.transport not in ("tcp", "rtu"):
            raise ValueError(f"transport {self.transport!r} is not 'tcp' or 'rtu'")
        if self.transport == "rtu" and not self.serial_port:
            raise ValueError("transport 'rtu' needs serial_port")
        if self.parity not in ("N", "E", "O"):
            raise ValueError(f"parity {self.parity!r} is not 'N', 'E' or 'O'")
        if self.stopbits not in (1, 2):
            raise ValueError(f"stopbits {self.stopbits!r} is not 1 or 2")
        if not self.timeout > 0 or self.retries < 0:
            raise ValueError("timeout must be > 0 and retries >= 0")

    @property
    def where(self) -> str:
        """The line as log lines name it: ``tcp HOST:PORT`` or ``rtu SERIAL_PORT``."""
        if self.transport == "tcp":
            return f"tcp {self.host}:{self.port}"
        return f"rtu {self.serial_port}"

    @property
    def key(self) -> str:
        """What identifies the line: the TCP endpoint, or the serial device.

        A serial port is keyed by the device it resolves to, so ``/dev/serial/by-id/...`` and
        the ``/dev/ttyUSB0`` it points at are one line, not two clients on one port.
        """
        if self.transport == "tcp":
            return self.where
        return f"rtu {os.path.realpath(self.serial_port)}"

    def disagreements(self, other: BusSettings) -> list[str]:
        """The names of the line settings in which ``other``, on this line, differs."""
        if other.key != self.key:
            return []
        return [
            name
            for name in _SHARED_FIELDS[self.transport]
            if getattr(other, name) != getattr(self, name)
        ]


class ModbusBus:
    """One pymodbus client for one line, shared by every meter on it.

    :meth:`use` holds the line for one user (a meter) for as long as its block lasts, routing
    the bytes received meanwhile to that user's listener, so a failure on an RTU line is named
    for the meter whose request was in flight. A user that borrowed the line stays counted
    until :meth:`release`; the last release closes the client, so stopping one meter does not
    close the line under another. Using it again later reopens it. Runs on one event loop.
    """

    def __init__(self, settings: BusSettings) -> None:
        """Nothing is opened before the first :meth:`use`."""
        self._settings = settings
        self._client: ModbusClient | None = None
        self._lock = asyncio.Lock()
        self._users: set[object] = set()
        self._listener: ReceiveListener | None = None

    def __repr__(self) -> str:
        """Name the line the way log lines do."""
        return f"ModbusBus({self._settings.where})"

    @property
    def settings(self) -> BusSettings:
        return self._settings

    @property
    def users(self) -> int:
        """How many users borrowed the line and have not released it."""
        return len(self._users)

    @contextlib.asynccontextmanager
    async def use(
        self, user: object, on_received: ReceiveListener | None = None
    ) -> AsyncIterator[ModbusClient]:
        """Hold the line for ``user``: no other request goes out until the block ends.

        The client may not be connected yet. ``on_received`` gets pymodbus' receive buffer each
        time bytes arrive while the block runs.
        """
        async with self._lock:
            self._users.add(user)
            self._listener = on_received
            try:
                yield self._ensure_client()
            finally:
                self._listener = None

    async def release(self, user: object) -> None:
        """``user`` is done with the line; closes it when no other user is left."""
        async with self._lock:
            self._users.discard(user)
            if not self._users and self._client is not None:
                self._client.close()
                self._client = None
                log.debug("modbus line %s: closed", self._settings.where)

    def drop_connection(self) -> None:
        """Forget a TCP connection after a fault; a late answer must not pair with a new request.

        Call it while holding the line. A serial port stays open: the line itself is fine when
        one device stays silent. The next user reconnects.
        """
        if self._settings.transport == "tcp" and self._client is not None:
            self._client.close()

    def _ensure_client(self) -> ModbusClient:
        # pymodbus' own reconnect loop is off (reconnect_delay=0): the meters reconnect on
        # read, so a dead line costs one connect attempt per poll and nothing runs meanwhile.
        if self._client is None:
            s = self._settings
            if s.transport == "tcp":
                self._client = AsyncModbusTcpClient(
                    s.host,
                    port=s.port,
                    timeout=s.timeout,
                    retries=s.retries,
                    reconnect_delay=0,
                    trace_packet=self._trace_packet,
                )
            else:
                self._client = AsyncModbusSerialClient(
                    s.serial_port,
                    baudrate=s.baudrate,
                    parity=s.parity,
                    stopbits=s.stopbits,
                    timeout=s.timeout,
                    retries=s.retries,
                    reconnect_delay=0,
                    trace_packet=self._trace_packet,
                )
        return self._client

    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        if not sending and data and self._listener is not None:
            self._listener(data)
        return data


class BusRegistry:
    """Hands out one :class:`ModbusBus` per line to the meters a charger configures.

    :meth:`bus_for` refuses, with a ValueError naming both meters, a meter whose line settings
    disagree with those of the first meter on its line, or whose device id another meter on
    that line already has (two meters with one id garble each other's answers).
    """

    def __init__(self) -> None:
        self._buses: dict[str, ModbusBus] = {}
        self._owners: dict[str, dict[int, str]] = {}  # line key -> device id -> owner

    def bus_for(self, settings: BusSettings, device_id: int, owner: str) -> ModbusBus:
        """The bus for ``settings``' line, for the meter ``owner`` (e.g. ``"connector 2"``)."""
        bus = self._buses.get(settings.key)
        owners = self._owners.setdefault(settings.key, {})
        if bus is None:
            bus = self._buses[settings.key] = ModbusBus(settings)
        else:
            differences = bus.settings.disagreements(settings)
            if differences:
                first = next(iter(owners.values()))
                mine = ", ".join(f"{n} {getattr(settings, n)!r}" for n in differences)
                theirs = ", ".join(f"{n} {getattr(bus.settings, n)!r}" for n in differences)
                fields = ", ".join(_SHARED_FIELDS[settings.transport])
                raise ValueError(
                    f"{owner}: the meter on {settings.where} has {mine}, but {first}'s meter "
                    f"on that line has {theirs}: meters on one line share one client and "
                    f"must agree on {fields}"
                )
        if device_id in owners:
            raise ValueError(
                f"{owner}: device id {device_id} on {settings.where} is already "
                f"{owners[device_id]}'s meter: every meter on one line needs its own device id"
            )
        owners[device_id] = owner
        return bus

    def buses(self) -> tuple[ModbusBus, ...]:
        """Every line handed out so far, in order."""
        return tuple(self._buses.values())
