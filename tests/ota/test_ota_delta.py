"""Delta firmware updates end to end: real rauc, real casync, real signed bundles.

A 64 MiB root file system image (release 1.0.0) is in slot A; release 2.0.0 has 1 % of its
blocks rewritten. Both the full bundle and its casync conversion (rauc/make-delta-bundle) are
built once for the module. The daemon runs as a process against the development CSMS, which
serves the bundle and its chunk store over HTTP on 127.0.0.1 and counts the bytes it sends; the
RAUC service runs on a private D-Bus with file-backed A/B slots, its casync pointed at the
daemon's chunk relay (``[casync] install-args=--store=http://127.0.0.1:PORT/``). Only the
bootloader and the reboot are emulated.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from evsed_devtools.harness import DevCsms, free_port, wait_for

if shutil.which("rauc") is None or shutil.which("casync") is None:
    pytest.skip("rauc or casync missing (make test installs them as root)", allow_module_level=True)

from evsed_devtools.delta_images import (
    DeltaBundle,
    bundle_image,
    change_blocks,
    chunk_ids,
    make_delta,
    make_image,
    payload_size,
    random_payload,
)
from evsed_devtools.ota_rig import (
    OtaRig,
    make_signer,
    signed_statuses,
    signed_update,
    wait_final,
)
from evsed_devtools.rauc_sandbox import RaucSandbox
from evsed_devtools.rauc_tools import MiB, make_dev_keys

IMAGE_SIZE = 64 * MiB
CHANGED_BLOCKS = IMAGE_SIZE // 4096 // 100  # 1 %
NAME = "evsed-2.0.0"
STORE = f"{NAME}.castr/"
FINAL = {"Installed", "InstallationFailed"}
FAILED_INSTALL = ["Downloading", "Downloaded", "Installing", "InstallationFailed"]


def _sha256(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


@dataclass(frozen=True)
class Release:
    keys: Path  # make-dev-keys output for "dev" (in the keyring) and "other" (not)
    v1: Path  # the image in slot A
    v2: Path  # the image the update must leave in slot B
    full: Path  # full bundle of v2
    delta: DeltaBundle  # casync bundle of v2 and its store, signed by "dev"
    foreign: DeltaBundle  # the same, signed by a CA the device does not trust
    needed: frozenset[str]  # chunk ids of the store that slot A cannot seed


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Release:
    work = tmp_path_factory.mktemp("delta-release")
    keys = work / "keys"
    for signer in ("dev", "other"):
        make_dev_keys(keys / signer)
    first = random_payload(payload_size(IMAGE_SIZE), seed=1)
    second, changed = change_blocks(first, CHANGED_BLOCKS, seed=2)
    assert changed >= CHANGED_BLOCKS
    v1 = make_image(work / "v1.img", "1.0.0", first, IMAGE_SIZE)
    v2 = make_image(work / "v2.img", "2.0.0", second, IMAGE_SIZE)
    full = bundle_image(v2, "2.0.0", work / f"{NAME}-full.raucb", keys / "dev")
    delta = make_delta(full, work / "dev" / f"{NAME}.raucb", keys / "dev")
    foreign_full = bundle_image(v2, "2.0.0", work / "foreign-full.raucb", keys / "other")
    foreign = make_delta(foreign_full, work / "other" / f"{NAME}.raucb", keys / "other")
    stored = {p.name.removesuffix(".cacnk") for p in delta.store.rglob("*.cacnk")}
    needed = frozenset(stored - chunk_ids(v1, work))
    assert len(needed) >= 4, "the update must need some chunks for these tests to mean much"
    return Release(keys, v1, v2, full, delta, foreign, needed)


@dataclass
class DeltaRig:
    ota: OtaRig
    release: Release

    def serve(self, delta: DeltaBundle) -> str:
        """Put the casync bundle and its store on the CSMS's file server; the bundle's URL."""
        shutil.copy(delta.bundle, self.ota.files / delta.bundle.name)
        shutil.copytree(delta.store, self.ota.files / delta.store.name)
        return f"{self.ota.csms.http_url}/files/{delta.bundle.name}"

    def store_fault(self, mode: str, after: int = 0) -> None:
        self.ota.csms.api("/api/files/faults", {"prefix": STORE, "mode": mode, "after": after})

    def chunk_requests(self) -> dict[str, int]:
        served = self.ota.csms.api(f"/api/files/served?prefix={STORE}")
        return {path: entry["requests"] for path, entry in served["paths"].items()}

    def slots_untouched(self) -> None:
        """Slot A still holds release 1.0.0, is booted and stays the one to boot."""
        status = self.ota.sandbox.status()
        assert status["booted"] == "A"
        assert status["boot_primary"] == "rootfs.0"
        assert self.ota.sandbox.slot_sha256("A", IMAGE_SIZE) == _sha256(self.release.v1)
        assert self.ota.slots()["B"]["boot_status"] == "bad"  # RAUC never made it bootable


@pytest.fixture
def rig(tmp_path: Path, release: Release) -> Iterator[DeltaRig]:
    files = tmp_path / "files"
    files.mkdir()
    port = free_port()
    box = RaucSandbox(
        tmp_path / "rauc",
        slot_size=IMAGE_SIZE,
        casync_store=f"http://127.0.0.1:{port}/",
    )
    shutil.copytree(release.keys, box.keys_dir)  # make-dev-keys keeps existing keys
    with box:
        box.create()
        box.flash("A", release.v1)
        box.start_service("A")
        csms = DevCsms.start(tmp_path, "--files", str(files), "--heartbeat-interval", "300")
        try:
            ota = OtaRig(tmp_path, box, csms, files, tmp_path / "reboot-requested")
            ota.overrides = {"ota": {"casync_relay_port": port}}
            yield DeltaRig(ota, release)
        finally:
            csms.stop()


def _install_and_reboot(rig: DeltaRig, location: str, **update: Any) -> None:
    evsed = rig.ota.start()
    evsed.wait_registered()
    rig.ota.update(location, **update)
    assert rig.ota.rebooted(evsed) == "B"


def test_delta_update_fetches_under_a_tenth_of_the_full_bundle_and_boots_the_new_content(
    rig: DeltaRig, release: Release
) -> None:
    _install_and_reboot(rig, rig.serve(release.delta))
    evsed = rig.ota.start()
    try:
        statuses = wait_final(rig.ota, FINAL)
        assert statuses == ["Downloading", "Downloaded", "Installing", "Installed"]
        assert evsed.status()["firmware"]["version"] == "2.0.0"
    finally:
        assert evsed.stop() == 0
    assert rig.ota.sandbox.slot_sha256("B", IMAGE_SIZE) == _sha256(release.v2)
    assert rig.ota.sandbox.slot_sha256("A", IMAGE_SIZE) == _sha256(release.v1)
    assert rig.ota.slots()["B"]["boot_status"] == "good"
    served = rig.ota.served(NAME)  # the bundle and the chunks of its store
    full = release.full.stat().st_size
    assert rig.ota.served(STORE) > 0
    assert served < full / 10, f"{served} bytes served for a {full}-byte full bundle"
    # Each chunk the slot lacked was fetched exactly once; nothing the seed had.
    requests = rig.chunk_requests()
    assert set(requests.values()) == {1}
    assert {Path(p).name.removesuffix(".cacnk") for p in requests} <= release.needed
    assert "delta update installed" in evsed.log()


def test_a_store_that_disappears_halfway_fails_the_install_and_keeps_the_old_slot(
    rig: DeltaRig, release: Release
) -> None:
    location = rig.serve(release.delta)
    rig.store_fault("gone", after=len(release.needed) // 2)
    evsed = rig.ota.start()
    try:
        evsed.wait_registered()
        rig.ota.update(location, retries=1, interval=1)
        assert wait_final(rig.ota, FINAL) == FAILED_INSTALL
        assert evsed.proc.poll() is None  # no reboot
        assert "after 2 attempts" in evsed.log()
        assert "HTTP 404" in evsed.log()
    finally:
        assert evsed.stop() == 0
    rig.slots_untouched()
    # The retry asked the store only for what the first attempt had not received.
    assert set(rig.chunk_requests().values()) == {1}


def test_a_store_back_for_the_retry_completes_a_signed_update_fetching_only_the_rest(
    rig: DeltaRig, release: Release
) -> None:
    signer = make_signer("maker")
    root = rig.ota.workdir / "maker-root.pem"
    root.write_text(signer.root_pem)
    location = rig.serve(release.delta)
    rig.store_fault("gone", after=len(release.needed) // 2)
    evsed = rig.ota.start(ota={"manufacturer_root": str(root)})
    evsed.wait_registered()
    answer = signed_update(
        rig.ota, 5, location, signer.cert_pem, signer.sign(release.delta.bundle), retry_s=3
    )
    assert answer["result"]["status"] == "Accepted"
    wait_for(lambda: "delta install attempt 1 failed" in evsed.log(), 60, "a failed attempt")
    rig.store_fault("normal")
    assert rig.ota.rebooted(evsed) == "B"
    evsed = rig.ota.start(ota={"manufacturer_root": str(root)})
    try:
        wait_for(lambda: signed_statuses(rig.ota)[-1:] == [("Installed", 5)], 60, "Installed")
    finally:
        assert evsed.stop() == 0
    assert signed_statuses(rig.ota) == [
        (status, 5)
        for status in (
            "Downloading",
            "Downloaded",
            "SignatureVerified",
            "Installing",
            "InstallRebooting",
            "Installed",
        )
    ]
    assert rig.ota.sandbox.slot_sha256("B", IMAGE_SIZE) == _sha256(release.v2)
    assert set(rig.chunk_requests().values()) == {1}
    assert rig.ota.served(NAME) < release.full.stat().st_size / 10


def test_a_tampered_chunk_fails_the_install_and_nothing_is_committed(
    rig: DeltaRig, release: Release
) -> None:
    location = rig.serve(release.delta)
    # One chunk the update needs is replaced by another valid chunk: its content no longer
    # matches the id the index names.
    victim, other = sorted(release.needed)[:2]
    store = rig.ota.files / release.delta.store.name
    (store / victim[:4] / f"{victim}.cacnk").write_bytes(
        (store / other[:4] / f"{other}.cacnk").read_bytes()
    )
    evsed = rig.ota.start()
    try:
        evsed.wait_registered()
        rig.ota.update(location, retries=2, interval=1)
        assert wait_final(rig.ota, FINAL) == FAILED_INSTALL
        assert evsed.proc.poll() is None  # no reboot
        assert "casync extract" in evsed.log()
        assert "delta install attempt" not in evsed.log()  # tampering is not worth a retry
    finally:
        assert evsed.stop() == 0
    rig.slots_untouched()
    assert rig.ota.sandbox.slot_versions()["B"] is None  # RAUC recorded no install into B


def test_a_bundle_signed_by_an_unknown_key_is_refused_before_any_chunk_is_fetched(
    rig: DeltaRig, release: Release
) -> None:
    before = rig.ota.slots()
    location = rig.serve(release.foreign)
    evsed = rig.ota.start()
    try:
        evsed.wait_registered()
        rig.ota.update(location)
        assert wait_final(rig.ota, FINAL) == ["Downloading", "Downloaded", "InstallationFailed"]
        assert "signature" in evsed.log()
    finally:
        assert evsed.stop() == 0
    assert rig.ota.served(f"{NAME}.raucb") == release.foreign.bundle.stat().st_size
    assert rig.ota.served(STORE) == 0
    assert rig.ota.slots() == before
    assert rig.ota.sandbox.slot_sha256("A", IMAGE_SIZE) == _sha256(release.v1)


def test_with_delta_updates_turned_off_a_delta_bundle_is_refused_before_install(
    rig: DeltaRig, release: Release
) -> None:
    before = rig.ota.slots()
    location = rig.serve(release.delta)
    evsed = rig.ota.start(ota={"casync_relay_port": 0})
    try:
        evsed.wait_registered()
        rig.ota.update(location)
        assert wait_final(rig.ota, FINAL) == ["Downloading", "Downloaded", "InstallationFailed"]
        assert "casync_relay_port = 0" in evsed.log()
    finally:
        assert evsed.stop() == 0
    assert rig.ota.served(STORE) == 0
    assert rig.ota.slots() == before
