"""The command-line tools the RAUC sandbox and the image builders run (rauc, mkfs.ext4,
make-dev-keys), found also in /usr/sbin and /sbin, with their output in the error when they fail.

Development tooling; never used on a device.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from evsed.errors import EvsedError

RAUC_DIR = Path(__file__).resolve().parents[2] / "rauc"
MAKE_DEV_KEYS = RAUC_DIR / "make-dev-keys"
MiB = 1024 * 1024
_SBIN_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])


class RaucSandboxError(EvsedError):
    """The sandbox could not be set up or a tool it drives failed."""


def make_dev_keys(directory: Path) -> Path:
    """rauc/make-dev-keys DIRECTORY (keeps keys already there); the directory."""
    run_tool(str(MAKE_DEV_KEYS), str(directory))
    return directory


def sign_bundle(content: Path, output: Path, keys: Path) -> Path:
    """``rauc bundle`` of ``content`` (it writes into it: use a fresh one) with the signer in
    ``keys`` (a make-dev-keys directory)."""
    run_tool(
        "rauc",
        "bundle",
        f"--cert={keys / 'signing.cert.pem'}",
        f"--key={keys / 'signing.key.pem'}",
        f"--keyring={keys / 'ca.cert.pem'}",
        str(content),
        str(output),
    )
    return output


def find_tool(name: str) -> str:
    """Find a tool also in /usr/sbin and /sbin, which a non-root PATH often lacks."""
    path = shutil.which(name, path=_SBIN_PATH)
    if path is None:
        raise RaucSandboxError(f"{name} is not installed")
    return path


def run_tool(*command: str) -> None:
    result = subprocess.run(
        [find_tool(command[0]), *command[1:]], capture_output=True, text=True, timeout=120
    )
    if result.returncode != 0:
        raise RaucSandboxError(
            f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
        )


def write_os_release(root: Path, version: str) -> None:
    (root / "etc").mkdir(parents=True, exist_ok=True)
    (root / "etc" / "os-release").write_text(
        f'NAME="evsed sandbox"\nID=evsed-sandbox\nVERSION_ID={version}\n'
        f'PRETTY_NAME="evsed sandbox image {version}"\n'
    )


def write_random(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as out:
        for offset in range(0, size, MiB):
            out.write(os.urandom(min(MiB, size - offset)))


def mkfs_ext4(image: Path, size: int, source: Path | None) -> None:
    """An ext4 file system image of ``size`` bytes, filled from ``source`` if given."""
    with open(image, "wb") as out:
        out.truncate(size)
    run_tool("mkfs.ext4", "-q", "-F", *(["-d", str(source)] if source else []), str(image))
