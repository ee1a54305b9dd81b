"""``make demo-ota``: a firmware update on simulated hardware with the real ``rauc``.

A development CSMS, the daemon (sim HAL), and a RAUC service on a private D-Bus with two
file-backed slots. The CSMS sends UpdateFirmware for a signed bundle it serves; the daemon
downloads, verifies and installs it, asks for a reboot, and after the reboot into the new slot
commits it and reports Installed. Only the bootloader and the reboot are emulated (RaucSandbox).
Needs root (RAUC loop-mounts the bundle) and rauc, dbus-daemon, mksquashfs, mkfs.ext4.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

from evsed.clock import iso, utcnow
from evsed_devtools.harness import DevCsms, Evsed, run_demo, wait_for

CHARGER = "DEMO-OTA"


class Timeline:
    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.seen = 0

    def say(self, who: str, text: str) -> None:
        print(f"{time.monotonic() - self.t0:6.1f}s  {who:<8} {text}", flush=True)

    def ocpp(self, csms: DevCsms) -> None:
        messages = csms.calls(CHARGER)
        for m in messages[self.seen :]:
            p = m["payload"]
            match m["action"]:
                case "BootNotification":
                    self.say("OCPP", f"BootNotification firmware {p.get('firmwareVersion')}")
                case "FirmwareStatusNotification":
                    self.say("OCPP", f"FirmwareStatusNotification {p['status']}")
        self.seen = len(messages)


def run(workdir: Path) -> int:
    from evsed_devtools.rauc_sandbox import RaucSandbox

    tl = Timeline()
    files = workdir / "files"
    files.mkdir()
    marker = workdir / "reboot-requested"
    with RaucSandbox(workdir / "rauc", compatible="evsed-sim", initial_version="1.0.0") as box:
        box.create()
        tl.say(
            "RAUC", f"two slots, keyring {box.keyring.name}; booting slot {box.start_service('A')}"
        )
        bundle = box.build_bundle("2.0.0")
        shutil.copy(bundle, files / bundle.name)
        tl.say("BUILD", f"signed RAUC bundle {bundle.name} (version 2.0.0)")
        csms = DevCsms.start(workdir, "--files", str(files))
        sections = {
            "charger": {"reboot_command": f"touch {marker}", "firmware_version": "1.0.0"},
            "ota": {
                "enabled": True,
                "keyring": str(box.keyring),
                "health_check_timeout_s": 30.0,
                "min_free_mb": 1,
            },
        }
        try:
            evsed = Evsed.start(workdir, csms.ws_url, CHARGER, env=box.env(), **sections)
            evsed.wait_registered()
            tl.ocpp(csms)
            now = iso(utcnow(), "seconds")
            csms.api(
                "/api/call",
                {
                    "cp": CHARGER,
                    "action": "UpdateFirmware",
                    "payload": {
                        "location": f"{csms.http_url}/files/{bundle.name}",
                        "retrieveDate": now,
                    },
                },
            )
            tl.say("CSMS", "UpdateFirmware sent")
            wait_for(marker.exists, 60, "reboot request")
            tl.ocpp(csms)
            evsed.proc.wait(30)
            marker.unlink()
            tl.say("CHARGER", "rebooting (emulated)")
            tl.say("BOOT", f"bootloader starts slot {box.boot()}")
            evsed = Evsed.start(workdir, csms.ws_url, CHARGER, env=box.env(), **sections)
            wait_for(
                lambda: any(
                    m["payload"]["status"] in ("Installed", "InstallationFailed")
                    for m in csms.calls(CHARGER, "FirmwareStatusNotification")
                ),
                60,
                "final status",
            )
            tl.ocpp(csms)
            firmware = evsed.status()["firmware"]
            tl.say(
                "CHARGER", f"running {firmware['version']} from slot {firmware['rauc']['booted']}"
            )
            evsed.stop()
        finally:
            final = [
                m["payload"]["status"] for m in csms.calls(CHARGER, "FirmwareStatusNotification")
            ]
            csms.stop()
        slot_b = box.slot_versions().get("B")
        status = box.status()
    good = {k: v for e in status["slots"] for k, v in e.items()}
    if final[-1:] != ["Installed"]:
        print(f"demo-ota FAILED: statuses {final}")
        return 1
    b = next(v for v in good.values() if v["bootname"] == "B")
    print(f"\nupdate complete: slot B holds {slot_b}, booted and marked {b['boot_status']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    if shutil.which("rauc") is None:
        print("demo-ota needs rauc (apt-get install rauc squashfs-tools e2fsprogs dbus)")
        return 1
    return run_demo("demo-ota", __doc__.splitlines()[0], run, argv)


if __name__ == "__main__":
    sys.exit(main())
