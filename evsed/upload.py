"""Uploading one local file to a location URL: FTP (STOR), HTTP and HTTPS (PUT).

For the files a CSMS asks for (OCPP 1.6 §5.9 GetDiagnostics, the Security Whitepaper's GetLog,
and OCPP 2.0.1's GetLog later): the location is a directory, and the file goes there under its
own name. Version-neutral: the caller turns :class:`UploadResult` into its protocol's status.

- ``ftp://user:password@host[:port]/dir/``: login (anonymous without a user), passive mode,
  binary ``STOR``. A 530 reply (not logged in) is :attr:`UploadResult.PERMISSION_DENIED`; other
  5xx replies are refusals that a retry would not change; 4xx replies are transient.
- ``http://`` and ``https://``: ``PUT`` of the file body with its length; user:password in the
  URL is sent as Basic authentication. HTTPS verifies the server's certificate and host name
  against the system trust store (or ``ca_file``). 2xx is success; 401 and 403 are
  :attr:`UploadResult.PERMISSION_DENIED`; other 4xx are refusals; 5xx and network errors are
  transient.

``retries`` and ``retry_interval_s`` mean what OCPP's retries and retryInterval do: how many
times to try again after a transient failure, and how long to wait between tries. Blocking
I/O (ftplib, http.client) runs in a worker thread; ``timeout_s`` bounds connecting and each
wait on the network, and the whole of one attempt. A URL is logged with its password
replaced by ``***`` (:func:`evsed.ota.download.redact_url`).
"""

from __future__ import annotations

import asyncio
import base64
import enum
import ftplib
import http.client
import logging
import os
import socket
import ssl
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from evsed.urls import redact_url

__all__ = ["UploadResult", "UploadStatus", "redact_url", "target_url", "upload"]

log = logging.getLogger(__name__)

SCHEMES = ("ftp", "http", "https")
CHUNK_BYTES = 64 * 1024
DEFAULT_TIMEOUT_S = 60.0


class UploadResult(enum.StrEnum):
    """How an upload ended (or that it began: :attr:`UPLOADING`)."""

    UPLOADING = "uploading"
    UPLOADED = "uploaded"
    FAILED = "failed"
    PERMISSION_DENIED = "permission-denied"  # HTTP 401/403, FTP 530
    BAD_URL = "bad-url"  # not a URL this module can upload to


@dataclass(frozen=True, slots=True)
class UploadStatus:
    result: UploadResult
    reason: str = ""  # what went wrong, for a log or a technician; never a password


# Called once with UPLOADING when the first attempt begins, then once with how it ended.
StatusCallback = Callable[[UploadStatus], Awaitable[None]]


class UploadError(Exception):
    """One attempt failed; ``retryable``: another attempt may succeed."""

    def __init__(self, result: UploadResult, reason: str, *, retryable: bool) -> None:
        super().__init__(reason)
        self.result = result
        self.reason = reason
        self.retryable = retryable


def target_url(location: str, name: str) -> str:
    """Where ``name`` goes for a location directory (its path ends with ``/`` or not)."""
    parts = urlsplit(location)
    path = parts.path if parts.path.endswith("/") else parts.path + "/"
    return urlunsplit((parts.scheme, parts.netloc, path + quote(name), parts.query, ""))


async def upload(
    path: Path,
    location: str,
    *,
    retries: int = 0,
    retry_interval_s: float = 0.0,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    ca_file: str | None = None,
    status: StatusCallback | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> UploadStatus:
    """Upload ``path`` into the directory ``location``; tries ``1 + retries`` times at most,
    ``retry_interval_s`` apart, while failures are transient. Returns how it ended (also told
    to ``status``). Cancelling the awaiting task stops the transfer within one chunk."""
    safe = redact_url(location)
    problem = _url_problem(location)
    if problem:
        log.warning("upload to %s refused: %s", safe, problem)
        return await _tell(status, UploadStatus(UploadResult.BAD_URL, problem))
    await _tell(status, UploadStatus(UploadResult.UPLOADING))
    attempts = 1 + max(0, retries)
    for attempt in range(1, attempts + 1):
        try:
            await _attempt(path, location, timeout_s, ca_file)
        except UploadError as exc:
            log.warning(
                "upload of %s to %s, attempt %d of %d: %s",
                path.name,
                safe,
                attempt,
                attempts,
                exc.reason,
            )
            if not exc.retryable or attempt == attempts:
                return await _tell(status, UploadStatus(exc.result, exc.reason))
            await sleep(max(0.0, retry_interval_s))
            continue
        log.info("uploaded %s to %s", path.name, safe)
        return await _tell(status, UploadStatus(UploadResult.UPLOADED))
    raise AssertionError("unreachable")


async def _tell(status: StatusCallback | None, outcome: UploadStatus) -> UploadStatus:
    if status is not None:
        await status(outcome)
    return outcome


def _url_problem(location: str) -> str:
    try:
        parts = urlsplit(location)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        return f"not a URL ({exc})"
    if parts.scheme not in SCHEMES:
        return f"scheme {parts.scheme or '(none)'!r} is not one of {', '.join(SCHEMES)}"
    if not parts.hostname:
        return "no host"
    return ""


async def _attempt(path: Path, location: str, timeout_s: float, ca_file: str | None) -> None:
    transfer = _Transfer(path, target_url(location, path.name), timeout_s, ca_file)
    try:
        await asyncio.to_thread(transfer.run)
    except asyncio.CancelledError:
        transfer.cancelled.set()  # the worker stops at its next chunk
        raise


class _Transfer:
    """One attempt, in a worker thread."""

    def __init__(self, path: Path, url: str, timeout_s: float, ca_file: str | None) -> None:
        self.path = path
        self.url = url
        self.parts = urlsplit(url)
        self.timeout_s = timeout_s
        self.ca_file = ca_file
        self.deadline = time.monotonic() + timeout_s
        self.cancelled = threading.Event()

    def run(self) -> None:
        try:
            with self.path.open("rb") as body:
                if self.parts.scheme == "ftp":
                    self._ftp(body)
                else:
                    self._http(body)
        except UploadError:
            raise
        except http.client.InvalidURL as exc:
            raise UploadError(UploadResult.BAD_URL, str(exc), retryable=False) from None
        except ssl.SSLCertVerificationError as exc:
            reason = f"TLS: {exc.verify_message}"
            raise UploadError(UploadResult.FAILED, reason, retryable=False) from None
        except OSError as exc:  # refused, reset, timed out, DNS, TLS, the local file
            raise UploadError(UploadResult.FAILED, _describe(exc), retryable=True) from None
        except ValueError as exc:  # a host name that cannot be encoded, a bad header value
            raise UploadError(UploadResult.BAD_URL, str(exc), retryable=False) from None

    def _chunks(self, body: BinaryIO) -> bytes:
        if self.cancelled.is_set():
            raise UploadError(UploadResult.FAILED, "cancelled", retryable=False)
        if time.monotonic() > self.deadline:
            raise UploadError(
                UploadResult.FAILED, f"not done within {self.timeout_s:g} s", retryable=True
            )
        return body.read(CHUNK_BYTES)

    # -- FTP (RFC 959) ------------------------------------------------------------------------

    def _ftp(self, body: BinaryIO) -> None:
        parts = self.parts
        ftp = ftplib.FTP(timeout=self.timeout_s)
        try:
            ftp.connect(parts.hostname or "", parts.port or 21)
            ftp.login(unquote(parts.username or "anonymous"), unquote(parts.password or ""))
            ftp.set_pasv(True)
            directory, _, name = unquote(parts.path).lstrip("/").rpartition("/")
            if directory:
                ftp.cwd(directory)
            with ftp.transfercmd(f"STOR {name}") as data:
                while chunk := self._chunks(body):
                    data.sendall(chunk)
            ftp.voidresp()
        except ftplib.error_perm as exc:
            reply = str(exc)
            if reply.startswith("530"):
                raise UploadError(UploadResult.PERMISSION_DENIED, reply, retryable=False) from None
            raise UploadError(UploadResult.FAILED, reply, retryable=False) from None
        except (ftplib.error_temp, ftplib.error_reply, ftplib.error_proto, EOFError) as exc:
            reason = str(exc) or "FTP error"
            raise UploadError(UploadResult.FAILED, reason, retryable=True) from None
        finally:
            ftp.close()

    # -- HTTP PUT (RFC 9110 §9.3.4) -----------------------------------------------------------

    def _http(self, body: BinaryIO) -> None:
        parts = self.parts
        connection: http.client.HTTPConnection
        if parts.scheme == "https":
            context = ssl.create_default_context(cafile=self.ca_file or None)
            connection = http.client.HTTPSConnection(
                parts.hostname or "", parts.port, timeout=self.timeout_s, context=context
            )
        else:
            connection = http.client.HTTPConnection(
                parts.hostname or "", parts.port, timeout=self.timeout_s
            )
        target = urlunsplit(("", "", parts.path, parts.query, ""))
        size = os.fstat(body.fileno()).st_size
        headers = {
            "Content-Type": "application/octet-stream",
            "Content-Length": str(size),
            "User-Agent": "evsed",
        }
        if parts.username is not None:
            credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            headers["Authorization"] = "Basic " + base64.b64encode(credentials.encode()).decode()
        try:
            connection.putrequest("PUT", target, skip_accept_encoding=True)
            for name, value in headers.items():
                connection.putheader(name, value)
            connection.endheaders()
            try:
                while chunk := self._chunks(body):
                    connection.send(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass  # a server that refuses early answers before it hangs up: read it
            response = connection.getresponse()
            response.read()
        except http.client.HTTPException as exc:
            raise UploadError(UploadResult.FAILED, f"HTTP: {exc!r}", retryable=True) from None
        finally:
            connection.close()
        code = response.status
        if 200 <= code < 300:
            return
        reason = f"HTTP {code} {response.reason}"
        if code in (401, 403):
            raise UploadError(UploadResult.PERMISSION_DENIED, reason, retryable=False)
        retryable = code >= 500 or code in (408, 429)
        raise UploadError(UploadResult.FAILED, reason, retryable=retryable)


def _describe(exc: OSError) -> str:
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timed out"
    return exc.strerror or str(exc) or type(exc).__name__
