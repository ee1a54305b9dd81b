"""A firmware-update rig for end-to-end tests: the daemon as a process, the development CSMS
serving bundles over HTTP, a RAUC sandbox (real rauc, emulated bootloader and reboot).

The daemon's reboot command touches a marker file; :meth:`OtaRig.rebooted` waits for the daemon
to exit, lets the emulated bootloader pick a slot and restarts the RAUC service with it.
"""

from __future__ import annotations

import base64
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from evsed_devtools.harness import DevCsms, Evsed, wait_for
from evsed_devtools.rauc_sandbox import RaucSandbox

CP = "CP01"


@dataclass
class OtaRig:
    workdir: Path
    sandbox: RaucSandbox
    csms: DevCsms
    files: Path
    marker: Path
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)

    def sections(self, **extra: dict[str, Any]) -> dict[str, dict[str, Any]]:
        sections: dict[str, dict[str, Any]] = {
            "charger": {"reboot_command": f"touch {self.marker}", "firmware_version": "1.0.0"},
            "ota": {
                "enabled": True,
                "keyring": str(self.sandbox.keyring),
                "health_check_timeout_s": 15.0,
                "min_free_mb": 1,
            },
        }
        for layer in (self.overrides, extra):  # key by key: extra adds to the overrides
            for name, values in layer.items():
                sections.setdefault(name, {}).update(values)
        return sections

    def start(self, connectors: int = 1, **extra: dict[str, Any]) -> Evsed:
        return Evsed.start(
            self.workdir,
            self.csms.ws_url,
            CP,
            env=self.sandbox.env(),
            connectors=connectors,
            **self.sections(**extra),
        )

    def serve(self, bundle: Path) -> str:
        shutil.copy(bundle, self.files / bundle.name)
        return f"{self.csms.http_url}/files/{bundle.name}"

    def update(self, location: str, retries: int = 1, interval: int = 1) -> None:
        payload = {
            "location": location,
            "retrieveDate": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "retries": retries,
            "retryInterval": interval,
        }
        answer = self.csms.api(
            "/api/call", {"cp": CP, "action": "UpdateFirmware", "payload": payload}
        )
        assert answer.get("result") == {}, answer

    def rebooted(self, evsed: Evsed, timeout: float = 60) -> str:
        """The daemon asked for a reboot and exited: boot the emulated bootloader's choice."""
        wait_for(lambda: self.marker.exists(), timeout, "reboot request")
        assert evsed.proc.wait(30) == 0, evsed.log()
        self.marker.unlink()
        return self.sandbox.boot()

    def statuses(self, action: str = "FirmwareStatusNotification") -> list[str]:
        return [m["payload"]["status"] for m in self.csms.calls(CP, action)]

    def boot_versions(self) -> list[str]:
        return [
            m["payload"].get("firmwareVersion") for m in self.csms.calls(CP, "BootNotification")
        ]

    def slots(self) -> dict[str, dict[str, Any]]:
        status = self.sandbox.status(detailed=True)
        out = {}
        for entry in status["slots"]:
            for slot in entry.values():
                out[slot["bootname"]] = slot
        out["booted"] = {"bootname": status["booted"]}
        return out

    def served(self, prefix: str = "") -> int:
        """Body bytes the CSMS's file server sent for files under ``prefix``."""
        return int(self.csms.api(f"/api/files/served?prefix={prefix}")["bytes"])


def wait_final(rig: OtaRig, final: set[str], timeout: float = 60) -> list[str]:
    """The firmware statuses sent, once the last one is in ``final``."""
    statuses: list[str] = wait_for(
        lambda: rig.statuses() if rig.statuses() and rig.statuses()[-1] in final else None,
        timeout,
        f"final firmware status {final}",
    )
    return statuses


# -- SignedUpdateFirmware (OCPP 1.6 Security Whitepaper) ---------------------------------------


@dataclass
class Signer:
    root_pem: str
    cert_pem: str
    key: Any

    def sign(self, path: Path) -> str:
        signature = self.key.sign(path.read_bytes(), padding.PKCS1v15(), hashes.SHA256())
        return base64.b64encode(signature).decode()


def make_signer(name: str) -> Signer:
    """A manufacturer root and a firmware signing certificate under it."""
    now = datetime.now(UTC)
    root_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    root_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} root")])
    root = (
        x509.CertificateBuilder()
        .subject_name(root_name)
        .issuer_name(root_name)
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(root_key, hashes.SHA256())
    )
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} firmware")]))
        .issuer_name(root_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return Signer(root.public_bytes(pem).decode(), leaf.public_bytes(pem).decode(), key)


def signed_update(
    rig: OtaRig,
    request_id: int,
    location: str,
    cert: str,
    signature: str,
    *,
    retries: int = 1,
    retry_s: int = 1,
) -> Any:
    """Send SignedUpdateFirmware through the CSMS; its answer."""
    now = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    payload = {
        "requestId": request_id,
        "retries": retries,
        "retryInterval": retry_s,
        "firmware": {
            "location": location,
            "retrieveDateTime": now,
            "signingCertificate": cert,
            "signature": signature,
        },
    }
    return rig.csms.api(
        "/api/call", {"cp": CP, "action": "SignedUpdateFirmware", "payload": payload}
    )


def signed_statuses(rig: OtaRig) -> list[tuple[str, int]]:
    return [
        (m["payload"]["status"], m["payload"]["requestId"])
        for m in rig.csms.calls(CP, "SignedFirmwareStatusNotification")
    ]
