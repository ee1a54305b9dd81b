"""The wheels, built for real: the device wheel holds evsed and hal only, the dev tools go apart.

DESIGN.md "Device package vs tools": the wheel built from the top-level pyproject.toml (which
the Yocto recipe will use) holds ``evsed`` and ``hal``; the development CSMS and the test tools
are the ``evsed-devcsms`` distribution in devcsms/. Both are built with the venv's setuptools,
without build isolation or an index, so nothing is fetched.

They are built from a copy of the source tree: setuptools builds in ``build/`` beside
pyproject.toml and never empties ``build/lib``, so a build in the work tree itself would write
into it and could pack files left there by an earlier build (a removed ``evsed/devcsms/``, say).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import PathDistribution
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: Not part of a source tree: VCS data, caches, build output, installed npm packages.
_NOT_SOURCE = {".git", "build", "dist", "node_modules", "__pycache__"}
_NOT_SOURCE |= {".mypy_cache", ".pytest_cache", ".ruff_cache"}


@dataclass(frozen=True)
class Wheel:
    dist_info: str  # the metadata folder, e.g. "evsed-0.1.0.dist-info"
    files: frozenset[str]  # every entry's path, "/"-separated
    console_scripts: dict[str, str]

    def top_level(self) -> set[str]:
        return {path.split("/")[0] for path in self.files}

    def modules(self) -> set[str]:
        return {path for path in self.files if path.endswith(".py")}


def _ignore_non_source(directory: str, names: list[str]) -> set[str]:
    here = Path(directory)
    return {
        name
        for name in names
        if name in _NOT_SOURCE
        or name.endswith(".egg-info")
        or (here / name / "pyvenv.cfg").exists()  # a virtualenv, whatever its name
    }


def _build(project: Path, out: Path) -> Wheel:
    offline = ["--no-deps", "--no-build-isolation", "--no-index"]
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", *offline, "--quiet", "-w", str(out), str(project)],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert result.returncode == 0, f"pip wheel {project} failed:\n{result.stdout}{result.stderr}"
    (path,) = out.glob("*.whl")
    with zipfile.ZipFile(path) as wheel:
        files = frozenset(wheel.namelist())
        (dist_info,) = {f.split("/")[0] for f in files if f.split("/")[0].endswith(".dist-info")}
        entry_points = PathDistribution(zipfile.Path(wheel, f"{dist_info}/")).entry_points
        assert entry_points.groups == {"console_scripts"}, entry_points
        scripts = {ep.name: ep.value for ep in entry_points}
    return Wheel(dist_info, files, scripts)


def _sources(*packages: Path) -> set[str]:
    """The modules under ``packages`` as wheel paths (relative to each package's parent)."""
    return {
        str(py.relative_to(package.parent)) for package in packages for py in package.rglob("*.py")
    }


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Wheel]:
    """Build the wheel of the project in ``subdir`` of a fresh copy of the source tree."""
    tmp = tmp_path_factory.mktemp("packaging")
    source = tmp / "src"
    shutil.copytree(ROOT, source, ignore=_ignore_non_source, symlinks=True)

    def wheel_of(subdir: str) -> Wheel:
        return _build(source / subdir, tmp / "out" / (subdir or "root"))

    return wheel_of


@pytest.fixture(scope="module")
def device_wheel(build: Callable[[str], Wheel]) -> Wheel:
    return build("")


@pytest.fixture(scope="module")
def devcsms_wheel(build: Callable[[str], Wheel]) -> Wheel:
    return build("devcsms")


def test_device_wheel_holds_evsed_and_hal_only(device_wheel: Wheel) -> None:
    assert device_wheel.dist_info.startswith("evsed-")
    assert device_wheel.top_level() == {"evsed", "hal", device_wheel.dist_info}
    assert not [p for p in device_wheel.files if p.startswith("evsed/devcsms/")]


def test_device_wheel_holds_every_module_of_evsed_and_hal(device_wheel: Wheel) -> None:
    """Nothing of the daemon or the HAL is left out of it."""
    assert device_wheel.modules() == _sources(ROOT / "evsed", ROOT / "hal")


def test_device_wheel_installs_evsed_and_evsectl_only(device_wheel: Wheel) -> None:
    assert device_wheel.console_scripts == {
        "evsed": "evsed.__main__:main",
        "evsectl": "evsed.control.cli:main",
    }


def test_devcsms_wheel_holds_the_dev_csms_and_the_tools(devcsms_wheel: Wheel) -> None:
    assert devcsms_wheel.dist_info.startswith("evsed_devcsms-")
    assert devcsms_wheel.top_level() == {"evsed_devcsms", "evsed_devtools", devcsms_wheel.dist_info}
    packages = ROOT / "devcsms" / "evsed_devcsms", ROOT / "devcsms" / "evsed_devtools"
    assert devcsms_wheel.modules() == _sources(*packages)
    assert devcsms_wheel.console_scripts == {"evsed-devcsms": "evsed_devcsms.__main__:main"}
