"""Errors of the daemon, split by what the caller can do about them."""

from __future__ import annotations

from pathlib import Path

EXIT_CONFIG = 78  # EX_CONFIG from sysexits.h: systemd shows it as "configuration error"
# EX_CANTCREAT from sysexits.h: the state directory (or its database) cannot be used. Like 78,
# the unit does not restart on it: a full, read-only or damaged data partition needs a person.
EXIT_STATE_DIR = 73


class EvsedError(Exception):
    """Base class for every error raised by evsed itself."""


class ConfigError(EvsedError):
    """The configuration cannot be used. Fatal at start-up: the daemon exits with code 78."""

    def __init__(self, path: Path | str, key: str, problem: str) -> None:
        self.path = str(path)
        self.key = key
        self.problem = problem
        where = f"{self.path}: {key}" if key else self.path
        super().__init__(f"{where}: {problem}")
