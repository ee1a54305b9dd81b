"""The diagnostics archive (OCPP 1.6 §5.9 GetDiagnostics; GetLog's DiagnosticsLog): a tar.gz
built in a worker thread, holding

- ``log.txt``: the daemon's log from its in-memory ring (:class:`evsed.logs.LogRing`, this
  process's newest records at the configured level) within the requested time window;
- ``ocpp-frames.txt``: the newest OCPP frames both ways within the window;
- ``config.json``: the configuration with its secrets removed;
- ``faults.json``: the fault history (:mod:`evsed.store.faults`), newest first;
- ``versions.json``: firmware, evsed, Python and the installed packages;
- ``firmware.json``: the update state and the RAUC slots, when firmware updates are enabled;
- ``manifest.json``: when and for which window it was made, and what was redacted.

Every text member goes through :mod:`evsed.diagnostics.redact`.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import io
import json
import platform
import sys
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from evsed import __version__
from evsed.clock import iso
from evsed.config import Config
from evsed.diagnostics.frames import FrameRing
from evsed.diagnostics.redact import redact_config, redact_text
from evsed.logs import LogRing
from evsed.store.db import Database
from evsed.store.faults import fault_history


@dataclass(frozen=True)
class ArchiveSources:
    """Where the archive's members come from."""

    config: Config
    db: Database
    firmware_version: str
    logs: LogRing | None
    frames: FrameRing
    firmware: Callable[[], dict[str, Any]] | None  # None: firmware updates are disabled


@dataclass(frozen=True, slots=True)
class Window:
    """The time window of log lines and frames (either end open)."""

    start: datetime | None = None
    stop: datetime | None = None

    def holds(self, at: datetime) -> bool:
        return (self.start is None or at >= self.start) and (self.stop is None or at <= self.stop)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What must be read on the event loop (the rings, the firmware state) before the
    archive is written in a thread."""

    frames: list[tuple[datetime, str, str]]
    firmware: dict[str, Any] | None


def take_snapshot(sources: ArchiveSources) -> Snapshot:
    firmware = sources.firmware() if sources.firmware is not None else None
    return Snapshot(sources.frames.snapshot(), firmware)


def build_archive(
    sources: ArchiveSources, snapshot: Snapshot, window: Window, dest: Path, now: datetime
) -> Path:
    """Write the archive to ``dest`` (blocking: file I/O, SQLite, compression)."""
    logs = (
        sources.logs.lines(window.start, window.stop)
        if sources.logs is not None
        else ["(no log ring in this process)"]
    )
    frames = [
        f"{iso(at)} {direction} {frame}"
        for at, direction, frame in snapshot.frames
        if window.holds(at)
    ]
    members: dict[str, str] = {
        "manifest.json": _json(
            {
                "charger": sources.config.charger.id,
                "created": iso(now),
                "window": {
                    "start": iso(window.start) if window.start else None,
                    "stop": iso(window.stop) if window.stop else None,
                },
                "log_source": "in-memory ring of this process's newest log records",
                "redacted": "passwords in URLs; key, password, token and secret fields;"
                " AuthorizationKey values; private keys; Basic credentials",
            }
        ),
        "log.txt": _lines(logs),
        "ocpp-frames.txt": _lines(frames),
        "config.json": _json(redact_config(_plain(sources.config))),
        "faults.json": _json(fault_history(sources.db)),
        "versions.json": _json(versions(sources.firmware_version)),
    }
    if snapshot.firmware is not None:
        members["firmware.json"] = _json(redact_config(snapshot.firmware))
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(dest, "w:gz") as tar:
        for name, text in members.items():
            data = redact_text(text).encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = int(time.time())
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return dest


def versions(firmware_version: str) -> dict[str, Any]:
    packages = {
        str(d.metadata["Name"]): d.version
        for d in importlib.metadata.distributions()
        if d.metadata["Name"]
    }
    return {
        "firmware": firmware_version,
        "evsed": __version__,
        "python": sys.version,
        "platform": platform.platform(),
        "packages": dict(sorted(packages.items(), key=lambda kv: kv[0].lower())),
    }


def _plain(config: Config) -> dict[str, Any]:
    plain: dict[str, Any] = dataclasses.asdict(config)
    plain.pop("source", None)
    return plain


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, default=str) + "\n"


def _lines(lines: list[str]) -> str:
    return "".join(redact_text(line) + "\n" for line in lines)
