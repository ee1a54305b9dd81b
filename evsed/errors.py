"""Errors of the daemon, split by what the caller can do about them."""

from __future__ import annotations

from pathlib import Path

EXIT_CONFIG = 78  # EX_CONFIG from sysexits.h: systemd shows it as "configuration error"


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
