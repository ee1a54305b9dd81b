"""The credentials of the charger's security profile, and which settings are in force.

Security Whitepaper section 2: profile 0 (none), 1 (HTTP Basic auth over ws://), 2 (TLS, the
CSMS certificate checked against the CentralSystemRootCertificates, plus Basic auth), 3 (TLS
with a client certificate). Basic auth sends the charger id and the AuthorizationKey, which
the CSMS sets as a string of 32 to 40 hexadecimal digits (16 to 20 bytes, A00.FR.205); the
password is those bytes.

What is kept, in ``<state_dir>/security`` (directory 0700, files 0600):

- ``settings.json``: the profile and AuthorizationKey in force, whether a connection with
  them has worked yet, and the last settings that did (to fall back to, A05.FR.08);
- ``client.pem`` / ``client.key``: the charge point certificate (with its chain) and key;
  ``pending.key``: the key of a certificate request the CSMS has not answered yet.

Initial values (a factory provisions a charger before its first boot) come from the config
(``csms.security_profile``, ``csms.authorization_key``, ``csms.client_cert`` and
``csms.client_key``) or from files put in that directory: ``authorization-key`` (the hex key)
and ``client.pem`` / ``client.key``. The profile in force is the higher of the configured one
and the one the CSMS raised it to; lowering it is a local act (edit the config and remove
``settings.json``), never an OCPP one (A00.FR.005).

Nothing here logs a key. Synchronous file I/O: call the writing methods through a thread.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from evsed.config import CsmsConfig

log = logging.getLogger(__name__)

SETTINGS_FILE = "settings.json"
KEY_FILE = "authorization-key"
CLIENT_CERT = "client.pem"
CLIENT_KEY = "client.key"
PENDING_KEY = "pending.key"
PROFILES = (0, 1, 2, 3)
_HEX_KEY = re.compile(r"(?:[0-9A-Fa-f]{2}){16,20}")


class CredentialsError(ValueError):
    """Provisioned credentials that cannot be used (the message names the file or key)."""


def valid_authorization_key(value: str) -> bool:
    """16 to 20 bytes as 32 to 40 hexadecimal digits (A00.FR.205)."""
    return _HEX_KEY.fullmatch(value) is not None


@dataclass(frozen=True, slots=True)
class SecuritySettings:
    profile: int
    authorization_key: str  # hex, "" when none

    @property
    def password(self) -> bytes:
        return bytes.fromhex(self.authorization_key)


class Credentials:
    def __init__(self, directory: Path, config: CsmsConfig) -> None:
        self.directory = directory
        self._config = config
        self.active = SecuritySettings(0, "")
        self.confirmed = True  # the active settings have connected (or nothing was changed)
        self.previous: SecuritySettings | None = None  # the last settings that connected

    # -- loading ------------------------------------------------------------------------------

    def load(self) -> None:
        """Read what is stored, or the initial values; CredentialsError for unusable files."""
        _private_directory(self.directory)
        stored = self._read_settings()
        key = self._initial_key()
        initial = SecuritySettings(self._config.security_profile, key)
        if stored is None:
            self.active, self.confirmed, self.previous = initial, True, None
            return
        active, confirmed, previous = stored
        if initial.profile > active.profile:
            # The image raised the profile (a local act): it wins over what the CSMS set.
            log.info("security profile %d from the configuration", initial.profile)
            active = replace(active, profile=initial.profile)
            active = replace(active, authorization_key=active.authorization_key or key)
        self.active, self.confirmed, self.previous = active, confirmed, previous

    def _initial_key(self) -> str:
        configured = self._config.authorization_key
        path = self.directory / KEY_FILE
        if not configured and path.exists():
            try:
                configured = path.read_text().strip()
            except OSError as exc:
                raise CredentialsError(f"{path}: cannot read: {exc.strerror}") from None
            if not valid_authorization_key(configured):
                raise CredentialsError(f"{path}: not 32 to 40 hexadecimal digits")
        return configured

    def _read_settings(self) -> tuple[SecuritySettings, bool, SecuritySettings | None] | None:
        path = self.directory / SETTINGS_FILE
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise CredentialsError(f"{path}: unreadable ({exc}); remove it to start over") from None
        try:
            active = _settings(data["active"])
            previous = _settings(data["previous"]) if data.get("previous") else None
            return active, bool(data["confirmed"]), previous
        except (KeyError, TypeError, ValueError) as exc:
            raise CredentialsError(f"{path}: malformed ({exc}); remove it to start over") from None

    # -- files ---------------------------------------------------------------------------------

    @property
    def client_cert(self) -> Path | None:
        """The charge point certificate (chain) in use: the one the CSMS signed, else the
        provisioned one (state directory, else the config)."""
        own = self.directory / CLIENT_CERT
        if own.exists():
            return own
        return Path(self._config.client_cert) if self._config.client_cert else None

    @property
    def client_key(self) -> Path | None:
        own = self.directory / CLIENT_KEY
        if own.exists():
            return own
        return Path(self._config.client_key) if self._config.client_key else None

    # -- changes (each returns once committed) ------------------------------------------------

    def change(self, settings: SecuritySettings) -> None:
        """New settings, used from the next connection; the ones in force are kept to fall back
        to if they connected and the new ones never do."""
        if self.confirmed:
            self.previous = self.active
        self.active, self.confirmed = settings, False
        self._write()

    def connected(self) -> bool:
        """A connection with the active settings worked; True if that confirms new ones."""
        if self.confirmed:
            return False
        self.confirmed, self.previous = True, None
        self._write()
        return True

    def fall_back(self) -> SecuritySettings | None:
        """Back to the last settings that connected (None: there are none to go back to)."""
        if self.confirmed or self.previous is None:
            return None
        self.active, self.previous, self.confirmed = self.previous, None, True
        self._write()
        return self.active

    def _write(self) -> None:
        data = {
            "active": asdict(self.active),
            "confirmed": self.confirmed,
            "previous": asdict(self.previous) if self.previous else None,
        }
        write_private(self.directory / SETTINGS_FILE, json.dumps(data).encode())


def _settings(data: dict[str, object]) -> SecuritySettings:
    profile = int(str(data["profile"]))
    key = str(data["authorization_key"])
    if profile not in PROFILES or (key and not valid_authorization_key(key)):
        raise ValueError("profile or key out of range")
    return SecuritySettings(profile, key)


def _private_directory(directory: Path) -> None:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, readable by the owner only (0600), fsynced."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
