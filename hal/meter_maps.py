"""Modbus register maps of energy meters, kept as data.

A :class:`RegisterMap` says where a meter keeps each value the daemon needs and how to turn
the raw 16-bit registers into SI units (Wh, W, A, V, Hz): the unit conversion lives in
:attr:`Register.scale` (an SDM630 counts kWh, so its energy registers carry ``scale=1000``).
Adding a meter means adding data to :data:`MAPS`, or describing it in the configuration file
and building it with :func:`map_from_dict`. Nothing here talks to a bus; see
:mod:`hal.modbus_meter` for the driver.

Sources: the design notes (DESIGN.md, "Energy meters (Modbus)"). The extra ABB B23 registers
(frequency, per-phase power) and EM340 registers (frequency, per-phase power, export) follow
the maps used by openWB (ABB B23 module) and Victron ``dbus-cgwacs`` (EM24/EM340). The
SDM72D-M v2 map is the common Eastron layout; its addresses agree with the register list of
the ``sdm72`` crate (written from Eastron's "SDM72D-M-v2 Modbus Protocol") and with the
redpesk ``modbus-binding`` SDM72D sample, not yet with a meter on the bench (docs/meters.md).
"""

from __future__ import annotations

import math
import os
import struct
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Final, Literal

WordOrder = Literal["big", "little"]

# struct format and register count of each datatype a map may use.
_CODECS: Final[dict[str, tuple[str, int]]] = {
    "int16": ("h", 1),
    "uint16": ("H", 1),
    "int32": ("i", 2),
    "uint32": ("I", 2),
    "int64": ("q", 4),
    "uint64": ("Q", 4),
    "float32": ("f", 2),
}
DATATYPES: Final[frozenset[str]] = frozenset(_CODECS)
FUNCTION_CODES: Final[frozenset[int]] = frozenset({3, 4})
WORD_ORDERS: Final[frozenset[str]] = frozenset({"big", "little"})
MAX_READ_REGISTERS: Final = 125  # Modbus limit for FC3/FC4 (Modbus Application Protocol §6.3)


def register_count(datatype: str) -> int:
    """Return how many 16-bit registers a value of ``datatype`` occupies."""
    try:
        return _CODECS[datatype][1]
    except KeyError:
        raise ValueError(
            f"datatype {datatype!r} is not one of {', '.join(sorted(DATATYPES))}"
        ) from None


@dataclass(frozen=True, slots=True)
class Register:
    """One value in a meter's register space.

    ``word_order`` is the order of the 16-bit words of a multi-register value: ``"big"`` puts
    the high word first (Eastron, ABB), ``"little"`` the low word first (Carlo Gavazzi).
    Bytes inside a word are always big-endian, as Modbus requires. The decoded value is the
    raw number times ``scale``, in the SI unit of the field that holds the register.
    """

    address: int
    function_code: int
    datatype: str
    word_order: WordOrder
    scale: float = 1.0

    def __post_init__(self) -> None:
        """Reject a register the driver could not read or decode."""
        if self.function_code not in FUNCTION_CODES:
            raise ValueError(f"function_code {self.function_code!r} is not 3 or 4")
        count = register_count(self.datatype)
        if self.word_order not in WORD_ORDERS:
            raise ValueError(f"word_order {self.word_order!r} is not 'big' or 'little'")
        if isinstance(self.address, bool) or not isinstance(self.address, int):
            raise ValueError(f"address {self.address!r} is not an integer")
        if not 0 <= self.address <= 0x10000 - count:
            raise ValueError(f"address {self.address:#x} is outside 0..0xffff")
        if not math.isfinite(self.scale) or self.scale == 0:
            raise ValueError(f"scale {self.scale!r} is not a finite non-zero number")

    @property
    def count(self) -> int:
        """Number of 16-bit registers this value occupies."""
        return _CODECS[self.datatype][1]


def decode(register: Register, regs: list[int]) -> float:
    """Turn the raw registers of ``register`` into its value in SI units.

    NaN and infinities of float registers come through unchanged: rejecting them is the
    caller's sanity check, not the codec's.
    """
    fmt, count = _CODECS[register.datatype]
    if len(regs) != count:
        raise ValueError(f"{register.datatype} needs {count} registers, got {len(regs)}")
    words = regs if register.word_order == "big" else list(reversed(regs))
    try:
        raw = struct.pack(f">{count}H", *words)
    except struct.error as exc:
        raise ValueError(f"registers {regs!r} are not all 16-bit values") from exc
    (value,) = struct.unpack(f">{fmt}", raw)
    return float(value) * register.scale


@dataclass(frozen=True, slots=True)
class RegisterMap:
    """Where one meter model keeps the values of a :class:`hal.types.MeterReading`.

    Fields left ``None`` are not measured by this model; the reading carries 0.0 (or ``None``
    for ``energy_export``) there. ``max_gap`` is how many unused registers a block read may
    span to merge two values into one request (0: never read registers the map does not
    name; some meters answer such reads with an exception). ``max_block`` caps the number of
    registers per request (Eastron documents at most 40 parameters, i.e. 80 registers).
    """

    name: str
    energy_import: Register
    power_total: Register
    current_l1: Register
    voltage_l1: Register
    current_l2: Register | None = None
    current_l3: Register | None = None
    voltage_l2: Register | None = None
    voltage_l3: Register | None = None
    energy_export: Register | None = None
    power_l1: Register | None = None
    power_l2: Register | None = None
    power_l3: Register | None = None
    frequency: Register | None = None
    max_gap: int = 0
    max_block: int = 80

    def __post_init__(self) -> None:
        """Check the read-planning limits."""
        if not 0 <= self.max_gap < MAX_READ_REGISTERS:
            raise ValueError(f"max_gap {self.max_gap!r} is outside 0..{MAX_READ_REGISTERS - 1}")
        if not 4 <= self.max_block <= MAX_READ_REGISTERS:
            raise ValueError(f"max_block {self.max_block!r} is outside 4..{MAX_READ_REGISTERS}")

    def registers(self) -> dict[str, Register]:
        """Return the measured fields of this map by name, in declaration order."""
        found: dict[str, Register] = {}
        for name in REGISTER_FIELDS:
            register = getattr(self, name)
            if register is not None:
                found[name] = register
        return found


REGISTER_FIELDS: Final[tuple[str, ...]] = tuple(
    f.name for f in fields(RegisterMap) if f.name not in {"name", "max_gap", "max_block"}
)
REQUIRED_FIELDS: Final[frozenset[str]] = frozenset(
    {"energy_import", "power_total", "current_l1", "voltage_l1"}
)


def _eastron(name: str, *, three_phase: bool, max_block: int = 80) -> RegisterMap:
    """Eastron SDM series: FC4 float32, high word first, address = manual number - 30001.

    ``max_block`` is the model's limit on registers per request: the SDM630 takes 40
    parameters (80 registers), the SDM72D-M 30 (60 registers).
    """

    def f32(address: int, scale: float = 1.0) -> Register:
        return Register(address, 4, "float32", "big", scale)

    if not three_phase:
        # SDM120 uses the SDM630 offsets for phase 1; its only active power is 0x0C.
        return RegisterMap(
            name=name,
            voltage_l1=f32(0x00),
            current_l1=f32(0x06),
            power_l1=f32(0x0C),
            power_total=f32(0x0C),
            frequency=f32(0x46),
            energy_import=f32(0x48, 1000.0),
            energy_export=f32(0x4A, 1000.0),
            max_block=max_block,
        )
    return RegisterMap(
        name=name,
        voltage_l1=f32(0x00),
        voltage_l2=f32(0x02),
        voltage_l3=f32(0x04),
        current_l1=f32(0x06),
        current_l2=f32(0x08),
        current_l3=f32(0x0A),
        power_l1=f32(0x0C),
        power_l2=f32(0x0E),
        power_l3=f32(0x10),
        power_total=f32(0x34),
        frequency=f32(0x46),
        energy_import=f32(0x48, 1000.0),
        energy_export=f32(0x4A, 1000.0),
        max_block=max_block,
    )


def _abb_b23() -> RegisterMap:
    """ABB B23/B24: FC3 scaled integers, high word first."""

    def hr(address: int, datatype: str, scale: float) -> Register:
        return Register(address, 3, datatype, "big", scale)

    return RegisterMap(
        name="abb_b23",
        voltage_l1=hr(0x5B00, "uint32", 0.1),
        voltage_l2=hr(0x5B02, "uint32", 0.1),
        voltage_l3=hr(0x5B04, "uint32", 0.1),
        current_l1=hr(0x5B0C, "uint32", 0.01),
        current_l2=hr(0x5B0E, "uint32", 0.01),
        current_l3=hr(0x5B10, "uint32", 0.01),
        power_total=hr(0x5B14, "int32", 0.01),
        power_l1=hr(0x5B16, "int32", 0.01),
        power_l2=hr(0x5B18, "int32", 0.01),
        power_l3=hr(0x5B1A, "int32", 0.01),
        frequency=hr(0x5B2C, "uint16", 0.01),
        energy_import=hr(0x5000, "uint64", 10.0),  # 0.01 kWh = 10 Wh
    )


def _em340() -> RegisterMap:
    """Carlo Gavazzi EM340: FC4 INT32 with the low word first."""

    def ir(address: int, scale: float, datatype: str = "int32") -> Register:
        return Register(address, 4, datatype, "little", scale)

    return RegisterMap(
        name="em340",
        voltage_l1=ir(0x00, 0.1),
        voltage_l2=ir(0x02, 0.1),
        voltage_l3=ir(0x04, 0.1),
        current_l1=ir(0x0C, 0.001),  # mA
        current_l2=ir(0x0E, 0.001),
        current_l3=ir(0x10, 0.001),
        power_l1=ir(0x12, 0.1),
        power_l2=ir(0x14, 0.1),
        power_l3=ir(0x16, 0.1),
        power_total=ir(0x28, 0.1),
        frequency=ir(0x33, 0.1, "int16"),
        energy_import=ir(0x34, 100.0),  # 0.1 kWh = 100 Wh
        energy_export=ir(0x4E, 100.0),
    )


MAPS: Final[Mapping[str, RegisterMap]] = {
    "sdm630": _eastron("sdm630", three_phase=True),
    "sdm120": _eastron("sdm120", three_phase=False),
    # The SDM72D-M v2 only: the first SDM72D-M has none of the per-phase registers.
    "sdm72d": _eastron("sdm72d", three_phase=True, max_block=60),
    "abb_b23": _abb_b23(),
    "em340": _em340(),
}

_REGISTER_KEYS: Final = frozenset({"address", "function_code", "datatype", "word_order", "scale"})
_DEFAULT_KEYS: Final = frozenset({"function_code", "datatype", "word_order"})
_MAP_KEYS: Final = frozenset({"name", "max_gap", "max_block"}) | _DEFAULT_KEYS


def _int_field(where: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{where}: expected an integer, got {value!r}")
    return value


def _register_from(field_name: str, spec: Any, defaults: dict[str, Any]) -> Register:
    """Build one register from an address (int) or a table of register keys."""
    where = f"meter map field {field_name!r}"
    if isinstance(spec, int) and not isinstance(spec, bool):
        spec = {"address": spec}
    if not isinstance(spec, Mapping):
        raise ValueError(f"{where}: expected an address or a table, got {spec!r}")
    unknown = sorted(set(spec) - _REGISTER_KEYS)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}")
    if "address" not in spec:
        raise ValueError(f"{where}: missing 'address'")
    merged = {**defaults, **spec}
    scale = merged.get("scale", 1.0)
    if isinstance(scale, bool) or not isinstance(scale, int | float):
        raise ValueError(f"{where}: scale {scale!r} is not a number")
    try:
        return Register(
            address=_int_field(f"{where} address", merged["address"]),
            function_code=_int_field(f"{where} function_code", merged.get("function_code", 4)),
            datatype=str(merged.get("datatype", "float32")),
            word_order=merged.get("word_order", "big"),
            scale=float(scale),
        )
    except ValueError as exc:
        if str(exc).startswith(where):
            raise
        raise ValueError(f"{where}: {exc}") from None


def map_from_dict(d: Mapping[str, Any]) -> RegisterMap:
    """Build a custom :class:`RegisterMap` from a plain dict, as parsed from TOML.

    Each field is an address (using the map-level defaults) or a table with ``address`` and
    optional ``function_code``, ``datatype``, ``word_order``, ``scale``. Map-level keys
    ``function_code``, ``datatype`` and ``word_order`` set defaults (4, float32, big)::

        name = "my-meter"
        datatype = "float32"
        voltage_l1 = 0x00
        current_l1 = 0x06
        power_total = 0x34
        energy_import = { address = 0x48, scale = 1000.0 }

    Raises :class:`ValueError` whose message names the offending field.
    """
    if not isinstance(d, Mapping):
        raise ValueError(f"meter map: expected a table, got {type(d).__name__}")
    unknown = sorted(set(d) - _MAP_KEYS - set(REGISTER_FIELDS))
    if unknown:
        raise ValueError(f"meter map: unknown field(s) {', '.join(unknown)}")
    name = d.get("name", "custom")
    if not isinstance(name, str) or not name:
        raise ValueError(f"meter map field 'name': expected a non-empty string, got {name!r}")
    missing = sorted(REQUIRED_FIELDS - set(d))
    if missing:
        raise ValueError(f"meter map {name!r}: missing field(s) {', '.join(missing)}")
    defaults = {key: d[key] for key in _DEFAULT_KEYS if key in d}
    kwargs: dict[str, Any] = {
        field_name: _register_from(field_name, d[field_name], defaults)
        for field_name in REGISTER_FIELDS
        if field_name in d
    }
    for key in ("max_gap", "max_block"):
        if key in d:
            kwargs[key] = _int_field(f"meter map field {key!r}", d[key])
    try:
        return RegisterMap(name=name, **kwargs)
    except ValueError as exc:
        raise ValueError(f"meter map {name!r}: {exc}") from None


def load_map_file(path: str | os.PathLike[str]) -> RegisterMap:
    """Build a custom :class:`RegisterMap` from a TOML file (``hal.meter.model = "custom"``).

    The file's top level holds the keys of :func:`map_from_dict` (format and a complete
    example in docs/meters.md); ``name`` defaults to the file name without its suffix.
    Raises :class:`ValueError` whose message starts with the file name and names the field
    at fault; an unreadable file is a :class:`ValueError` too.
    """
    where = os.fspath(path)
    try:
        with open(path, "rb") as file:
            data = tomllib.load(file)
    except OSError as exc:
        raise ValueError(f"{where}: cannot read meter map: {exc.strerror or exc}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{where}: not a valid TOML file: {exc}") from exc
    data.setdefault("name", Path(where).stem)
    try:
        return map_from_dict(data)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
