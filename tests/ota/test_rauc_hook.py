"""The files under rauc/: the install-check hook (run the way RAUC runs it), make-dev-keys,
the manifest template and the Pi 4 system.conf, checked with the real rauc 1.8 where the
machine allows (RAUC reference: "Hooks (Interface)", "System Configuration File")."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import textwrap
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

RAUC_DIR = Path(__file__).resolve().parents[2] / "rauc"
HOOK = RAUC_DIR / "hook.sh"
MAKE_DEV_KEYS = RAUC_DIR / "make-dev-keys"
MANIFEST_TEMPLATE = RAUC_DIR / "manifest.raucm.in"
PI4_CONF = RAUC_DIR / "system.conf.pi4-uboot"
COMPATIBLE = "evsed-rpi4"
SHELLS = [s for s in ("dash", "bash", "busybox") if shutil.which(s)]


def needs(*tools: str) -> pytest.MarkDecorator:
    missing = [t for t in tools if shutil.which(t) is None]
    return pytest.mark.skipif(bool(missing), reason=f"needs {', '.join(missing)}")


def hook_env(tmp_path: Path, current: str | None, **overrides: str) -> dict[str, str]:
    """What RAUC 1.8 passes to an install-check hook, plus the hook's own knobs."""
    os_release = tmp_path / "os-release"
    lines = ['NAME="evsed OS"']
    if current is not None:
        lines.append(f'VERSION_ID="{current}"')
    os_release.write_text("\n".join(lines) + "\n")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "RAUC_SYSTEM_COMPATIBLE": COMPATIBLE,
        "RAUC_SYSTEM_VARIANT": "",
        "RAUC_MF_COMPATIBLE": COMPATIBLE,
        "RAUC_MF_VERSION": "1.4.0",
        "RAUC_MOUNT_PREFIX": str(tmp_path / "mnt"),
        "EVSED_OS_RELEASE": str(os_release),
        "EVSED_DATA_DIR": str(tmp_path),
        "EVSED_MIN_FREE_MIB": "1",
    }
    env.update(overrides)
    return env


def bundle_dir(tmp_path: Path, manifest: str = "", marker: bool = False) -> Path:
    """A copy of the hook as it sits in a mounted bundle, with the bundle's other files."""
    bundle = tmp_path / "bundle"
    bundle.mkdir(exist_ok=True)
    shutil.copy2(HOOK, bundle / "hook.sh")
    if manifest:
        (bundle / "manifest.raucm").write_text(textwrap.dedent(manifest))
    if marker:
        (bundle / "evsed-allow-downgrade").touch()
    return bundle


def run_hook(
    tmp_path: Path,
    *,
    current: str | None = "1.3.0",
    argument: str = "install-check",
    shell: str | None = None,
    manifest: str = "",
    marker: bool = False,
    **env: str,
) -> subprocess.CompletedProcess[str]:
    hook = bundle_dir(tmp_path, manifest, marker) / "hook.sh"
    command = [str(hook), argument]
    if shell == "busybox":
        command = ["busybox", "sh", *command]
    elif shell is not None:
        command = [shell, *command]
    return subprocess.run(
        command, env=hook_env(tmp_path, current, **env), capture_output=True, text=True, timeout=20
    )


def reason(result: subprocess.CompletedProcess[str]) -> str:
    """What RAUC shows: the last line the hook wrote to stderr."""
    lines = result.stderr.strip().splitlines()
    return lines[-1] if lines else ""


# --- install-check hook ------------------------------------------------------------------


def test_hook_is_executable_and_accepts_an_upgrade(tmp_path: Path) -> None:
    assert os.access(HOOK, os.X_OK), "RAUC executes the hook directly: it needs the x bit"
    result = run_hook(tmp_path, RAUC_MF_VERSION="1.4.0")
    assert result.returncode == 0, result.stderr
    assert "upgrade from 1.3.0 to 1.4.0" in result.stdout


@pytest.mark.parametrize("shell", SHELLS)
def test_hook_refuses_a_downgrade_with_exit_10(tmp_path: Path, shell: str) -> None:
    result = run_hook(tmp_path, shell=shell, RAUC_MF_VERSION="1.2.9")
    assert result.returncode == 10
    assert reason(result) == (
        "evsed: refusing downgrade from 1.3.0 to 1.2.9 (the bundle must allow downgrades)"
    )


@pytest.mark.parametrize(
    ("new", "current", "accepted"),
    [
        ("1.4.0", "1.3.9", True),
        ("1.10.0", "1.9.0", True),
        ("1.3.0", "1.3.0", True),  # reinstall
        ("1.3", "1.3.0", True),  # missing parts count as 0
        ("1.3.0.1", "1.3.0", True),
        ("2024.06.1", "2024.05.30", True),
        ("1.2.9", "1.3.0", False),
        ("1.9.0", "1.10.0", False),
        ("1.5.0-rc1", "1.5.0", False),  # a prerelease is older than its release
        ("1.5.0", "1.5.0-rc1", True),
        ("1.5.0-rc2", "1.5.0-rc1", True),
        ("1.5.0+build7", "1.5.0", True),  # build metadata is ignored
        ("v1.4", "1.3.0", False),  # not a version we can compare
        ("", "1.3.0", False),
    ],
)
def test_version_ordering(tmp_path: Path, new: str, current: str, accepted: bool) -> None:
    result = run_hook(tmp_path, current=current, RAUC_MF_VERSION=new)
    assert result.returncode == (0 if accepted else 10), result.stderr


def test_unknown_running_version_is_refused(tmp_path: Path) -> None:
    result = run_hook(tmp_path, current=None)
    assert result.returncode == 10
    assert "running version unknown" in reason(result)


def test_rauc_meta_variable_forces_a_downgrade(tmp_path: Path) -> None:
    # RAUC >= 1.13 exports [meta.evsed] allow-downgrade=true like this.
    result = run_hook(tmp_path, RAUC_MF_VERSION="1.0.0", RAUC_META_EVSED_ALLOW_DOWNGRADE="true")
    assert result.returncode == 0, result.stderr
    assert "overridden" in result.stdout


def test_manifest_meta_section_forces_a_downgrade(tmp_path: Path) -> None:
    manifest = """\
        [update]
        compatible=evsed-rpi4
        version=1.0.0

        [meta.other]
        allow-downgrade=false

        [meta.evsed]
        allow-downgrade = true
        """
    result = run_hook(tmp_path, manifest=manifest, RAUC_MF_VERSION="1.0.0")
    assert result.returncode == 0, result.stderr


def test_meta_section_saying_false_does_not_force(tmp_path: Path) -> None:
    manifest = "[meta.evsed]\nallow-downgrade=false\n"
    result = run_hook(tmp_path, manifest=manifest, RAUC_MF_VERSION="1.0.0")
    assert result.returncode == 10


def test_marker_file_forces_a_downgrade(tmp_path: Path) -> None:
    result = run_hook(tmp_path, marker=True, RAUC_MF_VERSION="1.0.0")
    assert result.returncode == 0, result.stderr


def test_wrong_compatible_is_refused_even_when_forced(tmp_path: Path) -> None:
    # A bundle with install-check replaces RAUC's compatible check: the hook must do it.
    result = run_hook(tmp_path, marker=True, RAUC_MF_COMPATIBLE="evsed-rpi5")
    assert result.returncode == 10
    assert reason(result) == "evsed: bundle is for 'evsed-rpi5', this system is 'evsed-rpi4'"


def test_too_little_free_space_on_data_is_refused(tmp_path: Path) -> None:
    result = run_hook(tmp_path, EVSED_MIN_FREE_MIB="999999999")
    assert result.returncode == 10
    assert "MiB free on" in reason(result)
    assert reason(result).endswith("need 999999999 MiB")


def test_missing_data_partition_is_refused(tmp_path: Path) -> None:
    result = run_hook(tmp_path, EVSED_DATA_DIR=str(tmp_path / "nope"))
    assert result.returncode == 10
    assert "is missing" in reason(result)


def test_undeclared_hook_type_is_an_error_not_a_rejection(tmp_path: Path) -> None:
    result = run_hook(tmp_path, argument="slot-post-install")
    assert result.returncode == 1


# --- make-dev-keys -----------------------------------------------------------------------


def make_dev_keys(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(MAKE_DEV_KEYS), *args, str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def dev_keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("openssl") is None:
        pytest.skip("needs openssl")
    keys = tmp_path_factory.mktemp("keys") / "dev"
    result = make_dev_keys(keys)
    assert result.returncode == 0, result.stderr
    return keys


def test_make_dev_keys_creates_a_ca_and_a_code_signing_certificate(dev_keys: Path) -> None:
    ca = x509.load_pem_x509_certificate((dev_keys / "ca.cert.pem").read_bytes())
    signer = x509.load_pem_x509_certificate((dev_keys / "signing.cert.pem").read_bytes())
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    ca_usage = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ca_usage.key_cert_sign and ca_usage.crl_sign
    assert not signer.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert signer.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
    eku = set(signer.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    assert {ExtendedKeyUsageOID.CODE_SIGNING, ExtendedKeyUsageOID.EMAIL_PROTECTION} <= eku
    signer.verify_directly_issued_by(ca)
    for key in ("ca.key.pem", "signing.key.pem"):
        assert stat.S_IMODE((dev_keys / key).stat().st_mode) == 0o600


@needs("openssl")
def test_make_dev_keys_keeps_existing_keys_unless_forced(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    assert make_dev_keys(keys).returncode == 0
    before = {p.name: p.read_bytes() for p in keys.iterdir()}

    again = make_dev_keys(keys)
    assert again.returncode == 0
    assert "kept" in again.stdout and "created" not in again.stdout
    assert {p.name: p.read_bytes() for p in keys.iterdir()} == before

    # A lost signing certificate is issued again from the existing CA.
    (keys / "signing.cert.pem").unlink()
    (keys / "signing.key.pem").unlink()
    partial = make_dev_keys(keys)
    assert partial.returncode == 0
    assert (keys / "ca.key.pem").read_bytes() == before["ca.key.pem"]
    assert "created" in partial.stdout

    forced = make_dev_keys(keys, "--force")
    assert forced.returncode == 0
    assert (keys / "ca.key.pem").read_bytes() != before["ca.key.pem"]


@needs("openssl")
def test_make_dev_keys_refuses_to_guess_about_half_written_keys(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "ca.cert.pem").write_text("orphan")
    result = make_dev_keys(keys)
    assert result.returncode == 1
    assert "--force" in result.stderr
    assert make_dev_keys(keys, "--force").returncode == 0


def test_make_dev_keys_needs_a_directory() -> None:
    result = subprocess.run([str(MAKE_DEV_KEYS)], capture_output=True, text=True, timeout=10)
    assert result.returncode == 2
    assert "usage" in result.stderr


# --- real bundles ------------------------------------------------------------------------


def build_bundle(
    tmp_path: Path,
    keys: Path,
    *,
    version: str = "1.4.0",
    bundle_format: str = "plain",
    marker: bool = False,
) -> Path:
    """Like the image build: fresh content dir (rauc writes into it), image > 4 KiB."""
    work = tmp_path / f"build-{version}-{bundle_format}-{marker}"
    tree = work / "tree"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc" / "os-release").write_text(f"VERSION_ID={version}\n")
    (tree / "payload").write_bytes(os.urandom(64 * 1024))
    content = work / "content"
    content.mkdir()
    image = content / "rootfs.ext4"
    with image.open("wb") as stream:
        stream.truncate(4 * 1024 * 1024)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(tree), str(image)], check=True)
    shutil.copy2(HOOK, content / "hook.sh")
    manifest = (
        MANIFEST_TEMPLATE.read_text()
        .replace("@COMPATIBLE@", COMPATIBLE)
        .replace("@VERSION@", version)
        .replace("@BUILD@", "test")
        .replace("format=verity", f"format={bundle_format}")
    )
    (content / "manifest.raucm").write_text(manifest)
    if marker:
        (content / "evsed-allow-downgrade").touch()
    bundle = work / "update.raucb"
    subprocess.run(
        [
            "rauc",
            "bundle",
            f"--cert={keys / 'signing.cert.pem'}",
            f"--key={keys / 'signing.key.pem'}",
            str(content),
            str(bundle),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return bundle


def rauc_info(bundle: Path, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["rauc", *options, "info", "--output-format=json", str(bundle)],
        capture_output=True,
        text=True,
        timeout=60,
    )


@needs("rauc", "mksquashfs", "mkfs.ext4", "openssl")
@pytest.mark.parametrize("bundle_format", ["plain", "verity"])
def test_bundle_from_template_declares_the_install_check_hook(
    tmp_path: Path, dev_keys: Path, bundle_format: str
) -> None:
    bundle = build_bundle(tmp_path, dev_keys, bundle_format=bundle_format)
    result = rauc_info(bundle, f"--keyring={dev_keys / 'ca.cert.pem'}")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["compatible"] == COMPATIBLE
    assert info["version"] == "1.4.0"
    assert info["hooks"] == ["install-check"]
    assert [next(iter(image)) for image in info["images"]] == ["rootfs"]


@needs("rauc", "mksquashfs", "mkfs.ext4", "openssl")
def test_bundle_signed_by_another_ca_is_refused(tmp_path: Path, dev_keys: Path) -> None:
    other = tmp_path / "other"
    assert make_dev_keys(other).returncode == 0
    bundle = build_bundle(tmp_path, other)
    result = rauc_info(bundle, f"--keyring={dev_keys / 'ca.cert.pem'}")
    assert result.returncode != 0
    assert "signature verification failed" in result.stderr


@needs("rauc", "mksquashfs", "mkfs.ext4", "openssl")
def test_pi4_system_conf_is_read_by_rauc_and_allows_only_verity(
    tmp_path: Path, dev_keys: Path
) -> None:
    conf = tmp_path / "system.conf"
    conf.write_text(
        PI4_CONF.read_text()
        .replace("path=/etc/rauc/ca.cert.pem", f"path={dev_keys / 'ca.cert.pem'}")
        .replace("data-directory=/data/rauc", f"data-directory={tmp_path / 'data'}")
    )
    verity = build_bundle(tmp_path, dev_keys, bundle_format="verity")
    plain = build_bundle(tmp_path, dev_keys, bundle_format="plain")
    # check-purpose=codesign is in force: the dev signer carries codeSigning.
    accepted = rauc_info(verity, f"--conf={conf}")
    assert accepted.returncode == 0, accepted.stderr
    refused = rauc_info(plain, f"--conf={conf}")
    assert refused.returncode != 0
    assert "Bundle format 'plain' not allowed" in refused.stderr


SANDBOX_SCRIPT = """\
export DBUS_STARTER_BUS_TYPE=session
rauc --conf="$SANDBOX/system.conf" --mount="$SANDBOX/mnt" service --override-boot-slot=A \
    >"$SANDBOX/service.log" 2>&1 &
service=$!
tries=0
until rauc status >/dev/null 2>&1; do
    tries=$((tries + 1))
    [ "$tries" -lt 100 ] || { echo "rauc service did not start" >&2; kill "$service"; exit 99; }
    sleep 0.1
done
for bundle in "$@"; do
    if rauc install "$bundle" >"$bundle.log" 2>&1; then
        echo "$bundle ok"
    else
        echo "$bundle failed"
    fi
done
kill "$service"
wait "$service"
"""

BOOT_BACKEND = """\
#!/bin/sh
state=$(dirname "$0")/bootstate
[ -f "$state" ] || printf 'primary=A\\nA=good\\nB=good\\n' >"$state"
case "$1" in
    get-primary) sed -n 's/^primary=//p' "$state" ;;
    set-primary) sed -i "s/^primary=.*/primary=$2/" "$state" ;;
    get-state) sed -n "s/^$2=//p" "$state" ;;
    set-state) sed -i "s/^$2=.*/$2=$3/" "$state" ;;
    *) exit 1 ;;
esac
"""


def can_install_for_real() -> bool:
    tools = ("rauc", "dbus-run-session", "mksquashfs", "mkfs.ext4", "openssl")
    return (
        os.geteuid() == 0
        and all(shutil.which(t) for t in tools)
        and Path("/dev/loop-control").exists()
    )


@pytest.mark.skipif(not can_install_for_real(), reason="needs root, loop devices and D-Bus")
def test_rauc_install_runs_the_hook_and_shows_its_reason(tmp_path: Path, dev_keys: Path) -> None:
    sandbox = tmp_path / "sandbox"
    (sandbox / "mnt").mkdir(parents=True)
    (sandbox / "data").mkdir()
    for slot in ("a.img", "b.img"):
        with (sandbox / slot).open("wb") as stream:
            stream.truncate(8 * 1024 * 1024)
        subprocess.run(["mkfs.ext4", "-q", "-F", str(sandbox / slot)], check=True)
    backend = sandbox / "boot.sh"
    backend.write_text(BOOT_BACKEND)
    backend.chmod(0o755)
    (sandbox / "system.conf").write_text(
        textwrap.dedent(f"""\
            [system]
            compatible={COMPATIBLE}
            bootloader=custom
            data-directory={sandbox / "data"}

            [keyring]
            path={dev_keys / "ca.cert.pem"}

            [handlers]
            bootloader-custom-backend={backend}

            [slot.rootfs.0]
            device={sandbox / "a.img"}
            type=ext4
            bootname=A

            [slot.rootfs.1]
            device={sandbox / "b.img"}
            type=ext4
            bootname=B
            """)
    )
    (sandbox / "os-release").write_text("VERSION_ID=1.3.0\n")
    down = build_bundle(tmp_path, dev_keys, version="1.2.0")
    up = build_bundle(tmp_path, dev_keys, version="1.4.0")
    forced = build_bundle(tmp_path, dev_keys, version="1.2.0", marker=True)
    script = sandbox / "run.sh"
    script.write_text(SANDBOX_SCRIPT)
    env = {
        **os.environ,
        "SANDBOX": str(sandbox),
        "EVSED_OS_RELEASE": str(sandbox / "os-release"),
        "EVSED_DATA_DIR": str(sandbox / "data"),
        "EVSED_MIN_FREE_MIB": "1",
    }
    env.pop("DBUS_SESSION_BUS_ADDRESS", None)
    result = subprocess.run(
        ["dbus-run-session", "--", "sh", str(script), str(down), str(up), str(forced)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr + (sandbox / "service.log").read_text()
    assert result.stdout.splitlines() == [f"{down} failed", f"{up} ok", f"{forced} ok"]
    rejection = Path(f"{down}.log").read_text()
    assert (
        "Bundle rejected: Hook returned: evsed: refusing downgrade from 1.3.0 to 1.2.0" in rejection
    )
