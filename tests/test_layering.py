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
        "hal.modbus_meter, hal.modbus_bus, hal.gpio_contactor\n"
        "assert not [m for m in sys.modules if m == 'evsed' or m.startswith('evsed.')]"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def _package_modules(*packages: str) -> dict[Path, set[str]]:
    found: dict[Path, set[str]] = {}
    for package in packages:
        found |= imported_modules(package)
    return found


def test_only_the_adapter_registry_imports_an_ocpp_version() -> None:
    """The daemon picks the adapter for ``csms.protocol`` in evsed/ocpp/adapters.py; nothing
    else outside a version's own package names it (adding 2.0.1 must not touch them)."""
    allowed = {ROOT / "evsed" / "ocpp" / "adapters.py"}
    offenders = {
        str(path.relative_to(ROOT)): sorted(n for n in names if n.startswith("evsed.ocpp.v16"))
        for path, names in imported_modules("evsed").items()
        if "v16" not in path.parts and path not in allowed
    }
    assert {k: v for k, v in offenders.items() if v} == {}
    registry = (ROOT / "evsed" / "ocpp" / "adapters.py").read_text()
    assert '"evsed.ocpp.v16.adapter"' in registry


def test_clients_of_the_charger_see_its_port_not_a_runner() -> None:
    """ocpp/, ota/ and control/ use evsed.port; none imports the connector runner, the charger
    class or the hardware (the HAL's plain value types aside)."""
    forbidden = ("evsed.connector", "evsed.charger", "evsed.hardware")
    for path, names in _package_modules("evsed/ocpp", "evsed/ota", "evsed/control").items():
        for name in names:
            assert not name.startswith(forbidden), f"{path.relative_to(ROOT)} imports {name}"
            if name.startswith("hal"):
                assert name == "hal.types" or name.startswith("hal.sim"), (path, name)


def _ocpp_actions() -> set[str]:
    from ocpp.v16.enums import Action as V16Action
    from ocpp.v201.enums import Action as V201Action

    return {str(a.value) for a in V16Action} | {str(a.value) for a in V201Action}


def _names_and_strings(path: Path) -> set[str]:
    """Identifiers and string constants of a module, docstrings left out."""
    tree = ast.parse(path.read_text(), str(path))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if id(node) not in docstrings:
                found.add(node.value)
        elif isinstance(node, ast.Name):
            found.add(node.id)
        elif isinstance(node, ast.Attribute):
            found.add(node.attr)
    return found


def test_the_core_packages_name_no_ocpp_action() -> None:
    """charging/, ota/, control/ and store/ are version-neutral: no OCPP action name in their
    code (the OCPP client of each version turns their reports into its messages)."""
    actions = _ocpp_actions()
    for package in ("evsed/charging", "evsed/ota", "evsed/control", "evsed/store"):
        for path in sorted((ROOT / package).rglob("*.py")):
            named = _names_and_strings(path) & actions
            assert not named, f"{path.relative_to(ROOT)} names OCPP actions {sorted(named)}"


def test_the_charger_tier_modules_of_operator_features_are_version_neutral() -> None:
    """Reservations, the price board, the fault history and the display feed hold no OCPP:
    no import of an OCPP package, no action name (the 1.6 adapter turns them into messages)."""
    actions = _ocpp_actions()
    for name in ("reservations.py", "pricing.py", "fault_log.py", "control/display.py"):
        path = ROOT / "evsed" / name
        imported = imported_modules("evsed")[path]
        assert not [m for m in imported if m.startswith(("evsed.ocpp", "ocpp"))], (name, imported)
        named = _names_and_strings(path) & actions
        assert not named, f"{name} names OCPP actions {sorted(named)}"


def test_diagnostics_and_uploads_are_version_neutral() -> None:
    """The diagnostics archive, the upload state and the uploader hold no OCPP: no import of
    an OCPP package, no action name (GetDiagnostics and GetLog are the 1.6 adapter's)."""
    actions = _ocpp_actions()
    paths = [ROOT / "evsed" / "upload.py", *sorted((ROOT / "evsed" / "diagnostics").glob("*.py"))]
    modules = imported_modules("evsed")
    for path in paths:
        imported = modules[path]
        assert not [m for m in imported if m.startswith(("evsed.ocpp", "ocpp"))], (path, imported)
        named = _names_and_strings(path) & actions
        assert not named, f"{path.relative_to(ROOT)} names OCPP actions {sorted(named)}"
