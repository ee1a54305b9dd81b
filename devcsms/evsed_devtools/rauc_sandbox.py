"""A real RAUC on a development machine: signed bundles, two slot images, an emulated bootloader.

Development tooling shared by the OTA tests and ``make demo-ota``; never used on a device.

Real (the machine's ``rauc``, Debian 1.8, unmodified): the RAUC service and its D-Bus API (on a
private session bus), the ``rauc`` command line, bundle creation and signing, the signature,
compatible and install-check hook checks of ``rauc install``, writing the image into the inactive
slot (an ext4 image file), RAUC's slot status (its central status file in the data directory) and
``rauc status mark-good|mark-bad|mark-active``. Bundles are ``format=plain``: verity bundles need
device-mapper, which this kind of machine lacks (a device uses verity).

Emulated: the bootloader and the reboot. ``rauc/sandbox-bootloader`` is RAUC's custom bootloader
backend; it keeps a U-Boot-like environment (``BOOT_ORDER``, ``BOOT_<slot>_LEFT``) and changes it
as RAUC's U-Boot backend does. :meth:`RaucSandbox.boot` stands for a reboot: it stops the RAUC
service, chooses a slot from that environment as U-Boot's RAUC boot script does (first slot in
``BOOT_ORDER`` with attempts left, counting one attempt down; none left: all reset) and starts
the service again with ``--override-boot-slot`` (a device's kernel command line ``rauc.slot=``).
One simplification, on by default: a slot RAUC has marked good boots without counting attempts
down (U-Boot counts every boot, and expects mark-good on every boot to reset the count); pass
``count_every_boot=True`` for U-Boot's behaviour. Nothing boots: slot images are written and read
(:meth:`RaucSandbox.image_version`), never run; the booted slot's /etc/os-release is copied to
``WORKDIR/os-release`` and given to the service (hence to rauc/hook.sh) as ``EVSED_OS_RELEASE``.

Keys come from rauc/make-dev-keys. ``rauc install`` needs root (RAUC loop-mounts the bundle),
as CI's ``make test`` has.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from evsed_devtools.harness import wait_for
from evsed_devtools.rauc_tools import (
    MAKE_DEV_KEYS,
    RAUC_DIR,
    MiB,
    RaucSandboxError,
    find_tool,
    mkfs_ext4,
    run_tool,
    sign_bundle,
    write_os_release,
    write_random,
)

__all__ = ["MAKE_DEV_KEYS", "RAUC_DIR", "MiB", "RaucSandbox", "RaucSandboxError", "sign_bundle"]

SYSTEM_CONF_TEMPLATE = RAUC_DIR / "system.conf.test.in"
BOOTLOADER_BACKEND = RAUC_DIR / "sandbox-bootloader"
BOOTLOADER_DIR_ENV = "EVSED_SANDBOX_BOOTLOADER_DIR"

SLOTS = ("A", "B")  # bootnames; RAUC's slot names are rootfs.0 and rootfs.1


@dataclass(frozen=True)
class BootloaderState:
    """The emulated bootloader's environment (see rauc/sandbox-bootloader)."""

    order: tuple[str, ...]
    attempts: dict[str, int]
    marked_good: dict[str, bool]
    booted: str | None


def slots_by_bootname(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``rauc status --output-format=json`` lists slots as one-key objects; key them by bootname."""
    slots: dict[str, dict[str, Any]] = {}
    for entry in status["slots"]:
        for name, slot in entry.items():
            slots[slot["bootname"]] = {"name": name, **slot}
    return slots


class RaucSandbox:
    """Two slots, keys, a system.conf, a private D-Bus session bus and the RAUC service."""

    def __init__(
        self,
        workdir: Path,
        *,
        compatible: str = "evsed-sim",
        initial_version: str = "1.0.0",
        boot_attempts: int = 3,
        count_every_boot: bool = False,
        slot_size: int = 16 * MiB,
        casync_store: str = "",
    ) -> None:
        """``casync_store``: where RAUC's casync fetches the chunks of a casync bundle (a device
        points it at evsed's chunk relay), given as ``[casync] install-args=--store=URL`` as
        on a device (see rauc/system.conf.pi4-uboot for why not ``storepath``)."""
        self.workdir = workdir
        self.compatible = compatible
        self.initial_version = initial_version
        self.boot_attempts = boot_attempts
        self.count_every_boot = count_every_boot
        self.slot_size = slot_size
        self.casync_store = casync_store
        self.system_conf = workdir / "system.conf"
        self.keys_dir = workdir / "keys"
        self.keyring = self.keys_dir / "dev" / "ca.cert.pem"
        self.data_dir = workdir / "data"
        self.mount_dir = workdir / "mnt"
        self.bootloader_dir = workdir / "bootloader"
        self.bundles_dir = workdir / "bundles"
        self.slot_devices = {"A": workdir / "rootfs.0.img", "B": workdir / "rootfs.1.img"}
        # The running system's /etc/os-release: the booted slot's, copied at every boot.
        self.os_release = workdir / "os-release"
        # More environment for the RAUC service, hence for bundle hooks (EVSED_MIN_FREE_MIB).
        self.service_env: dict[str, str] = {}
        self._bus: subprocess.Popen[str] | None = None
        self._bus_address = ""
        self._service: subprocess.Popen[bytes] | None = None
        self._bundle_numbers = count(1)

    # -- setting up ------------------------------------------------------------------------

    def create(self) -> RaucSandbox:
        """Make keys, slot images, system.conf and bootloader state; start the session bus."""
        for script in (BOOTLOADER_BACKEND, MAKE_DEV_KEYS):
            if not os.access(script, os.X_OK):
                raise RaucSandboxError(f"{script} is missing or not executable")
        for directory in (self.data_dir, self.mount_dir, self.bootloader_dir, self.bundles_dir):
            directory.mkdir(parents=True, exist_ok=True)
        run_tool(str(MAKE_DEV_KEYS), str(self.keys_dir / "dev"))
        # Another developer's keys: their CA is not in the keyring, so their bundles must fail
        # verification (same subject names as ours; the key identifiers tell them apart).
        run_tool(str(MAKE_DEV_KEYS), str(self.keys_dir / "other"))
        with tempfile.TemporaryDirectory(dir=self.workdir, prefix="slot-a-") as tmp:
            root = Path(tmp)
            write_os_release(root, self.initial_version)
            mkfs_ext4(self.slot_devices["A"], self.slot_size, root)
        mkfs_ext4(self.slot_devices["B"], self.slot_size, None)
        self._write_system_conf()
        self._write_bootloader_env(
            {
                "BOOT_ORDER": "A B",
                "BOOT_ATTEMPTS": str(self.boot_attempts),
                **{f"BOOT_{slot}_LEFT": str(self.boot_attempts) for slot in SLOTS},
                **{f"BOOT_{slot}_MARKED_GOOD": "1" for slot in SLOTS},
            }
        )
        self._start_bus()
        return self

    def _write_system_conf(self) -> None:
        text = SYSTEM_CONF_TEMPLATE.read_text()
        values = {
            "COMPATIBLE": self.compatible,
            "DATA_DIR": str(self.data_dir),
            "BOOTLOADER_BACKEND": str(BOOTLOADER_BACKEND),
            "KEYRING": str(self.keyring),
            "SLOT_A_DEVICE": str(self.slot_devices["A"]),
            "SLOT_B_DEVICE": str(self.slot_devices["B"]),
        }
        for name, value in values.items():
            text = text.replace(f"@{name}@", value)
        if self.casync_store:
            text += f"\n[casync]\ninstall-args=--store={self.casync_store}\n"
        self.system_conf.write_text(text)

    def _start_bus(self) -> None:
        with open(self.workdir / "dbus-daemon.log", "a") as log:
            self._bus = subprocess.Popen(
                ["dbus-daemon", "--session", "--nofork", "--print-address=1"],
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
        assert self._bus.stdout is not None
        self._bus_address = self._bus.stdout.readline().strip()
        if not self._bus_address:
            self._bus.wait(5)
            raise RaucSandboxError(f"dbus-daemon did not start (exit {self._bus.returncode})")

    def env(self) -> dict[str, str]:
        """The variables a process needs to reach this sandbox's RAUC service (merge them in)."""
        if not self._bus_address:
            raise RaucSandboxError("the sandbox has no session bus: call create() first")
        return {"DBUS_SESSION_BUS_ADDRESS": self._bus_address, "DBUS_STARTER_BUS_TYPE": "session"}

    def pids(self) -> list[int]:
        """PIDs of the processes the sandbox runs now (bus, service)."""
        return [p.pid for p in (self._bus, self._service) if p is not None and p.poll() is None]

    # -- the RAUC service and the emulated reboot -------------------------------------------

    def start_service(self, boot_slot: str | None = None) -> str:
        """Start ``rauc service`` as if booted into ``boot_slot``; return the booted bootname.

        Without ``boot_slot`` this is a power-on: the emulated bootloader chooses the slot and
        counts an attempt down. With it, the bootloader state is left alone.
        """
        if self._service is not None and self._service.poll() is None:
            raise RaucSandboxError("the RAUC service is already running")
        slot = boot_slot if boot_slot is not None else self._bootloader_choose()
        if slot not in SLOTS:
            raise RaucSandboxError(f"unknown boot slot {slot!r} (expected one of {SLOTS})")
        (self.bootloader_dir / "booted").write_text(slot + "\n")
        self.os_release.write_text(self._read_slot_file(slot, "/etc/os-release") or "")
        command = [
            "rauc",
            f"--conf={self.system_conf}",
            f"--mount={self.mount_dir}",
            "service",
            f"--override-boot-slot={slot}",
        ]
        env = {
            **os.environ,
            **self.env(),
            BOOTLOADER_DIR_ENV: str(self.bootloader_dir),
            # What rauc/hook.sh reads instead of the device's /etc/os-release and /data.
            "EVSED_OS_RELEASE": str(self.os_release),
            "EVSED_DATA_DIR": str(self.data_dir),
            **self.service_env,
        }
        with open(self.workdir / "rauc-service.log", "a") as log:
            self._service = subprocess.Popen(command, stdout=log, stderr=log, env=env)
        try:
            wait_for(self._service_answers, 15, "the RAUC service to answer `rauc status`")
        except (TimeoutError, RaucSandboxError):
            self.stop_service()
            raise
        return slot

    def _service_answers(self) -> bool:
        assert self._service is not None
        if self._service.poll() is not None:
            raise RaucSandboxError(
                f"rauc service exited with {self._service.returncode}:\n"
                + (self.workdir / "rauc-service.log").read_text()[-2000:]
            )
        return self.rauc("status", "--output-format=json", timeout=10).returncode == 0

    def stop_service(self) -> None:
        if self._service is None:
            return
        _stop(self._service)
        self._service = None

    def boot(self) -> str:
        """Emulate a reboot: stop the service, let the bootloader choose, start the service."""
        self.stop_service()
        return self.start_service()

    def _bootloader_choose(self) -> str:
        """U-Boot's RAUC boot script (RAUC contrib/uboot.sh) on the emulated environment."""
        env = self._read_bootloader_env()
        if not env["BOOT_ORDER"].split():
            env["BOOT_ORDER"] = " ".join(SLOTS)  # test -n "${BOOT_ORDER}" || setenv ...
        for _ in range(2):
            for slot in env["BOOT_ORDER"].split():
                left = int(env[f"BOOT_{slot}_LEFT"])
                if left <= 0:
                    continue
                if self.count_every_boot or env[f"BOOT_{slot}_MARKED_GOOD"] != "1":
                    left -= 1
                env[f"BOOT_{slot}_LEFT"] = str(left)
                self._write_bootloader_env(env)
                self._log_bootloader(f"boot {slot} (attempts left {left})")
                return slot
            # "No valid slot found, resetting tries to 3", then U-Boot resets the board.
            self._log_bootloader("boot: no slot has attempts left, all reset")
            for slot in SLOTS:
                env[f"BOOT_{slot}_LEFT"] = env["BOOT_ATTEMPTS"]
        raise RaucSandboxError(f"emulated bootloader found no slot in {env}")

    def _read_bootloader_env(self) -> dict[str, str]:
        lines = (self.bootloader_dir / "env").read_text().splitlines()
        return dict(line.split("=", 1) for line in lines if "=" in line)

    def _write_bootloader_env(self, env: dict[str, str]) -> None:
        path = self.bootloader_dir / "env"
        new = path.with_name("env.new")
        new.write_text("".join(f"{key}={value}\n" for key, value in env.items()))
        new.replace(path)

    def _log_bootloader(self, line: str) -> None:
        with open(self.bootloader_dir / "bootloader.log", "a") as log:
            log.write(line + "\n")

    def bootloader(self) -> BootloaderState:
        env = self._read_bootloader_env()
        booted = self.bootloader_dir / "booted"
        return BootloaderState(
            order=tuple(env["BOOT_ORDER"].split()),
            attempts={slot: int(env[f"BOOT_{slot}_LEFT"]) for slot in SLOTS},
            marked_good={slot: env[f"BOOT_{slot}_MARKED_GOOD"] == "1" for slot in SLOTS},
            booted=booted.read_text().strip() if booted.exists() else None,
        )

    def bootloader_log(self) -> list[str]:
        """Each backend call RAUC made (``set-primary B``) and each emulated boot, in order."""
        path = self.bootloader_dir / "bootloader.log"
        return path.read_text().splitlines() if path.exists() else []

    # -- talking to RAUC --------------------------------------------------------------------

    def rauc(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run the ``rauc`` CLI against this sandbox's service (as the daemon would)."""
        return subprocess.run(
            ["rauc", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **self.env()},
        )

    def status(self, *, detailed: bool = False) -> dict[str, Any]:
        """``rauc status --output-format=json``, plus ``"bootloader"``: the emulated state."""
        args = ["status", "--output-format=json", *(["--detailed"] if detailed else [])]
        result = self.rauc(*args, timeout=30)
        if result.returncode != 0:
            raise RaucSandboxError(f"rauc status failed: {result.stdout}{result.stderr}")
        status: dict[str, Any] = json.loads(result.stdout)
        status["bootloader"] = dataclasses.asdict(self.bootloader())
        return status

    def slot_versions(self) -> dict[str, str | None]:
        """Bundle version RAUC recorded per slot (None: RAUC never installed to that slot).

        From ``slot_status.bundle.version`` of ``rauc status --detailed``, which RAUC keeps in
        ``DATA_DIR/central.raucs`` (key ``bundle.version`` of ``[slot.rootfs.N]``).
        """
        slots = slots_by_bootname(self.status(detailed=True))
        return {
            bootname: slot.get("slot_status", {}).get("bundle", {}).get("version")
            for bootname, slot in slots.items()
        }

    def flash(self, bootname: str, image: Path) -> None:
        """Write a file-system image into a slot, as the factory does (RAUC is not told)."""
        if image.stat().st_size > self.slot_size:
            raise RaucSandboxError(f"{image} is larger than a slot ({self.slot_size} bytes)")
        with open(image, "rb") as source, open(self.slot_devices[bootname], "r+b") as slot:
            shutil.copyfileobj(source, slot, MiB)

    def slot_sha256(self, bootname: str, size: int) -> str:
        """SHA-256 of the first ``size`` bytes of a slot (an image's length)."""
        digest = hashlib.sha256()
        with open(self.slot_devices[bootname], "rb") as slot:
            while size > 0 and (block := slot.read(min(MiB, size))):
                digest.update(block)
                size -= len(block)
        return digest.hexdigest()

    def image_version(self, bootname: str) -> str | None:
        """VERSION_ID of /etc/os-release inside a slot image (None: no such file or line)."""
        for line in (self._read_slot_file(bootname, "/etc/os-release") or "").splitlines():
            if line.startswith("VERSION_ID="):
                return line.split("=", 1)[1].strip('"')
        return None

    def _read_slot_file(self, bootname: str, path: str) -> str | None:
        """A file inside a slot image, read with debugfs: no mount, no root needed."""
        result = subprocess.run(
            [find_tool("debugfs"), "-R", f"cat {path}", str(self.slot_devices[bootname])],
            capture_output=True,
            text=True,
            timeout=30,
        )
        # debugfs exits 0 even when the file is missing; it says so on stderr.
        if result.returncode != 0 or "File not found" in result.stderr:
            return None
        return result.stdout

    # -- bundles ----------------------------------------------------------------------------

    def build_bundle(
        self,
        version: str,
        *,
        compatible: str | None = None,
        signed_by: Literal["dev", "other"] = "dev",
        hook_install_check: str | None = None,
        payload_bytes: int = 0,
    ) -> Path:
        """A real signed plain bundle with one ext4 rootfs image whose os-release says ``version``.

        ``signed_by="other"``: signed by a CA that is not in the keyring. ``hook_install_check``:
        shell script body run as the bundle's install-check hook (exit 10 rejects the bundle
        with the hook's last stderr line); RAUC then skips its own compatible check.
        ``payload_bytes``: random bytes added to the image, for large downloads.
        """
        if signed_by not in ("dev", "other"):
            raise RaucSandboxError(f"signed_by must be 'dev' or 'other', not {signed_by!r}")
        compatible = self.compatible if compatible is None else compatible
        keys = self.keys_dir / signed_by
        output = self.bundles_dir / f"{version}-{next(self._bundle_numbers)}.raucb"
        # A fresh input directory each time: rauc bundle writes into it.
        with tempfile.TemporaryDirectory(dir=self.workdir, prefix="bundle-") as tmp:
            root, content = Path(tmp) / "rootfs", Path(tmp) / "content"
            content.mkdir()
            write_os_release(root, version)
            if payload_bytes:
                write_random(root / "var" / "lib" / "evsed-sandbox-payload.bin", payload_bytes)
            image_size = max(8 * MiB, -(-(payload_bytes + 4 * MiB) // MiB) * MiB)
            mkfs_ext4(content / "rootfs.ext4", image_size, root)
            manifest = [
                "[update]",
                f"compatible={compatible}",
                f"version={version}",
                "",
                "[bundle]",
                "format=plain",
                "",
                "[image.rootfs]",
                "filename=rootfs.ext4",
            ]
            if hook_install_check is not None:
                hook = content / "hook.sh"
                hook.write_text(
                    '#!/bin/sh\n[ "$1" = install-check ] || exit 0\n' + hook_install_check + "\n"
                )
                hook.chmod(0o755)
                manifest += ["", "[hooks]", "filename=hook.sh", "hooks=install-check"]
            (content / "manifest.raucm").write_text("\n".join(manifest) + "\n")
            sign_bundle(content, output, keys)
        return output

    # -- tearing down -----------------------------------------------------------------------

    def close(self) -> None:
        """Stop the RAUC service and the session bus; leaves the files for inspection."""
        self.stop_service()
        if self._bus is not None:
            _stop(self._bus)
            if self._bus.stdout is not None:
                self._bus.stdout.close()
            self._bus = None
        self._bus_address = ""

    def __enter__(self) -> RaucSandbox:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
