"""Firmware updates end to end, with the real ``rauc`` and real signed bundles.

The daemon runs as a process against the development CSMS (which also serves the bundles over
HTTP) and a RAUC service on a private D-Bus with file-backed A/B slots. Only the bootloader and
the reboot are emulated (RaucSandbox): the daemon's reboot command touches a marker file, the
test waits for the daemon to exit, lets the emulated bootloader pick a slot, restarts the RAUC
service with that slot booted and starts the daemon again.
"""

from __future__ import annotations

import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from evsed_devtools.harness import DevCsms, wait_for

if shutil.which("rauc") is None:
    pytest.skip("rauc is not installed (make test installs it as root)", allow_module_level=True)

from evsed_devtools.ota_rig import (
    CP,
    OtaRig,
    make_signer,
    signed_statuses,
    signed_update,
    wait_final,
)
from evsed_devtools.rauc_sandbox import RaucSandbox


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[OtaRig]:
    files = tmp_path / "files"
    files.mkdir()
    with RaucSandbox(tmp_path / "rauc", compatible="evsed-sim", initial_version="1.0.0") as box:
        box.create()
        box.start_service("A")
        csms = DevCsms.start(tmp_path, "--files", str(files), "--heartbeat-interval", "300")
        try:
            yield OtaRig(tmp_path, box, csms, files, tmp_path / "reboot-requested")
        finally:
            csms.stop()


def test_update_installs_reboots_into_the_new_slot_and_commits(rig: OtaRig) -> None:
    evsed = rig.start()
    evsed.wait_registered()
    rig.update(rig.serve(rig.sandbox.build_bundle("2.0.0")))
    assert rig.rebooted(evsed) == "B"

    evsed = rig.start()
    try:
        assert wait_final(rig, {"Installed", "InstallationFailed"}) == [
            "Downloading",
            "Downloaded",
            "Installing",
            "Installed",
        ]
        firmware = evsed.status()["firmware"]
        assert firmware["version"] == "2.0.0"
        assert firmware["rauc"]["booted"] == "B"
        wait_for(
            lambda: (
                "booted B" in evsed.ctl("status").stdout
                and "B=2.0.0 booted/good" in evsed.ctl("status").stdout
            ),
            what="evsectl shows the committed slot",
        )
    finally:
        assert evsed.stop() == 0
    assert rig.boot_versions() == ["1.0.0", "2.0.0"]
    slots = rig.slots()
    assert slots["booted"]["bootname"] == "B"
    assert slots["B"]["boot_status"] == "good"
    # Installed is reported after the new BootNotification was accepted.
    calls = [m["action"] for m in rig.csms.calls(CP)]
    second_boot = [i for i, a in enumerate(calls) if a == "BootNotification"][1]
    installed = next(
        i
        for i, m in enumerate(rig.csms.calls(CP))
        if m["action"] == "FirmwareStatusNotification" and m["payload"]["status"] == "Installed"
    )
    assert second_boot < installed
    # Nothing else is pending: a TriggerMessage now answers Idle.
    evsed = rig.start()
    try:
        answer = rig.csms.api(
            "/api/call",
            {
                "cp": CP,
                "action": "TriggerMessage",
                "payload": {"requestedMessage": "FirmwareStatusNotification"},
            },
        )
        assert answer["result"]["status"] == "Accepted"
        wait_for(lambda: rig.statuses()[-1] == "Idle", what="Idle on request")
    finally:
        assert evsed.stop() == 0


def _composite_limits(csms: DevCsms) -> list[float]:
    answer = csms.result("GetCompositeSchedule", {"connectorId": 1, "duration": 60}, cp=CP)
    return [p["limit"] for p in answer["chargingSchedule"]["chargingSchedulePeriod"]]


def test_failed_health_check_rolls_back_and_reports_from_the_old_slot(rig: OtaRig) -> None:
    evsed = rig.start()
    evsed.wait_registered()
    # A charging profile set before the update is still in force after the rollback: the
    # state database is on the data partition, which both slots share.
    body = {
        "chargingProfileId": 1,
        "stackLevel": 0,
        "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Relative",
        "chargingSchedule": {
            "chargingRateUnit": "A",
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 9.0}],
        },
    }
    answer = rig.csms.result(
        "SetChargingProfile", {"connectorId": 1, "csChargingProfiles": body}, cp=CP
    )
    assert answer == {"status": "Accepted"}
    rig.update(rig.serve(rig.sandbox.build_bundle("2.0.0")))
    assert rig.rebooted(evsed) == "B"

    # The new firmware cannot read its meter: the health check must fail.
    broken = rig.start(hal__sim={"start_faults": "meter-offline"})
    assert rig.rebooted(broken, timeout=60) == "A"
    evsed = rig.start()
    try:
        assert wait_final(rig, {"Installed", "InstallationFailed"}) == [
            "Downloading",
            "Downloaded",
            "Installing",
            "InstallationFailed",
        ]
        assert _composite_limits(rig.csms) == [9.0]
    finally:
        assert evsed.stop() == 0
    slots = rig.slots()
    assert slots["booted"]["bootname"] == "A"
    assert slots["B"]["boot_status"] == "bad"
    assert "health check failed" in broken.log()


@pytest.mark.parametrize(
    ("bundle_kwargs", "reason"),
    [
        ({"signed_by": "other"}, "signature"),
        ({"compatible": "another-product"}, "another-product"),
    ],
    ids=["bad-rauc-signature", "wrong-compatible"],
)
def test_rejected_bundle_never_touches_the_slots(
    rig: OtaRig, bundle_kwargs: dict[str, Any], reason: str
) -> None:
    before = rig.slots()
    evsed = rig.start()
    try:
        evsed.wait_registered()
        rig.update(rig.serve(rig.sandbox.build_bundle("2.0.0", **bundle_kwargs)))
        assert wait_final(rig, {"Installed", "InstallationFailed"}) == [
            "Downloading",
            "Downloaded",
            "InstallationFailed",
        ]
        assert reason in evsed.log()
        assert evsed.proc.poll() is None  # no reboot
    finally:
        assert evsed.stop() == 0
    assert rig.slots() == before


def test_install_check_hook_rejection_is_installation_failed(rig: OtaRig) -> None:
    evsed = rig.start()
    try:
        evsed.wait_registered()
        bundle = rig.sandbox.build_bundle(
            "0.9.0", hook_install_check='echo "downgrade refused" >&2; exit 10'
        )
        rig.update(rig.serve(bundle))
        assert wait_final(rig, {"Installed", "InstallationFailed"}) == [
            "Downloading",
            "Downloaded",
            "Installing",
            "InstallationFailed",
        ]
        assert "downgrade refused" in evsed.log()
    finally:
        assert evsed.stop() == 0
    assert rig.slots()["booted"]["bootname"] == "A"


def test_download_failure_after_retries(rig: OtaRig) -> None:
    evsed = rig.start()
    try:
        evsed.wait_registered()
        rig.update("http://127.0.0.1:9/nothing-listens-here.raucb", retries=2, interval=1)
        assert wait_final(rig, {"DownloadFailed"}, timeout=30) == ["Downloading", "DownloadFailed"]
        assert evsed.log().count("firmware download attempt") == 3
    finally:
        assert evsed.stop() == 0


def test_install_waits_for_the_running_transaction(rig: OtaRig) -> None:
    evsed = rig.start(charging={"free_mode": True})
    evsed.wait_registered()
    evsed.sim("plug")
    evsed.sim("ev-state", "C")
    wait_for(lambda: evsed.connector()["contactor_closed"], what="charging")
    rig.update(rig.serve(rig.sandbox.build_bundle("2.0.0")))
    wait_for(lambda: rig.statuses() == ["Downloading", "Downloaded"], what="downloaded")
    time.sleep(2)
    assert rig.statuses() == ["Downloading", "Downloaded"]  # waits: a car is charging
    assert evsed.connector()["contactor_closed"]
    evsed.sim("ev-state", "B")
    evsed.sim("unplug")
    assert rig.rebooted(evsed) == "B"
    actions = [
        (m["action"], m["payload"].get("status"))
        for m in rig.csms.calls(CP)
        if m["action"] in ("StopTransaction", "FirmwareStatusNotification", "StatusNotification")
    ]
    stop = actions.index(("StopTransaction", None))
    assert actions.index(("FirmwareStatusNotification", "Installing")) > stop
    assert ("StatusNotification", "Unavailable") in actions[stop:]
    evsed = rig.start()
    try:
        wait_final(rig, {"Installed", "InstallationFailed"})
        assert rig.statuses()[-1] == "Installed"
        # The connector is available again after the update.
        wait_for(lambda: evsed.connector()["ocpp_status"] == "Available", what="Available")
    finally:
        assert evsed.stop() == 0


def test_install_waits_until_both_connectors_are_idle(rig: OtaRig) -> None:
    evsed = rig.start(connectors=2, charging={"free_mode": True})
    evsed.wait_registered()
    for connector in (1, 2):
        evsed.sim("plug", connector=connector)
        evsed.sim("ev-state", "C", connector=connector)
        wait_for(lambda c=connector: evsed.connector(c)["contactor_closed"], what="charging")
    rig.update(rig.serve(rig.sandbox.build_bundle("2.0.0")))
    wait_for(lambda: rig.statuses() == ["Downloading", "Downloaded"], what="downloaded")
    evsed.sim("ev-state", "B", connector=1)
    evsed.sim("unplug", connector=1)
    wait_for(lambda: evsed.connector(1)["ocpp_status"] == "Unavailable", what="1 held")
    time.sleep(2)
    # One car is still charging: the install waits, and connector 1 takes no new session.
    assert rig.statuses() == ["Downloading", "Downloaded"]
    assert evsed.connector(2)["contactor_closed"]
    evsed.sim("plug", connector=1)
    time.sleep(0.5)
    assert not evsed.connector(1)["transaction_active"]
    evsed.sim("unplug", connector=1)
    evsed.sim("ev-state", "B", connector=2)
    evsed.sim("unplug", connector=2)
    assert rig.rebooted(evsed) == "B"
    actions = [
        (m["action"], m["payload"].get("status"))
        for m in rig.csms.calls(CP)
        if m["action"] in ("StopTransaction", "FirmwareStatusNotification")
    ]
    last_stop = max(i for i, a in enumerate(actions) if a[0] == "StopTransaction")
    assert actions.index(("FirmwareStatusNotification", "Installing")) > last_stop
    assert len(rig.csms.calls(CP, "StopTransaction")) == 2
    evsed = rig.start(connectors=2)
    try:
        wait_final(rig, {"Installed", "InstallationFailed"})
        assert rig.statuses()[-1] == "Installed"
        for connector in (1, 2):
            wait_for(
                lambda c=connector: evsed.connector(c)["ocpp_status"] == "Available",
                what=f"connector {connector} Available",
            )
    finally:
        assert evsed.stop() == 0


def test_kill_9_during_install_ends_in_one_consistent_outcome(rig: OtaRig) -> None:
    evsed = rig.start()
    evsed.wait_registered()
    slow = rig.sandbox.build_bundle("2.0.0", hook_install_check="sleep 3; exit 0")
    rig.update(rig.serve(slow))
    wait_for(lambda: rig.statuses()[-1:] == ["Installing"], what="installing")
    evsed.proc.send_signal(signal.SIGKILL)
    evsed.proc.wait()
    evsed = rig.start()
    assert rig.rebooted(evsed) == "B"
    evsed = rig.start()
    try:
        wait_final(rig, {"Installed", "InstallationFailed"})
    finally:
        assert evsed.stop() == 0
    assert rig.statuses() == ["Downloading", "Downloaded", "Installing", "Installed"]


class _SlowFileServer:
    """Serves one file at a limited rate with Range support, recording each Range header."""

    def __init__(self, path: Path, bytes_per_s: int) -> None:
        import http.server
        import threading

        server = self
        self.path, self.rate, self.ranges = path, bytes_per_s, []

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                data = server.path.read_bytes()
                start = 0
                header = self.headers.get("Range")
                server.ranges.append(header)
                if header and header.startswith("bytes="):
                    start = int(header[6:].split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                chunk = max(1, server.rate // 20)
                try:
                    for offset in range(start, len(data), chunk):
                        self.wfile.write(data[offset : offset + chunk])
                        time.sleep(0.05)
                except OSError:
                    pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/{path.name}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_kill_9_during_download_resumes_with_range_and_reports_once(rig: OtaRig) -> None:
    bundle = rig.sandbox.build_bundle("2.0.0", payload_bytes=1_500_000)
    server = _SlowFileServer(bundle, bytes_per_s=400_000)
    try:
        evsed = rig.start()
        evsed.wait_registered()
        rig.update(server.url)
        part = rig.workdir / "state" / "ota" / "update-0.raucb.part"
        wait_for(lambda: part.exists() and part.stat().st_size > 200_000, what="half a download")
        evsed.proc.send_signal(signal.SIGKILL)  # a power cut in the middle of the download
        evsed.proc.wait()
        kept = part.stat().st_size
        evsed = rig.start()
        assert rig.rebooted(evsed) == "B"
        evsed = rig.start()
        try:
            wait_final(rig, {"Installed", "InstallationFailed"})
        finally:
            assert evsed.stop() == 0
    finally:
        server.close()
    assert rig.statuses() == ["Downloading", "Downloaded", "Installing", "Installed"]
    resumed = [r for r in server.ranges if r]
    assert resumed, server.ranges
    assert int(resumed[0][6:].split("-")[0]) >= kept - 65536


# -- SignedUpdateFirmware (OCPP 1.6 Security Whitepaper) ---------------------------------------


LIFECYCLE = {"StartupOfTheDevice", "ResetOrReboot", "FirmwareUpdated"}


def security_events(rig: OtaRig, *, lifecycle: bool = False) -> list[str]:
    """The security events the CSMS received; without the start, reset and update ones,
    which every update brings (``lifecycle``: only those)."""
    types = [m["payload"]["type"] for m in rig.csms.calls(CP, "SecurityEventNotification")]
    return [t for t in types if (t in LIFECYCLE) == lifecycle]


def test_tc_080_secure_firmware_update_with_a_root_installed_by_the_csms(rig: OtaRig) -> None:
    """OCA TC_080: SignedUpdateFirmware, every SignedFirmwareStatusNotification in order."""
    signer = make_signer("maker")
    bundle = rig.sandbox.build_bundle("2.0.0")
    evsed = rig.start()
    evsed.wait_registered()
    answer = rig.csms.api(
        "/api/call",
        {
            "cp": CP,
            "action": "InstallCertificate",
            "payload": {
                "certificateType": "ManufacturerRootCertificate",
                "certificate": signer.root_pem,
            },
        },
    )
    assert answer["result"]["status"] == "Accepted"
    answer = signed_update(rig, 42, rig.serve(bundle), signer.cert_pem, signer.sign(bundle))
    assert answer["result"]["status"] == "Accepted"
    assert rig.rebooted(evsed) == "B"
    evsed = rig.start()
    try:
        wait_for(lambda: signed_statuses(rig)[-1:] == [("Installed", 42)], 60, "signed Installed")
    finally:
        assert evsed.stop() == 0
    assert signed_statuses(rig) == [
        (status, 42)
        for status in (
            "Downloading",
            "Downloaded",
            "SignatureVerified",
            "Installing",
            "InstallRebooting",
            "Installed",
        )
    ]
    assert security_events(rig) == []
    wait_for(lambda: "FirmwareUpdated" in security_events(rig, lifecycle=True), what="event")
    assert security_events(rig, lifecycle=True) == [
        "StartupOfTheDevice",
        "ResetOrReboot",
        "StartupOfTheDevice",
        "FirmwareUpdated",
    ]


def test_tc_081_secure_firmware_update_with_an_invalid_signature(rig: OtaRig) -> None:
    """OCA TC_081: the signature does not verify: InvalidSignature and the security event,
    and the slots are never touched."""
    signer, forger = make_signer("maker"), make_signer("forger")
    root = rig.workdir / "maker-root.pem"
    root.write_text(signer.root_pem)
    bundle = rig.sandbox.build_bundle("2.0.0")
    before = rig.slots()
    evsed = rig.start(ota={"manufacturer_root": str(root)})
    try:
        evsed.wait_registered()
        # The right certificate, but a signature made with another key.
        answer = signed_update(rig, 7, rig.serve(bundle), signer.cert_pem, forger.sign(bundle))
        assert answer["result"]["status"] == "Accepted"
        wait_for(lambda: signed_statuses(rig)[-1:] == [("InvalidSignature", 7)], what="refused")
        assert signed_statuses(rig) == [
            ("Downloading", 7),
            ("Downloaded", 7),
            ("InvalidSignature", 7),
        ]
        wait_for(lambda: security_events(rig) == ["InvalidFirmwareSignature"], what="event")
    finally:
        assert evsed.stop() == 0
    assert rig.slots() == before


def test_tc_082_secure_firmware_update_with_an_invalid_signing_certificate(rig: OtaRig) -> None:
    """A signing certificate that does not chain to the manufacturer root is refused at once
    (InvalidCertificate), with the security event, before anything is downloaded."""
    signer, forger = make_signer("maker"), make_signer("forger")
    root = rig.workdir / "maker-root.pem"
    root.write_text(signer.root_pem)
    before = rig.slots()
    evsed = rig.start(ota={"manufacturer_root": str(root)})
    try:
        evsed.wait_registered()
        location = "http://127.0.0.1:9/never-fetched.raucb"
        answer = signed_update(rig, 8, location, forger.cert_pem, "c2lnbmF0dXJl")
        assert answer["result"]["status"] == "InvalidCertificate"
        wait_for(
            lambda: security_events(rig)[-1:] == ["InvalidFirmwareSigningCertificate"],
            what="certificate event",
        )
        assert signed_statuses(rig) == []
    finally:
        assert evsed.stop() == 0
    assert rig.slots() == before
