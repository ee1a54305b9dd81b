"""Static file serving with byte ranges, for firmware and diagnostics downloads with resume.

Implements the single-range subset of RFC 9110 §14 that download clients use to resume:
``bytes=N-``, ``bytes=N-M`` and ``bytes=-K``. Several ranges in one header are answered with
the whole file (a server may ignore Range, §14.2). Names may contain ``/``, so a directory
tree (a casync chunk store, ``NAME.castr/abcd/<id>.cacnk``) is served as it lies on disk.

:class:`FileLedger` counts the body bytes actually written per path, which is what a charger on
a metered link pays for; :class:`FileFaults` makes files under a prefix disappear after a
number of requests, as a store being deleted or replaced in the middle of an update would.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import unquote

_LOG = logging.getLogger(__name__)
_CHUNK = 64 * 1024


class FileLedger:
    """Bytes and requests served per path (thread-safe: the HTTP server runs a thread each)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._paths: dict[str, dict[str, int]] = {}

    def record(self, name: str, sent: int) -> None:
        with self._lock:
            entry = self._paths.setdefault(name, {"bytes": 0, "requests": 0})
            entry["bytes"] += sent
            entry["requests"] += 1

    def snapshot(self, prefix: str = "") -> dict[str, object]:
        """``{"bytes", "requests", "paths": {name: {"bytes", "requests"}}}`` under ``prefix``."""
        with self._lock:
            paths = {k: dict(v) for k, v in self._paths.items() if k.startswith(prefix)}
        return {
            "bytes": sum(v["bytes"] for v in paths.values()),
            "requests": sum(v["requests"] for v in paths.values()),
            "paths": paths,
        }

    def reset(self) -> None:
        with self._lock:
            self._paths.clear()


@dataclass
class _Fault:
    prefix: str
    passes_left: int


class FileFaults:
    """Files under a prefix that disappear (404) after a number of requests have been served."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[_Fault] = []

    def set_gone(self, prefix: str, after: int) -> None:
        """Serve ``after`` more requests under ``prefix``, then answer 404 for every one."""
        if after < 0:
            raise ValueError("'after' must not be negative")
        with self._lock:
            self._faults = [f for f in self._faults if f.prefix != prefix]
            self._faults.append(_Fault(prefix, after))

    def clear(self, prefix: str | None = None) -> None:
        with self._lock:
            self._faults = [f for f in self._faults if prefix is not None and f.prefix != prefix]

    def gone(self, name: str) -> bool:
        """Whether ``name`` is to be refused now (counts one request of a matching fault)."""
        with self._lock:
            fault = next((f for f in self._faults if name.startswith(f.prefix)), None)
            if fault is None:
                return False
            if fault.passes_left > 0:
                fault.passes_left -= 1
                return False
            return True

    def snapshot(self) -> list[dict[str, object]]:
        with self._lock:
            return [{"prefix": f.prefix, "after": f.passes_left} for f in self._faults]


class RangeNotSatisfiable(Exception):
    """The range starts beyond the end of the file (RFC 9110 §15.5.17: 416)."""


def resolve_file(root: Path, name: str) -> Path | None:
    """The file ``name`` (URL-encoded, may contain ``/``) under ``root``; None if not served.

    Refuses ``..`` components, absolute names and symlinks leading outside ``root``.
    """
    decoded = unquote(name)
    parts = decoded.split("/")
    if not decoded or "\x00" in decoded or decoded.startswith("/") or ".." in parts:
        _LOG.warning("refused file name %r", name)
        return None
    base = root.resolve()
    candidate = (base / decoded).resolve()
    if not candidate.is_relative_to(base):
        _LOG.warning("refused file name %r: outside %s", name, base)
        return None
    return candidate if candidate.is_file() else None


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """First and last byte (inclusive) asked for, or None to send the whole file.

    Raises RangeNotSatisfiable when the range lies beyond a ``size``-byte file.
    """
    if header is None:
        return None
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first_text, dash, last_text = spec.strip().partition("-")
    if not dash:
        return None
    try:
        if not first_text:  # suffix range: the last K bytes
            suffix = int(last_text)
            if suffix <= 0 or size == 0:
                raise RangeNotSatisfiable(header)
            return max(0, size - suffix), size - 1
        first = int(first_text)
        last = int(last_text) if last_text else None
    except ValueError:
        return None  # syntactically invalid: ignore the header (RFC 9110 §14.2)
    if first < 0 or (last is not None and last < first):
        return None
    if first >= size:
        raise RangeNotSatisfiable(header)
    return first, size - 1 if last is None else min(last, size - 1)


def send_file(
    handler: BaseHTTPRequestHandler,
    path: Path,
    *,
    head_only: bool = False,
    ledger: FileLedger | None = None,
    name: str = "",
) -> None:
    """Answer a GET/HEAD with ``path``: 200, 206 for a satisfiable Range, 416 otherwise.

    With a ``ledger``, the body bytes written are recorded under ``name``, also when the client
    leaves early."""
    size = path.stat().st_size
    try:
        span = parse_range(handler.headers.get("Range"), size)
    except RangeNotSatisfiable:
        handler.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
        handler.send_header("Content-Range", f"bytes */{size}")
        handler.send_header("Content-Length", "0")
        handler.end_headers()
        return
    first, last = span if span is not None else (0, size - 1)
    length = last - first + 1 if size else 0
    if span is None:
        handler.send_response(HTTPStatus.OK)
    else:
        handler.send_response(HTTPStatus.PARTIAL_CONTENT)
        handler.send_header("Content-Range", f"bytes {first}-{last}/{size}")
    handler.send_header("Content-Type", "application/octet-stream")
    handler.send_header("Content-Length", str(length))
    handler.send_header("Accept-Ranges", "bytes")
    handler.end_headers()
    if head_only or length == 0:
        if ledger is not None:
            ledger.record(name, 0)
        return
    remaining = length
    with path.open("rb") as source:
        source.seek(first)
        try:
            while remaining > 0:
                chunk = source.read(min(_CHUNK, remaining))
                if not chunk:
                    break  # file shrank while being sent
                handler.wfile.write(chunk)
                remaining -= len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            # Downloaders that test resume hang up mid-file on purpose.
            _LOG.info("client left %s after %d of %d bytes", path.name, length - remaining, length)
        finally:
            if ledger is not None:
                ledger.record(name, length - remaining)
