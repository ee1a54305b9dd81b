"""Static file serving with byte ranges, for firmware and diagnostics downloads with resume.

Implements the single-range subset of RFC 9110 §14 that download clients use to resume:
``bytes=N-``, ``bytes=N-M`` and ``bytes=-K``. Several ranges in one header are answered with
the whole file (a server may ignore Range, §14.2).
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import unquote

_LOG = logging.getLogger(__name__)
_CHUNK = 64 * 1024


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


def send_file(handler: BaseHTTPRequestHandler, path: Path, *, head_only: bool = False) -> None:
    """Answer a GET/HEAD with ``path``: 200, 206 for a satisfiable Range, 416 otherwise."""
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
        return
    with path.open("rb") as source:
        source.seek(first)
        remaining = length
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
