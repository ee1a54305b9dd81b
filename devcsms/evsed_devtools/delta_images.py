"""Two releases of a root file system that differ in a known share of blocks, as full and
delta (casync) bundles: what the delta-update tests and ``bench/delta_update.py`` install.

Development tooling; never used on a device. An image is an ext4 file system with 4 KiB blocks
(no journal, few inodes, so the data lies in one extent) holding ``/etc/os-release`` with the
release's ``VERSION_ID`` and one payload file of random bytes. The next release rewrites a
share of the image's blocks inside the payload, in runs of ``run_blocks`` blocks (an update
rewrites files: a library, the application, a kernel module; ``run_blocks=1`` scatters single
blocks, the worst case for chunking) and is built again with ``mkfs.ext4``, so its metadata
(UUID, time stamps) differs too, as a rebuilt image does.

Bundles are signed with keys from rauc/make-dev-keys; delta bundles are made by
rauc/make-delta-bundle.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from evsed_devtools.rauc_tools import (
    RAUC_DIR,
    MiB,
    RaucSandboxError,
    run_tool,
    sign_bundle,
    write_os_release,
)

MAKE_DELTA_BUNDLE = RAUC_DIR / "make-delta-bundle"
BLOCK = 4096
PAYLOAD = "var/lib/evsed-sandbox-payload.bin"


@dataclass(frozen=True)
class DeltaBundle:
    bundle: Path  # the casync bundle
    store: Path  # its chunk store directory, NAME.castr beside it

    @property
    def store_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.store.rglob("*.cacnk"))


def payload_size(image_size: int) -> int:
    """Bytes of payload that fit an image of ``image_size`` (room left for ext4's metadata)."""
    return image_size - max(2 * MiB, image_size // 16)


def random_payload(size: int, seed: int) -> bytearray:
    return bytearray(random.Random(seed).randbytes(size))


def change_blocks(
    payload: bytes | bytearray, blocks: int, *, seed: int, run_blocks: int = 16
) -> tuple[bytearray, int]:
    """A copy of ``payload`` with about ``blocks`` 4 KiB blocks rewritten, in runs of
    ``run_blocks`` at random places; returns it and the number of distinct blocks changed."""
    rng = random.Random(seed)
    changed = bytearray(payload)
    total = len(payload) // BLOCK
    run_blocks = max(1, min(run_blocks, total))
    touched: set[int] = set()
    while len(touched) < min(blocks, total):
        first = rng.randrange(total - run_blocks + 1)
        for block in range(first, first + run_blocks):
            if block not in touched:
                start = block * BLOCK
                changed[start : start + BLOCK] = rng.randbytes(BLOCK)
                touched.add(block)
    return changed, len(touched)


def make_image(path: Path, version: str, payload: bytes | bytearray, size: int = 64 * MiB) -> Path:
    """An ext4 image of ``size`` bytes with os-release saying ``version`` and ``payload``."""
    with tempfile.TemporaryDirectory(prefix="rootfs-") as tmp:
        root = Path(tmp)
        write_os_release(root, version)
        (root / PAYLOAD).parent.mkdir(parents=True)
        (root / PAYLOAD).write_bytes(payload)
        with open(path, "wb") as out:
            out.truncate(size)
        run_tool(
            "mkfs.ext4",
            *("-q", "-F", "-b", str(BLOCK), "-N", "64", "-m", "0", "-O", "^has_journal"),
            *("-d", str(root), str(path)),
        )
    return path


def bundle_image(
    image: Path,
    version: str,
    output: Path,
    keys: Path,
    *,
    compatible: str = "evsed-sim",
    bundle_format: Literal["plain", "verity"] = "plain",
) -> Path:
    """A signed full bundle of ``image`` as the slot class ``rootfs`` (keys: make-dev-keys DIR)."""
    with tempfile.TemporaryDirectory(prefix="bundle-") as tmp:  # rauc writes into its input
        content = Path(tmp)
        shutil.copyfile(image, content / "rootfs.ext4")
        (content / "manifest.raucm").write_text(
            f"[update]\ncompatible={compatible}\nversion={version}\n\n"
            f"[bundle]\nformat={bundle_format}\n\n[image.rootfs]\nfilename=rootfs.ext4\n"
        )
        output.unlink(missing_ok=True)
        return sign_bundle(content, output, keys)


def make_delta(bundle: Path, output: Path, keys: Path, *, chunk_size: str = "") -> DeltaBundle:
    """rauc/make-delta-bundle: ``output`` (a casync bundle) and ``output``'s ``.castr`` store."""
    store = output.with_suffix(".castr")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.unlink(missing_ok=True)
    shutil.rmtree(store, ignore_errors=True)
    result = subprocess.run(
        [
            str(MAKE_DELTA_BUNDLE),
            f"--cert={keys / 'signing.cert.pem'}",
            f"--key={keys / 'signing.key.pem'}",
            f"--keyring={keys / 'ca.cert.pem'}",
            *([f"--chunk-size={chunk_size}"] if chunk_size else []),
            str(bundle),
            str(output),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode != 0:
        raise RaucSandboxError(f"make-delta-bundle failed:\n{result.stdout}{result.stderr}")
    return DeltaBundle(output, store)


def chunk_ids(image: Path, work: Path, *, chunk_size: str = "") -> set[str]:
    """The casync chunk ids of ``image`` (what a slot holding it offers as seed)."""
    with tempfile.TemporaryDirectory(dir=work, prefix="chunks-") as tmp:
        store = Path(tmp) / "store"
        run_tool(
            "casync",
            "make",
            f"--store={store}",
            *([f"--chunk-size={chunk_size}"] if chunk_size else []),
            str(Path(tmp) / "image.caibx"),
            str(image),
        )
        return {p.name.removesuffix(".cacnk") for p in store.rglob("*.cacnk")}
