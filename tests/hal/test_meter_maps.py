"""Register maps as data: decoding, the built-in maps, custom maps from dicts and TOML files.

Nothing here touches a bus; tests/hal/test_modbus_meter.py reads every map over the wire.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from pymodbus.client import AsyncModbusTcpClient

from hal.meter_maps import (
    DATATYPES,
    MAPS,
    Register,
    decode,
    load_map_file,
    map_from_dict,
    register_count,
)
from hal.sim.meter import encode

EXAMPLE_MAP = Path(__file__).parents[2] / "docs" / "examples" / "custom-meter.toml"


def words(fmt: str, value: float, *, low_word_first: bool = False) -> list[int]:
    """Raw registers of ``value`` packed big-endian with ``fmt``, built here on purpose."""
    data = struct.pack(f">{fmt}", value)
    regs = [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
    return regs[::-1] if low_word_first else regs


# -- decoding, independent of the wire ---------------------------------------------------


@pytest.mark.parametrize(
    ("map_name", "field", "regs", "expected"),
    [
        ("sdm630", "voltage_l1", words("f", 231.5), 231.5),
        ("sdm630", "power_total", words("f", -1234.5), -1234.5),
        ("sdm630", "energy_import", words("f", 12.5), 12_500.0),
        ("sdm120", "current_l1", words("f", 7.25), 7.25),
        ("sdm120", "energy_export", words("f", 3.0), 3_000.0),
        ("sdm72d", "voltage_l3", words("f", 229.25), 229.25),
        ("sdm72d", "current_l2", words("f", 15.5), 15.5),
        ("sdm72d", "power_l1", words("f", 3565.0), 3565.0),
        ("sdm72d", "power_total", words("f", -10_500.0), -10_500.0),
        ("sdm72d", "frequency", words("f", 49.98), 49.98),
        ("sdm72d", "energy_import", words("f", 1234.5), 1_234_500.0),
        ("sdm72d", "energy_export", words("f", 0.25), 250.0),
        ("em340", "voltage_l1", words("i", 2305, low_word_first=True), 230.5),
        ("em340", "current_l2", words("i", 16_123, low_word_first=True), 16.123),
        ("em340", "power_total", words("i", -123_456, low_word_first=True), -12_345.6),
        ("em340", "energy_import", words("i", 0x0012_3456, low_word_first=True), 119_304_600.0),
        ("em340", "frequency", words("h", 499), 49.9),
        ("abb_b23", "voltage_l3", words("I", 2_298), 229.8),
        ("abb_b23", "current_l1", words("I", 1_600), 16.0),
        ("abb_b23", "power_total", words("i", -70_000), -700.0),
        (
            "abb_b23",
            "energy_import",
            words("Q", 0x0001_0000_0002_0003),
            0x0001_0000_0002_0003 * 10.0,
        ),
        ("abb_b23", "frequency", words("H", 5_001), 50.01),
    ],
)
def test_decode_matches_independently_packed_values(
    map_name: str, field: str, regs: list[int], expected: float
) -> None:
    register = getattr(MAPS[map_name], field)
    assert decode(register, regs) == pytest.approx(expected)


def test_decode_agrees_with_pymodbus_conversion() -> None:
    convert = AsyncModbusTcpClient.convert_from_registers
    datatype = AsyncModbusTcpClient.DATATYPE
    for order in ("big", "little"):
        regs = words("q", -0x0102_0304_0506, low_word_first=order == "little")
        register = Register(0, 3, "int64", order)
        assert decode(register, regs) == convert(regs, datatype.INT64, word_order=order)
        regs = words("f", 49.75, low_word_first=order == "little")
        register = Register(0, 4, "float32", order)
        assert decode(register, regs) == convert(regs, datatype.FLOAT32, word_order=order)


def test_simulator_encoding_round_trips_every_field() -> None:
    for register_map in MAPS.values():
        for name, register in register_map.registers().items():
            value = 123.4 if register.datatype != "uint64" else 5_000.0
            assert decode(register, encode(register, value)) == pytest.approx(
                value, rel=1e-6, abs=abs(register.scale)
            ), (register_map.name, name)


def test_decode_rejects_wrong_register_count() -> None:
    with pytest.raises(ValueError, match="needs 2 registers"):
        decode(MAPS["sdm630"].voltage_l1, [0])


def test_register_count_of_every_datatype() -> None:
    expected = {"int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "float32": 2}
    expected |= {"int64": 4, "uint64": 4}
    assert {datatype: register_count(datatype) for datatype in DATATYPES} == expected
    with pytest.raises(ValueError, match="float64"):
        register_count("float64")


# -- custom maps ---------------------------------------------------------------------------

SDM630_AS_DICT = {
    "name": "my-sdm630",
    "function_code": 4,
    "datatype": "float32",
    "word_order": "big",
    "voltage_l1": 0x00,
    "voltage_l2": 0x02,
    "voltage_l3": 0x04,
    "current_l1": 0x06,
    "current_l2": 0x08,
    "current_l3": 0x0A,
    "power_l1": 0x0C,
    "power_l2": 0x0E,
    "power_l3": 0x10,
    "power_total": 0x34,
    "frequency": 0x46,
    "energy_import": {"address": 0x48, "scale": 1000},
    "energy_export": {"address": 0x4A, "scale": 1000.0},
}


def test_map_from_dict_builds_the_same_map_as_the_builtin() -> None:
    custom = map_from_dict(SDM630_AS_DICT)
    assert custom.registers() == MAPS["sdm630"].registers()
    assert custom.name == "my-sdm630"


def test_map_from_dict_per_register_settings_override_defaults() -> None:
    custom = map_from_dict(
        {
            **SDM630_AS_DICT,
            "frequency": {"address": 0x33, "datatype": "int16", "scale": 0.1},
            "power_total": {"address": 0x28, "datatype": "int32", "word_order": "little"},
        }
    )
    assert custom.frequency == Register(0x33, 4, "int16", "big", 0.1)
    assert custom.power_total == Register(0x28, 4, "int32", "little", 1.0)


@pytest.mark.parametrize(
    ("change", "names"),
    [
        ({"energy_import": None}, "energy_import"),
        ({"voltage_l1": {"address": 0, "datatype": "float64"}}, "voltage_l1.*float64"),
        ({"current_l2": {"address": 8, "function_code": 6}}, "current_l2.*function_code"),
        ({"power_l1": {"address": "0x0C"}}, "power_l1.*address"),
        ({"power_l2": {"address": 0x0E, "scael": 2}}, "power_l2.*scael"),
        ({"power_l3": {"scale": 2}}, "power_l3.*address"),
        ({"frequency": {"address": 0x46, "word_order": "middle"}}, "frequency.*word_order"),
        ({"energy_export": {"address": 0x4A, "scale": 0}}, "energy_export.*scale"),
        ({"voltage_l3": 0xFFFF}, "voltage_l3.*address"),
        ({"voltage": 0x00}, "unknown field.*voltage"),
        ({"max_gap": -1}, "max_gap"),
        ({"name": ""}, "name"),
    ],
)
def test_map_from_dict_errors_name_the_field(change: dict[str, object], names: str) -> None:
    spec = {**SDM630_AS_DICT, **change}
    spec = {key: value for key, value in spec.items() if value is not None}
    with pytest.raises(ValueError, match=names):
        map_from_dict(spec)


def test_every_builtin_map_is_named_by_its_config_key() -> None:
    assert set(MAPS) == {"sdm630", "sdm120", "sdm72d", "abb_b23", "em340"}
    for key, register_map in MAPS.items():
        assert register_map.name == key


def test_sdm72d_follows_the_eastron_layout_within_its_request_limit() -> None:
    sdm72d = MAPS["sdm72d"]
    assert sdm72d.registers() == MAPS["sdm630"].registers()
    assert sdm72d.max_block == 60  # 30 parameters per request (SDM72D-M protocol)
    assert {register.function_code for register in sdm72d.registers().values()} == {4}


# -- custom maps from TOML files -----------------------------------------------------------


def test_example_custom_map_file_is_an_sdm630() -> None:
    custom = load_map_file(EXAMPLE_MAP)
    assert custom.name == "sdm630-custom"
    assert custom.registers() == MAPS["sdm630"].registers()
    assert (custom.max_gap, custom.max_block) == (0, 80)


def test_map_file_name_defaults_to_file_stem_and_tables_may_be_sections(tmp_path: Path) -> None:
    path = tmp_path / "em340-alike.toml"
    path.write_text(
        "function_code = 4\n"
        'datatype = "int32"\n'
        'word_order = "little"\n'
        "voltage_l1 = { address = 0x00, scale = 0.1 }\n"
        "current_l1 = { address = 0x0C, scale = 0.001 }\n"
        "power_total = { address = 0x28, scale = 0.1 }\n"
        "\n"
        "[frequency]\n"
        "address = 0x33\n"
        'datatype = "int16"\n'
        "scale = 0.1\n"
        "\n"
        "[energy_import]\n"
        "address = 0x34\n"
        "scale = 100.0\n",
        encoding="utf-8",
    )
    custom = load_map_file(str(path))
    assert custom.name == "em340-alike"
    em340 = MAPS["em340"]
    for field in ("voltage_l1", "current_l1", "power_total", "frequency", "energy_import"):
        assert getattr(custom, field) == getattr(em340, field), field
    assert custom.energy_export is None


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read meter map"),
        ("voltage_l1 = [", "not a valid TOML file"),
        (b"name = '\xff'", "not a valid TOML file"),
        ("voltage_l1 = 0\ncurrent_l1 = 6\npower_total = 0x34\n", "missing field.*energy_import"),
        (
            EXAMPLE_MAP.read_text(encoding="utf-8").replace("0x0A", '"0x0A"'),
            "current_l3.*address",
        ),
        (
            EXAMPLE_MAP.read_text(encoding="utf-8").replace('"float32"', '"float64"'),
            "energy_import.*float64",
        ),
        (
            EXAMPLE_MAP.read_text(encoding="utf-8") + "power_factor = 0x3E\n",
            "unknown field.*power_factor",
        ),
    ],
)
def test_map_file_errors_name_the_file_and_the_field(
    tmp_path: Path, content: str | bytes | None, message: str
) -> None:
    path = tmp_path / "broken-meter.toml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=message) as caught:
        load_map_file(path)
    assert str(caught.value).startswith(f"{path}: ")


# -- docs/meters.md stays true ---------------------------------------------------------------

DOC = Path(__file__).parents[2] / "docs" / "meters.md"
_DOC_FIELDS = (
    *(f"voltage_{p}" for p in ("l1", "l2", "l3")),
    *(f"current_{p}" for p in ("l1", "l2", "l3")),
    *(f"power_{p}" for p in ("l1", "l2", "l3")),
    "power_total",
    "frequency",
    "energy_import",
    "energy_export",
)


def _doc_cell(register: Register | None) -> str:
    if register is None:
        return "—"
    extra = [] if register.datatype == "float32" else [register.datatype]
    if register.scale != 1.0:
        extra.append(f"\N{MULTIPLICATION SIGN}{register.scale:g}")
    return " ".join([f"{register.address:#06x}", *extra])


def test_register_table_in_the_docs_matches_the_maps() -> None:
    text = DOC.read_text(encoding="utf-8")
    header = "| field | " + " | ".join(f"`{name}`" for name in MAPS) + " |"
    assert header in text
    for field in _DOC_FIELDS:
        cells = [_doc_cell(getattr(register_map, field)) for register_map in MAPS.values()]
        assert f"| {field} | " + " | ".join(cells) + " |" in text, field


def test_docs_show_the_shipped_example_map_in_full() -> None:
    text = DOC.read_text(encoding="utf-8")
    example = EXAMPLE_MAP.read_text(encoding="utf-8")
    assert f"```toml\n{example}```" in text
    for model in MAPS:
        assert f"| `{model}` |" in text, model
