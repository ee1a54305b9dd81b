"""Firmware download into the data partition: HTTP, HTTPS and FTP, resumable, constant memory.

OCPP 1.6 §5.19 Update Firmware: UpdateFirmware.req (§6.55) gives a ``location`` URI, http(s)://
or ftp:// in deployments. The body streams into ``<dest>.part`` in ``chunk_size`` pieces and is
renamed to ``dest`` only once complete and fsynced, so a file named ``dest`` is never partial.
After an interruption (lost connection, power cut, cancellation) the next call resumes the
``.part``: HTTP ``Range: bytes=N-`` with ``If-Range`` (RFC 9110 §14.2, §13.1.5), FTP ``REST N``
(RFC 959 §4.1.3). A sidecar ``<dest>.part.meta`` records which URL (as a hash: URLs may hold
passwords) and which version (ETag, Last-Modified, FTP MDTM and size) the bytes came from, so a
part of another firmware is never continued. A ``.part`` without sidecar is trusted.

Blocking I/O (http.client, ftplib) runs in a worker thread. URLs are logged with the password
and query string (which may hold a signature, e.g. presigned links) replaced by ``***``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ftplib
import hashlib
import http.client
import json
import logging
import os
import shutil
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, TypeVar
from urllib.parse import unquote, urljoin, urlsplit

from evsed.errors import EvsedError
from evsed.urls import redact_url

_LOG = logging.getLogger(__name__)
_T = TypeVar("_T")

SCHEMES = ("http", "https", "ftp")
_MAX_REDIRECTS = 5
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_PROGRESS_BYTES = 1024 * 1024
_PROGRESS_SECONDS = 1.0

Progress = Callable[[int, int | None], None]


class DownloadError(EvsedError):
    """A download failed. ``retryable`` says whether the same request may succeed later.

    Retryable (transient): connection refused/reset/closed early, timeouts, DNS failure, TLS
    errors other than verification, HTTP 408/429/5xx, FTP 4xx replies.
    Not retryable (will fail the same way until someone changes something): bad URL or scheme,
    HTTP 4xx (401, 403, 404, ...), FTP 5xx replies (login incorrect, no such file), server
    certificate or host name not verified, unreadable CA file, too many redirects or a redirect
    from https to http, not enough free space, local file-system errors.
    """

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable


class _Cancelled(Exception):
    """The awaiting task was cancelled: the worker unwinds and keeps the ``.part`` file."""


class _Restart(Exception):
    """The ``.part`` cannot be continued: discard it and download from the start."""


async def download(
    url: str,
    dest: Path,
    *,
    ca_file: str | None = None,
    timeout: float = 30.0,
    min_free_bytes: int = 0,
    progress: Progress | None = None,
    chunk_size: int = 64 * 1024,
    log_level: int = logging.INFO,
) -> Path:
    """Fetch ``url`` (http, https or ftp) into ``dest``, resuming ``dest``.part; return ``dest``.

    One attempt only: OCPP ``retries``/``retryInterval`` (§6.55) are the caller's job, guided
    by ``DownloadError.retryable``. HTTPS verifies the server certificate and host name against
    ``ca_file`` (PEM bundle) or the system CAs. ``ftp://user:password@host:port/path`` logs in,
    anonymously when there is no user; the path is relative to the login directory (RFC 1738
    §3.2.2; ``ftp://host//abs/path`` for an absolute one). HTTP user:password is sent as Basic
    authentication. ``timeout`` bounds connecting and each wait for data, not the transfer.

    Free space: when the size is known, fails before writing if the download would leave less
    than ``min_free_bytes`` in ``dest``'s file system; every chunk is checked again too (the
    size may be unknown, others write to the disk). ``progress(done, total_or_None)`` runs on
    the event loop when headers arrive, after each MiB or second, and at the end.

    Cancelling the awaiting task stops the transfer within one chunk (a stalled socket is shut
    down) and returns only once the worker thread stopped writing, keeping ``.part`` to resume.
    An existing ``dest`` is replaced.
    """
    transfer = _Transfer(
        url,
        dest,
        ca_file=ca_file,
        timeout=timeout,
        min_free_bytes=min_free_bytes,
        chunk_size=chunk_size,
        progress=progress,
        loop=asyncio.get_running_loop(),
        log_level=log_level,
    )
    worker = asyncio.ensure_future(asyncio.to_thread(transfer.run))
    # After a cancellation nobody awaits the worker: fetch its outcome so asyncio does not
    # report "exception never retrieved" for the expected _Cancelled.
    worker.add_done_callback(lambda done: done.cancelled() or done.exception())
    try:
        return await asyncio.shield(worker)
    except asyncio.CancelledError:
        transfer.cancel()
        # Wait for the thread so that no one writes the .part any more once we return.
        await asyncio.wait([worker])
        _LOG.info("download of %s cancelled, %s kept", transfer.safe_url, transfer.part.path)
        raise


class _PartFile:
    """``<dest>.part`` being filled, with its sidecar saying where its bytes came from."""

    def __init__(self, dest: Path, url: str, min_free_bytes: int) -> None:
        self.dest = dest
        self.path = dest.with_name(dest.name + ".part")
        self.meta_path = dest.with_name(dest.name + ".part.meta")
        self.size = 0
        self._url_id = hashlib.sha256(url.encode()).hexdigest()
        self._min_free = min_free_bytes
        self._file: BinaryIO | None = None

    def resume_point(self) -> tuple[int, str | None, int | None]:
        """Bytes to keep, with the validator and total recorded for them; 0 to start over."""
        try:
            size = self.path.stat().st_size
            meta = json.loads(self.meta_path.read_text()) if self.meta_path.exists() else {}
        except FileNotFoundError:
            return 0, None, None
        except (OSError, ValueError) as exc:  # unreadable sidecar, e.g. torn by a power cut
            _LOG.info("not resuming %s: sidecar unusable (%s)", self.path, exc)
            return 0, None, None
        if not isinstance(meta, dict) or meta.get("url", self._url_id) != self._url_id:
            _LOG.info("not resuming %s: it holds another download", self.path)
            return 0, None, None
        validator, total = meta.get("validator"), meta.get("total")
        return (
            size,
            validator if isinstance(validator, str) else None,
            total if isinstance(total, int) else None,
        )

    def begin(self, offset: int, validator: str | None, total: int | None) -> None:
        """Prepare to write at ``offset`` (0 truncates); fail now if ``total`` will not fit."""
        if total is not None:
            held = self._local(
                lambda: self.path.stat().st_size if self.path.exists() else 0, "stat"
            )
            free = self._free() + max(0, held - offset)  # truncating gives bytes back
            self._check_space(free, total - offset)
        self.size = offset
        meta = json.dumps({"url": self._url_id, "validator": validator, "total": total})
        self._local(lambda: self.meta_path.write_text(meta), "write")

    def write(self, chunk: bytes) -> None:
        """Append ``chunk``, unless that would leave less than the minimum free space."""
        if self._file is None and self.path.exists():
            self._file = self._open()  # truncating a longer part first gives its space back
        self._check_space(self._free(), len(chunk))
        if self._file is None:
            self._file = self._open()
        file = self._file
        self._local(lambda: file.write(chunk), "write")
        self.size += len(chunk)

    def publish(self) -> Path:
        """fsync, rename to ``dest`` atomically, fsync the directory, drop the sidecar."""

        def finish() -> None:
            file = self._file if self._file is not None else self._open()
            self._file = None
            with file:
                file.flush()
                os.fsync(file.fileno())
            os.replace(self.path, self.dest)
            directory = os.open(self.dest.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
            self.meta_path.unlink(missing_ok=True)

        self._local(finish, "finish")
        return self.dest

    def close(self) -> None:
        """Close the file, keeping it to resume later."""
        if self._file is not None:
            file, self._file = self._file, None
            self._local(file.close, "close")

    def discard(self) -> None:
        """Remove the part and its sidecar."""
        self.close()
        self.size = 0

        def remove() -> None:
            self.path.unlink(missing_ok=True)
            self.meta_path.unlink(missing_ok=True)

        self._local(remove, "remove")

    def _open(self) -> BinaryIO:
        def open_part() -> BinaryIO:
            file = self.path.open("r+b" if self.size and self.path.exists() else "wb")
            file.seek(self.size)
            file.truncate()
            return file

        return self._local(open_part, "open")

    def _free(self) -> int:
        return self._local(lambda: shutil.disk_usage(self.dest.parent).free, "check space of")

    def _check_space(self, free: int, needed: int) -> None:
        if free - needed < self._min_free:
            raise DownloadError(
                f"not enough space in {self.dest.parent}: {needed} more bytes would leave "
                f"{free - needed} of the {self._min_free} that must stay free",
                retryable=False,
            )

    def _local(self, action: Callable[[], _T], verb: str) -> _T:
        try:
            return action()
        except OSError as exc:
            raise DownloadError(f"cannot {verb} {self.path}: {exc}", retryable=False) from exc


class _Transfer:
    """One download attempt, run in a worker thread; ``cancel`` may be called from any thread."""

    def __init__(
        self,
        url: str,
        dest: Path,
        *,
        ca_file: str | None,
        timeout: float,
        min_free_bytes: int,
        chunk_size: int,
        progress: Progress | None,
        loop: asyncio.AbstractEventLoop,
        log_level: int = logging.INFO,
    ) -> None:
        self.safe_url = redact_url(url)
        self._log_level = log_level
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 -- raises ValueError for a port that is not a number
        except ValueError as exc:
            raise DownloadError(f"invalid URL {self.safe_url}: {exc}", retryable=False) from exc
        if parts.scheme not in SCHEMES:
            raise DownloadError(
                f"unsupported URL scheme {parts.scheme!r} in {self.safe_url} "
                f"(supported: {', '.join(SCHEMES)})",
                retryable=False,
            )
        path = unquote(parts.path)
        if not parts.hostname or any(c in path for c in "\r\n\x00"):
            raise DownloadError(f"invalid URL {self.safe_url}", retryable=False)
        if parts.scheme == "ftp" and (len(path) < 2 or path.endswith("/")):
            raise DownloadError(f"no file name in {self.safe_url}", retryable=False)
        if chunk_size <= 0:
            raise ValueError(f"chunk_size must be positive, not {chunk_size}")
        self.part = _PartFile(dest, url, min_free_bytes)
        self._url = url
        self._parts = parts
        self._ca_file = ca_file
        self._tls_context: ssl.SSLContext | None = None
        self._timeout = timeout
        self._chunk_size = chunk_size
        self._progress = progress
        self._loop = loop
        self._reported = (-_PROGRESS_BYTES, 0.0)  # bytes and monotonic time of the last report
        self._cancelled = threading.Event()
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None

    def cancel(self) -> None:
        """Make the worker stop at its next chunk, waking it if it waits for data."""
        self._cancelled.set()
        with self._lock:
            sock = self._socket
        if sock is not None:
            # The base-class shutdown, not SSLSocket's: that one also drops the TLS state the
            # worker is using. shutdown() makes a recv() blocked in the worker return at once.
            with contextlib.suppress(OSError):  # already closed: nothing left to wake
                socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def run(self) -> Path:
        """Download into the part file and publish it; raises DownloadError or _Cancelled."""
        started = time.monotonic()
        if self._cancelled.is_set():
            raise _Cancelled
        offset, validator, total = self.part.resume_point()
        if offset:
            _LOG.info("resuming %s at byte %d into %s", self.safe_url, offset, self.part.path)
        else:
            _LOG.log(self._log_level, "downloading %s into %s", self.safe_url, self.part.path)
        try:
            for attempt in range(2):
                try:
                    if self._parts.scheme == "ftp":
                        self._ftp(offset, validator, total)
                    else:
                        self._http(offset, validator)
                    break
                except _Restart as exc:
                    if attempt:
                        raise DownloadError(f"{self.safe_url}: {exc}", retryable=True) from exc
                    _LOG.info("cannot resume %s (%s): starting over", self.safe_url, exc)
                    self.part.discard()
                    offset, validator, total = 0, None, None
            self._report(self.part.size, self.part.size, force=True)
            path = self.part.publish()
        except (DownloadError, _Cancelled):
            raise
        except (OSError, EOFError, http.client.HTTPException, ftplib.Error) as exc:
            if self._cancelled.is_set():
                raise _Cancelled from exc
            raise self._network_error(exc) from exc
        finally:
            self.part.close()
        _LOG.log(
            self._log_level,
            "downloaded %s to %s: %d bytes in %.1f s",
            self.safe_url,
            path,
            self.part.size,
            time.monotonic() - started,
        )
        return path

    # --- HTTP and HTTPS -----------------------------------------------------------------

    def _http(self, offset: int, validator: str | None) -> None:
        url = self._url
        for _ in range(_MAX_REDIRECTS + 1):
            headers = self._headers(url)
            if offset:
                headers["Range"] = f"bytes={offset}-"
                if validator:
                    headers["If-Range"] = validator
            with self._exchange(url, "GET", headers) as response:
                location = response.getheader("Location")
                if response.status in _REDIRECTS and location:
                    url = self._redirect(url, location)
                elif response.status == 416:
                    self._range_not_satisfiable(response, url, offset, validator)
                    return
                elif response.status in (200, 206):
                    self._receive(response, offset)
                    return
                else:
                    raise _status_error(response, self.safe_url)
        raise DownloadError(
            f"{self.safe_url}: more than {_MAX_REDIRECTS} redirects", retryable=False
        )

    def _receive(self, response: http.client.HTTPResponse, offset: int) -> None:
        length = _number(response.getheader("Content-Length"))
        if response.status == 206:
            first, total = _content_range(response.getheader("Content-Range"))
            if first != offset:
                raise _Restart(f"asked for bytes from {offset}, got {first}")
            if total is None and length is not None:
                total = offset + length
        else:
            if offset:
                _LOG.info("%s: server sent the whole file, starting over", self.safe_url)
            offset, total = 0, length
        self.part.begin(offset, _validator(response), total)
        self._stream(response.read, total)

    def _range_not_satisfiable(
        self, response: http.client.HTTPResponse, url: str, offset: int, validator: str | None
    ) -> None:
        """416 to ``bytes=offset-``: complete if the file has exactly ``offset`` bytes."""
        total = _content_range(response.getheader("Content-Range"))[1]
        if total is None:
            with self._exchange(url, "HEAD", self._headers(url)) as head:
                total = _number(head.getheader("Content-Length")) if head.status == 200 else None
        if total != offset:
            size = "an unknown number of" if total is None else total
            raise _Restart(f"range from byte {offset} not satisfiable, server has {size} bytes")
        self.part.begin(offset, validator, total)

    @contextlib.contextmanager
    def _exchange(
        self, url: str, method: str, headers: dict[str, str]
    ) -> Iterator[http.client.HTTPResponse]:
        parts = urlsplit(url)
        connection: http.client.HTTPConnection
        if parts.scheme == "https":
            connection = http.client.HTTPSConnection(
                parts.hostname or "", parts.port, timeout=self._timeout, context=self._tls()
            )
        else:
            connection = http.client.HTTPConnection(
                parts.hostname or "", parts.port, timeout=self._timeout
            )
        try:
            connection.connect()
            self._watch(connection.sock)
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            connection.request(method, target, headers=headers)
            yield connection.getresponse()
        finally:
            self._watch(None)
            connection.close()

    def _headers(self, url: str) -> dict[str, str]:
        headers = {"User-Agent": "evsed", "Accept-Encoding": "identity"}
        parts = urlsplit(url)
        if parts.username is not None:
            token = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(token).decode("ascii")
        return headers

    def _redirect(self, url: str, location: str) -> str:
        target = urljoin(url, location)
        scheme = urlsplit(target).scheme
        if scheme not in ("http", "https") or (urlsplit(url).scheme == "https" != scheme):
            raise DownloadError(
                f"{self.safe_url}: refusing redirect to {redact_url(target)}", retryable=False
            )
        _LOG.info("%s redirects to %s", redact_url(url), redact_url(target))
        return target

    def _tls(self) -> ssl.SSLContext:
        if self._tls_context is None:
            try:
                self._tls_context = ssl.create_default_context(cafile=self._ca_file)
            except OSError as exc:  # includes ssl.SSLError for a file that is not PEM
                raise DownloadError(
                    f"cannot use CA file {self._ca_file}: {exc}", retryable=False
                ) from exc
        return self._tls_context

    # --- FTP ----------------------------------------------------------------------------

    def _ftp(self, offset: int, validator: str | None, total_before: int | None) -> None:
        parts = self._parts
        path = unquote(parts.path)[1:]
        user = unquote(parts.username) if parts.username else "anonymous"
        password = unquote(parts.password or "") if parts.username else "anonymous@"
        ftp = ftplib.FTP(timeout=self._timeout)
        try:
            ftp.connect(parts.hostname or "", parts.port or 21)
            self._watch(ftp.sock)
            ftp.login(user, password)
            ftp.voidcmd("TYPE I")
            size = _number(_ftp_query(ftp, f"SIZE {path}"))
            version = _ftp_query(ftp, f"MDTM {path}")
            changed = (total_before is not None and total_before != size) or (
                validator is not None and validator != version
            )
            if offset and (changed or (size is not None and offset > size)):
                _LOG.info("%s changed on the server: starting over", self.safe_url)
                offset = 0
            if size is not None and offset == size:
                self.part.begin(offset, version, size)  # the part is complete already
                return
            data, offset = self._retrieve(ftp, path, offset)
            self._watch(data)
            self.part.begin(offset, version, size)
            with data:
                self._stream(data.recv, size)
            ftp.voidresp()
        finally:
            self._watch(None)
            ftp.close()

    def _retrieve(self, ftp: ftplib.FTP, path: str, offset: int) -> tuple[socket.socket, int]:
        if offset:
            try:
                return ftp.transfercmd(f"RETR {path}", rest=offset), offset
            except ftplib.error_perm as exc:
                # A refused REST and a missing file both answer 5xx; RETR alone tells which.
                _LOG.info("%s: resume refused (%s), starting over", self.safe_url, exc)
        return ftp.transfercmd(f"RETR {path}"), 0

    # --- shared -------------------------------------------------------------------------

    def _stream(self, read: Callable[[int], bytes], total: int | None) -> None:
        """Copy ``read`` to the part file chunk by chunk until end of data or cancellation."""
        self._report(self.part.size, total, force=True)
        while chunk := read(self._chunk_size):
            self.part.write(chunk)
            if self._cancelled.is_set():
                raise _Cancelled
            self._report(self.part.size, total)
        if self._cancelled.is_set():  # cancel() shut the socket down: that end is not the file's
            raise _Cancelled
        if total is not None and self.part.size != total:
            raise DownloadError(
                f"{self.safe_url}: transfer ended at byte {self.part.size} of {total}",
                retryable=True,
            )

    def _watch(self, sock: socket.socket | None) -> None:
        """Make ``sock`` the one ``cancel`` shuts down; raise _Cancelled if that happened."""
        with self._lock:
            self._socket = sock
        if sock is not None and self._cancelled.is_set():
            raise _Cancelled

    def _report(self, done: int, total: int | None, *, force: bool = False) -> None:
        if self._progress is None:
            return
        now = time.monotonic()
        last_done, last_time = self._reported
        if not force and done - last_done < _PROGRESS_BYTES and now - last_time < _PROGRESS_SECONDS:
            return
        self._reported = (done, now)
        self._loop.call_soon_threadsafe(self._progress, done, total)

    def _network_error(self, exc: BaseException) -> DownloadError:
        where = self.safe_url
        if isinstance(exc, ssl.SSLCertVerificationError):
            return DownloadError(
                f"{where}: server certificate not verified: {exc.verify_message}", retryable=False
            )
        if isinstance(exc, ftplib.error_perm):
            return DownloadError(f"{where}: FTP server refused: {exc}", retryable=False)
        if isinstance(exc, TimeoutError):
            return DownloadError(f"{where}: no answer within {self._timeout} s", retryable=True)
        return DownloadError(f"{where}: {type(exc).__name__}: {exc}", retryable=True)


def _status_error(response: http.client.HTTPResponse, where: str) -> DownloadError:
    status = response.status
    return DownloadError(
        f"{where}: HTTP {status} {response.reason}",
        retryable=status >= 500 or status in (408, 429),
    )


def _validator(response: http.client.HTTPResponse) -> str | None:
    """What to send as If-Range: a strong ETag, else Last-Modified (RFC 9110 §13.1.5)."""
    etag = response.getheader("ETag")
    if etag and not etag.startswith("W/"):
        return etag
    return response.getheader("Last-Modified")


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """First byte and complete length of ``bytes a-b/n`` or ``bytes */n`` (RFC 9110 §14.4)."""
    unit, _, spec = (value or "").strip().partition(" ")
    if unit.lower() != "bytes":
        return None, None
    span, _, length = spec.partition("/")
    return _number(span.partition("-")[0]), _number(length)


def _number(text: str | None) -> int | None:
    """A non-negative decimal integer, or None."""
    text = (text or "").strip()
    return int(text) if text.isdigit() else None


def _ftp_query(ftp: ftplib.FTP, command: str) -> str | None:
    """Answer text of an optional command (RFC 3659 SIZE, MDTM); None if not supported."""
    try:
        reply = ftp.sendcmd(command)
    except ftplib.error_perm as exc:
        _LOG.debug("FTP %s not answered: %s", command.partition(" ")[0], exc)
        return None
    return reply[4:].strip() if reply.startswith("213") else None
