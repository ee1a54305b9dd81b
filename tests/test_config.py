"""Config parsing: typed values, named errors, exit code 78, and the example file in sync."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from evsed.config import config_keys, load_config
from evsed.errors import EXIT_CONFIG, ConfigError

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "evsed.example.toml"

MINIMAL = """
[charger]
id = "cp-1"
[csms]
url = "ws://127.0.0.1:9000/ocpp"
[hal]
kind = "sim"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "evsed.toml"
    path.write_text(text)
    return path


def test_minimal_config_gets_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL))
    assert config.charger.id == "cp-1"
    (connector,) = config.connectors  # a single-socket charger is a list of one
    assert connector.id == 1
    assert connector.max_current_a == 16.0
    assert connector.contactor.pin == 17


def test_integer_accepted_where_a_number_is_expected(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL + "[[connectors]]\nmax_current_a = 32\n"))
    assert config.connectors[0].max_current_a == 32.0
    assert isinstance(config.connectors[0].max_current_a, float)


@pytest.mark.parametrize(
    ("extra", "key", "problem"),
    [
        ("[charging]\nmax_curent_a = 16\n", "charging.max_curent_a", "unknown key"),
        (
            '[[connectors]]\nmax_current_a = "16"\n',
            "connectors[1].max_current_a",
            "expected a number",
        ),
        ("[charging]\nfree_mode = 1\n", "charging.free_mode", "expected a boolean"),
        (
            '[[connectors]]\n[connectors.meter]\ntransport = "usb"\n',
            "connectors[1].meter.transport",
            "must be one of",
        ),
        ("[hal.sim]\nmeter_port = 1.5\n", "hal.sim.meter_port", "expected an integer"),
        (
            "[[connectors]]\nmax_current_a = 100\n",
            "connectors[1].max_current_a",
            "between 6 and 80",
        ),
        ("[bogus]\nx = 1\n", "bogus", "unknown key"),
    ],
)
def test_bad_value_names_key_and_file(tmp_path: Path, extra: str, key: str, problem: str) -> None:
    path = write(tmp_path, MINIMAL + extra)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.key == key
    assert problem in info.value.problem
    assert str(path) in str(info.value)


def test_missing_required_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"csms\.url: required value is missing"):
        load_config(write(tmp_path, MINIMAL.replace('url = "ws://127.0.0.1:9000/ocpp"', "")))


def test_missing_required_table(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r": hal: required table is missing"):
        load_config(write(tmp_path, MINIMAL.replace('[hal]\nkind = "sim"', "")))


def test_invalid_toml_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(write(tmp_path, "[charger\nid = 1"))


def _run_daemon(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "evsed", *args], capture_output=True, text=True, timeout=60
    )


def test_daemon_exits_78_on_unknown_key(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "[charging]\nturbo = true\n")
    result = _run_daemon("--config", str(path))
    assert result.returncode == EXIT_CONFIG
    assert "charging.turbo: unknown key" in result.stderr
    assert str(path) in result.stderr


def test_daemon_exits_78_on_bad_type(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + '[[connectors]]\nphases = "3"\n')
    result = _run_daemon("--config", str(path))
    assert result.returncode == EXIT_CONFIG
    assert "connectors[1].phases: expected an integer" in result.stderr


def test_daemon_exits_78_on_missing_file(tmp_path: Path) -> None:
    result = _run_daemon("--config", str(tmp_path / "nope.toml"))
    assert result.returncode == EXIT_CONFIG
    assert "nope.toml: file not found" in result.stderr


def test_example_file_parses_and_lists_every_key() -> None:
    load_config(EXAMPLE)
    data = tomllib.loads(EXAMPLE.read_text())

    def leaves(table: dict[str, object], prefix: str = "") -> set[str]:
        out: set[str] = set()
        for key, value in table.items():
            if isinstance(value, dict):
                out |= leaves(value, f"{prefix}{key}.")
            elif isinstance(value, list) and value and isinstance(value[0], dict):
                for item in value:  # [[connectors]]: every table lists every key
                    assert leaves(item) == leaves(value[0]), key
                out |= leaves(value[0], f"{prefix}{key}.")
            else:
                out.add(f"{prefix}{key}")
        return out

    assert leaves(data) == set(config_keys())


def test_example_file_documents_every_key() -> None:
    lines = EXAMPLE.read_text().splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^\w+ = ", line):
            above = lines[i - 1]
            documented = above.startswith("#") or re.match(r"^\w+ = ", above)
            assert documented, f"key on line {i + 1} has no comment above it: {line}"


def test_daemon_exits_78_on_a_broken_custom_meter_map(tmp_path: Path) -> None:
    bad_map = tmp_path / "meter.toml"
    bad_map.write_text('energy_import = { address = 72, datatype = "float64" }\n')
    path = write(
        tmp_path,
        MINIMAL.replace('kind = "sim"', 'kind = "hardware"')
        + f'[[connectors]]\n[connectors.meter]\nmodel = "custom"\nmap_file = "{bad_map}"\n',
    )
    text = path.read_text().replace('id = "cp-1"', f'id = "cp-1"\nstate_dir = "{tmp_path}"')
    path.write_text(text)
    result = _run_daemon("--config", str(path))
    assert result.returncode == EXIT_CONFIG
    assert "connectors[1].meter.map_file" in result.stderr
    assert "meter.toml" in result.stderr


def test_custom_meter_model_needs_a_map_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"connectors\[1\]\.meter\.map_file: required when"):
        load_config(
            write(tmp_path, MINIMAL + '[[connectors]]\n[connectors.meter]\nmodel = "custom"\n')
        )


TWIN = (
    MINIMAL
    + """
[[connectors]]
id = 1
[connectors.meter]
device_id = 1
[connectors.contactor]
pin = 17
feedback_pin = 27

[[connectors]]
id = 2
[connectors.meter]
device_id = 2
[connectors.contactor]
pin = 22
feedback_pin = 23
"""
)


def test_a_twin_socket_charger_is_two_connector_tables(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, TWIN))
    assert [c.id for c in config.connectors] == [1, 2]
    # Two meters on one RS-485 line (the default serial port), device ids 1 and 2.
    assert {c.meter.serial_port for c in config.connectors} == {"/dev/ttyUSB0"}
    assert [c.meter.device_id for c in config.connectors] == [1, 2]


@pytest.mark.parametrize(
    ("change", "key", "problem"),
    [
        (("\nid = 2\n", "\nid = 1\n"), "connectors[2].id", "used twice"),
        (("\nid = 2\n", "\nid = 3\n"), "connectors", "must be 1..2"),
        (("pin = 22", "pin = 17"), "connectors[2].contactor.pin", "GPIO 17 is already used"),
        (("device_id = 2", "device_id = 1"), "connectors[2].meter.device_id", "already used"),
        (
            ("device_id = 2", "device_id = 2\nbaudrate = 19200"),
            "connectors[2].meter.baudrate",
            "share one RS-485 line",
        ),
        (("device_id = 2", "device_id = 0"), "connectors[2].meter.device_id", "1..247"),
        (("feedback_pin = 23", "feedback_pin = 22"), "connectors[2].contactor.feedback_pin", ""),
    ],
)
def test_connector_errors_name_the_connector(
    tmp_path: Path, change: tuple[str, str], key: str, problem: str
) -> None:
    text = TWIN.replace(*change)
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert info.value.key == key
    assert problem in info.value.problem


def test_a_connector_list_must_not_be_empty_or_a_plain_table(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"connectors: needs at least one table"):
        load_config(write(tmp_path, "connectors = []\n" + MINIMAL))
    with pytest.raises(ConfigError, match=r"connectors: expected tables"):
        load_config(write(tmp_path, MINIMAL + "[connectors]\nid = 1\n"))


def test_daemon_exits_78_naming_the_connector(tmp_path: Path) -> None:
    path = write(tmp_path, TWIN.replace("device_id = 2", "device_id = 1"))
    result = _run_daemon("--config", str(path))
    assert result.returncode == EXIT_CONFIG
    assert "connectors[2].meter.device_id" in result.stderr


SITE = "\n[charging]\nsite_fuse_a = 25.0\n"


def test_load_management_is_a_fuse_and_a_site_meter(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, TWIN + SITE))
    assert config.load_management
    # By default the site meter shares the connectors' RS-485 line at its own device id.
    assert config.site_meter.device_id == 10
    assert config.site_meter.serial_port == config.connectors[0].meter.serial_port
    assert config.charging.site_fallback_current_a == 6.0
    assert not load_config(write(tmp_path, TWIN)).load_management


@pytest.mark.parametrize(
    ("extra", "key", "problem"),
    [
        ("\n[site_meter]\ndevice_id = 2\n", "site_meter.device_id", "connectors[2].meter"),
        ("\n[site_meter]\nbaudrate = 19200\n", "site_meter.baudrate", "share one RS-485 line"),
        ("\n[site_meter]\ndevice_id = 300\n", "site_meter.device_id", "1..247"),
        ('\n[site_meter]\nmodel = "custom"\n', "site_meter.map_file", "custom"),
    ],
)
def test_site_meter_errors_name_the_key(tmp_path: Path, extra: str, key: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, TWIN + SITE + extra))
    assert info.value.key == key
    assert problem in info.value.problem


@pytest.mark.parametrize(
    ("charging", "key"),
    [
        ("site_fuse_a = 4.0", "charging.site_fuse_a"),
        ("site_fuse_a = 25.0\nsite_fallback_current_a = -1.0", "charging.site_fallback_current_a"),
        ("site_fuse_a = 25.0\nsite_fallback_current_a = 30.0", "charging.site_fallback_current_a"),
    ],
)
def test_site_fuse_and_fallback_are_checked(tmp_path: Path, charging: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, TWIN + f"\n[charging]\n{charging}\n"))
    assert info.value.key == key


def test_a_site_meter_is_not_checked_without_load_management(tmp_path: Path) -> None:
    # The same device id as connector 2's meter: harmless while no site meter is read.
    config = load_config(write(tmp_path, TWIN + "\n[site_meter]\ndevice_id = 2\n"))
    assert not config.load_management
