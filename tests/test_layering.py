"""Architecture rules that keep the layers apart (DESIGN.md: three tiers, one process)."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def imported_modules(package: str) -> dict[Path, set[str]]:
    found: dict[Path, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
        found[path] = names
    assert found, f"no Python files under {package}/"  # a moved package must not pass unseen
    return found


def test_hal_never_imports_evsed() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(n for n in names if n.split(".")[0] == "evsed")
        for path, names in imported_modules("hal").items()
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_device_package_never_imports_the_dev_tools() -> None:
    """evsed/ and hal/ are the device wheel; the dev CSMS and the test tools (devcsms/) are never
    installed on a charger (DESIGN.md: device package vs tools)."""
    dev_roots = {"evsed_devcsms", "evsed_devtools"}
    offenders = {
        str(path.relative_to(ROOT)): sorted(n for n in names if n.split(".")[0] in dev_roots)
        for package in ("evsed", "hal")
        for path, names in imported_modules(package).items()
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_dev_csms_does_not_use_the_test_tools() -> None:
    """The harness drives the CSMS, not the other way round."""
    offenders = {
        str(path.relative_to(ROOT)): sorted(n for n in names if n.split(".")[0] == "evsed_devtools")
        for path, names in imported_modules("devcsms/evsed_devcsms").items()
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_charging_core_is_pure() -> None:
    """The state machine does no I/O: it imports nothing but the stdlib basics and hal types."""
    allowed_roots = {"__future__", "dataclasses", "enum", "evsed", "hal", "typing"}
    for path, names in imported_modules("evsed/charging").items():
        for name in names:
            assert name.split(".")[0] in allowed_roots, f"{path.name} imports {name}"
            if name.startswith("hal"):
                assert name == "hal.types", f"{path.name} imports {name}"
            if name.startswith("evsed"):
                assert name.startswith("evsed.charging"), f"{path.name} imports {name}"


def test_hal_types_and_sim_import_without_evsed_loaded() -> None:
    code = (
        "import sys, hal.types, hal.interfaces, hal.sim.world, hal.serial_pilot, "
        "hal.modbus_meter, hal.gpio_contactor\n"
        "assert not [m for m in sys.modules if m == 'evsed' or m.startswith('evsed.')]"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
