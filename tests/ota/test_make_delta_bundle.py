"""rauc/make-delta-bundle with the real rauc and casync: plain and verity bundles in, a signed
casync bundle and its chunk store out, from which casync rebuilds the image exactly."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path
from typing import Literal

import pytest

if shutil.which("rauc") is None or shutil.which("casync") is None:
    pytest.skip("rauc or casync missing (make test installs them as root)", allow_module_level=True)

from evsed_devtools.delta_images import (
    MAKE_DELTA_BUNDLE,
    bundle_image,
    make_delta,
    make_image,
    payload_size,
    random_payload,
)
from evsed_devtools.rauc_tools import MiB, RaucSandboxError, make_dev_keys, run_tool

SIZE = 8 * MiB


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("make-delta")
    for signer in ("dev", "other"):
        make_dev_keys(work / "keys" / signer)
    make_image(work / "rootfs.img", "2.0.0", random_payload(payload_size(SIZE), 7), SIZE)
    return work


def _rauc(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["rauc", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("bundle_format", ["plain", "verity"])
def test_converts_a_signed_bundle_into_a_signed_casync_bundle_and_store(
    work: Path, bundle_format: Literal["plain", "verity"]
) -> None:
    keys = work / "keys" / "dev"
    full = bundle_image(
        work / "rootfs.img",
        "2.0.0",
        work / f"{bundle_format}.raucb",
        keys,
        bundle_format=bundle_format,
    )
    delta = make_delta(full, work / bundle_format / "evsed-2.0.0.raucb", keys)
    assert delta.store == work / bundle_format / "evsed-2.0.0.castr"
    assert delta.bundle.stat().st_size < full.stat().st_size / 50
    assert delta.store_bytes > SIZE / 2  # random content: the chunks barely compress

    info = _rauc("info", f"--keyring={keys / 'ca.cert.pem'}", str(delta.bundle))
    assert info.returncode == 0, info.stderr
    assert f"Bundle Format: \t{bundle_format}" in info.stdout
    assert "rootfs.ext4.caibx" in info.stdout
    # Signed: a keyring without our CA refuses it.
    other = _rauc("info", f"--keyring={work / 'keys/other/ca.cert.pem'}", str(delta.bundle))
    assert other.returncode != 0

    # casync rebuilds the image from the index and the store alone (no seed).
    extracted = work / bundle_format / "extracted"
    unpacked = _rauc(
        "extract", f"--keyring={keys / 'ca.cert.pem'}", str(delta.bundle), str(extracted)
    )
    assert unpacked.returncode == 0, unpacked.stderr
    rebuilt = work / bundle_format / "rebuilt.img"
    run_tool(
        "casync",
        "extract",
        f"--store={delta.store}",
        str(extracted / "rootfs.ext4.caibx"),
        str(rebuilt),
    )
    digest = hashlib.sha256
    assert (
        digest(rebuilt.read_bytes()).digest() == digest((work / "rootfs.img").read_bytes()).digest()
    )


def test_refuses_a_bundle_the_keyring_does_not_trust(work: Path) -> None:
    foreign = bundle_image(
        work / "rootfs.img", "2.0.0", work / "foreign.raucb", work / "keys/other"
    )
    with pytest.raises(RaucSandboxError, match="rauc convert failed"):
        make_delta(foreign, work / "foreign" / "evsed-2.0.0.raucb", work / "keys" / "dev")
    assert not (work / "foreign" / "evsed-2.0.0.raucb").exists()


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        ([], 2, "usage"),
        (["--cert=c", "--key=k", "in.raucb", "out.raucb"], 2, "usage"),
        (["--cert=c", "--key=k", "--keyring=r", "missing.raucb", "out.raucb"], 1, "no bundle"),
        (
            ["--cert=c", "--key=k", "--keyring=r", "--chunk-size=64k", "x", "y.raucb"],
            1,
            "MIN:AVG:MAX",
        ),
    ],
)
def test_bad_arguments(work: Path, args: list[str], code: int, message: str) -> None:
    (work / "x").touch()
    result = subprocess.run(
        [str(MAKE_DELTA_BUNDLE), *args], cwd=work, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == code
    assert message in result.stderr


def test_an_output_not_named_raucb_is_refused(work: Path) -> None:
    (work / "x").touch()
    keys = work / "keys" / "dev"
    result = subprocess.run(
        [
            str(MAKE_DELTA_BUNDLE),
            f"--cert={keys / 'signing.cert.pem'}",
            f"--key={keys / 'signing.key.pem'}",
            f"--keyring={keys / 'ca.cert.pem'}",
            str(work / "x"),
            str(work / "out.bin"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "must end in .raucb" in result.stderr
