"""Firmware download against real servers on 127.0.0.1: HTTP with Range, HTTPS, FTP, DevCsms."""

from __future__ import annotations

import asyncio
import base64
import datetime
import hashlib
import ipaddress
import itertools
import logging
import os
import shutil
import socket
import ssl
import threading
import time
import tracemalloc
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer

from evsed.ota.download import DownloadError, download
from evsed.urls import redact_url
from evsed_devcsms import DevCsms
from evsed_devcsms.files import resolve_file, send_file

SECRET = "s3cr@t"  # FTP and HTTP password; must never show up in a log line
MIB = 1024 * 1024


# --- helpers --------------------------------------------------------------------------------


def _blob(size: int, seed: int = 0) -> bytes:
    block = hashlib.sha256(str(seed).encode()).digest()
    return (block * (size // len(block) + 1))[:size]


def _digest(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port  # closed again: connecting to it is refused


@pytest.fixture(autouse=True)
def log_guard() -> Iterator[list[logging.LogRecord]]:
    """Fail on bad %-formats and on passwords in the downloader's log lines."""
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("evsed.ota.download")
    handler = Collect(logging.DEBUG)
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)
    logger.setLevel(old_level)
    for record in records:
        message = record.getMessage()  # raises on a bad format
        assert SECRET not in message and "s3cr%40t" not in message, message


# --- HTTP server with Range (the devcsms implementation) and fault knobs -------------------


@dataclass
class Knobs:
    """What the test HTTP server does; changed by tests between requests."""

    root: Path
    drop_after: int | None = None  # hang up once after this many bytes (headers included)
    stall_after: int | None = None  # stop sending after this many bytes until `release`
    release: threading.Event = field(default_factory=threading.Event)
    ignore_range: bool = False
    no_length: bool = False  # body delimited by closing the connection
    etag: str | None = None
    status: HTTPStatus | None = None  # answer every request with this error
    redirects: dict[str, str] = field(default_factory=dict)
    requests: list[dict[str, str | None]] = field(default_factory=list)
    bytes_sent: int = 0


class _Writer:
    """Wraps the handler's socket writer to count, drop or stall."""

    def __init__(self, raw: Any, knobs: Knobs) -> None:
        self._raw = raw
        self._knobs = knobs

    def write(self, data: bytes) -> int:
        knobs = self._knobs
        if knobs.drop_after is not None and knobs.bytes_sent + len(data) > knobs.drop_after:
            head = data[: max(0, knobs.drop_after - knobs.bytes_sent)]
            self._raw.write(head)
            knobs.bytes_sent += len(head)
            knobs.drop_after = None
            raise ConnectionResetError("test server hangs up")
        if knobs.stall_after is not None and knobs.bytes_sent >= knobs.stall_after:
            knobs.release.wait(10)
        self._raw.write(data)
        knobs.bytes_sent += len(data)
        return len(data)

    def flush(self) -> None:
        self._raw.flush()


class _Handler(BaseHTTPRequestHandler):
    server: _FileServer

    def do_GET(self) -> None:
        self._serve(head_only=False)

    def do_HEAD(self) -> None:
        self._serve(head_only=True)

    def end_headers(self) -> None:
        if self.server.knobs.etag:
            self.send_header("ETag", self.server.knobs.etag)
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def _serve(self, *, head_only: bool) -> None:
        knobs = self.server.knobs
        knobs.requests.append(
            {
                "method": self.command,
                "path": self.path,
                "range": self.headers.get("Range"),
                "if_range": self.headers.get("If-Range"),
                "authorization": self.headers.get("Authorization"),
            }
        )
        if knobs.status is not None:
            self.send_error(knobs.status)
            return
        name = self.path.partition("?")[0].removeprefix("/files/")
        if name in knobs.redirects:
            self.send_response(HTTPStatus.FOUND)
            self.send_header("Location", knobs.redirects[name])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        path = resolve_file(knobs.root, name) if self.path.startswith("/files/") else None
        if path is None:
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        if_range = self.headers.get("If-Range")
        if knobs.ignore_range or (if_range is not None and if_range != knobs.etag):
            del self.headers["Range"]  # RFC 9110 §13.1.5: send the whole (changed) file
        self.wfile = _Writer(self.wfile, knobs)  # type: ignore[assignment]
        if not knobs.no_length:
            send_file(self, path, head_only=head_only)
            return
        self.send_response(HTTPStatus.OK)
        self.end_headers()
        with path.open("rb") as source:
            while chunk := source.read(64 * 1024):
                self.wfile.write(chunk)


class _FileServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, knobs: Knobs, tls: ssl.SSLContext | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.knobs = knobs
        if tls is not None:
            self.socket = tls.wrap_socket(self.socket, server_side=True)
        self.scheme = "https" if tls else "http"

    def url(self, name: str) -> str:
        return f"{self.scheme}://127.0.0.1:{self.server_address[1]}/files/{name}"


@pytest.fixture
def files(tmp_path: Path) -> Path:
    root = tmp_path / "served"
    root.mkdir()
    (root / "fw.bin").write_bytes(_blob(1_000_000))
    return root


def _run(server: _FileServer) -> Iterator[_FileServer]:
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.knobs.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def http_server(files: Path) -> Iterator[_FileServer]:
    yield from _run(_FileServer(Knobs(files)))


# --- HTTP -----------------------------------------------------------------------------------


async def test_downloads_to_dest_and_leaves_no_part(
    http_server: _FileServer, tmp_path: Path
) -> None:
    dest = tmp_path / "data" / "update.raucb"
    dest.parent.mkdir()
    assert await download(http_server.url("fw.bin"), dest) == dest
    assert dest.read_bytes() == (http_server.knobs.root / "fw.bin").read_bytes()
    assert sorted(p.name for p in dest.parent.iterdir()) == ["update.raucb"]


async def test_resumes_interrupted_download_with_range(
    http_server: _FileServer, tmp_path: Path
) -> None:
    knobs = http_server.knobs
    source = knobs.root / "fw.bin"
    dest = tmp_path / "update.raucb"
    knobs.drop_after = 300_000
    with pytest.raises(DownloadError) as failed:
        await download(http_server.url("fw.bin"), dest)
    assert failed.value.retryable
    assert "transfer ended at byte" in str(failed.value)
    part = tmp_path / "update.raucb.part"
    kept = part.stat().st_size
    assert 200_000 < kept < 300_000
    assert not dest.exists()

    await download(http_server.url("fw.bin"), dest)
    assert knobs.requests[-1]["range"] == f"bytes={kept}-"
    assert _digest(dest) == _digest(source)
    assert not part.exists()
    headers = 4096  # two responses' headers, generously
    assert knobs.bytes_sent < source.stat().st_size + headers


async def test_changed_file_is_fetched_whole_thanks_to_if_range(
    http_server: _FileServer, tmp_path: Path
) -> None:
    knobs = http_server.knobs
    dest = tmp_path / "update.raucb"
    knobs.etag, knobs.drop_after = '"v1"', 300_000
    with pytest.raises(DownloadError):
        await download(http_server.url("fw.bin"), dest)
    (knobs.root / "fw.bin").write_bytes(_blob(900_000, seed=2))
    knobs.etag = '"v2"'
    await download(http_server.url("fw.bin"), dest)
    assert knobs.requests[-1]["if_range"] == '"v1"'
    assert dest.read_bytes() == _blob(900_000, seed=2)


async def test_part_of_another_url_is_not_continued(
    http_server: _FileServer, tmp_path: Path
) -> None:
    knobs = http_server.knobs
    (knobs.root / "other.bin").write_bytes(_blob(500_000, seed=3))
    dest = tmp_path / "update.raucb"
    knobs.drop_after = 300_000
    with pytest.raises(DownloadError):
        await download(http_server.url("fw.bin"), dest)
    await download(http_server.url("other.bin"), dest)
    assert knobs.requests[-1]["range"] is None
    assert dest.read_bytes() == _blob(500_000, seed=3)


async def test_complete_part_answered_416_is_published(
    http_server: _FileServer, tmp_path: Path
) -> None:
    knobs = http_server.knobs
    dest = tmp_path / "update.raucb"
    shutil.copy(knobs.root / "fw.bin", tmp_path / "update.raucb.part")  # power cut before rename
    await download(http_server.url("fw.bin"), dest)
    assert knobs.requests[-1]["range"] == "bytes=1000000-"
    assert knobs.bytes_sent < 1000  # no body sent again
    assert dest.read_bytes() == (knobs.root / "fw.bin").read_bytes()


async def test_part_longer_than_file_starts_over(http_server: _FileServer, tmp_path: Path) -> None:
    knobs = http_server.knobs
    dest = tmp_path / "update.raucb"
    (tmp_path / "update.raucb.part").write_bytes(_blob(1_200_000, seed=9))
    await download(http_server.url("fw.bin"), dest)
    assert [r["range"] for r in knobs.requests] == ["bytes=1200000-", None]
    assert dest.read_bytes() == (knobs.root / "fw.bin").read_bytes()


async def test_server_ignoring_range_restarts_from_zero(
    http_server: _FileServer, tmp_path: Path
) -> None:
    knobs = http_server.knobs
    knobs.ignore_range = True
    dest = tmp_path / "update.raucb"
    (tmp_path / "update.raucb.part").write_bytes(b"x" * 1000)
    await download(http_server.url("fw.bin"), dest)
    assert knobs.requests[-1]["range"] == "bytes=1000-"
    assert dest.read_bytes() == (knobs.root / "fw.bin").read_bytes()


async def test_follows_redirect_with_basic_auth_and_keeps_password_out_of_logs(
    http_server: _FileServer, tmp_path: Path, log_guard: list[logging.LogRecord]
) -> None:
    http_server.knobs.redirects["latest"] = "/files/fw.bin"
    port = http_server.server_address[1]
    url = f"http://fw:{SECRET.replace('@', '%40')}@127.0.0.1:{port}/files/latest?sig=abc"
    await download(url, tmp_path / "update.raucb")
    token = base64.b64encode(f"fw:{SECRET}".encode()).decode()
    assert [r["authorization"] for r in http_server.knobs.requests] == [f"Basic {token}"] * 2
    assert any("redirects to" in r.getMessage() for r in log_guard)
    assert redact_url(url) == f"http://fw:***@127.0.0.1:{port}/files/latest?***"


async def test_404_is_not_retryable(http_server: _FileServer, tmp_path: Path) -> None:
    with pytest.raises(DownloadError) as failed:
        await download(http_server.url("missing.bin"), tmp_path / "update.raucb")
    assert not failed.value.retryable
    assert "HTTP 404" in str(failed.value)
    assert list(tmp_path.iterdir()) == [http_server.knobs.root]


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        (HTTPStatus.FORBIDDEN, False),
        (HTTPStatus.UNAUTHORIZED, False),
        (HTTPStatus.TOO_MANY_REQUESTS, True),
        (HTTPStatus.SERVICE_UNAVAILABLE, True),
        (HTTPStatus.INTERNAL_SERVER_ERROR, True),
    ],
)
async def test_http_errors_retryable_only_when_transient(
    http_server: _FileServer, tmp_path: Path, status: HTTPStatus, retryable: bool
) -> None:
    http_server.knobs.status = status
    with pytest.raises(DownloadError) as failed:
        await download(http_server.url("fw.bin"), tmp_path / "update.raucb")
    assert failed.value.retryable is retryable
    assert f"HTTP {status.value}" in str(failed.value)


@pytest.mark.parametrize("scheme", ["http", "ftp"])
async def test_connection_refused_is_retryable(scheme: str, tmp_path: Path) -> None:
    with pytest.raises(DownloadError) as failed:
        await download(f"{scheme}://127.0.0.1:{_free_port()}/fw.bin", tmp_path / "u.raucb")
    assert failed.value.retryable
    assert "refused" in str(failed.value).lower()


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "sftp://host/fw.bin", "http:///fw.bin", "http://h:x/fw.bin"]
)
async def test_bad_url_is_not_retryable(url: str, tmp_path: Path) -> None:
    with pytest.raises(DownloadError) as failed:
        await download(url, tmp_path / "update.raucb")
    assert not failed.value.retryable


@pytest.mark.parametrize("no_length", [False, True], ids=["known-size", "unknown-size"])
async def test_not_enough_space_fails_before_writing(
    http_server: _FileServer, tmp_path: Path, no_length: bool
) -> None:
    http_server.knobs.no_length = no_length
    dest = tmp_path / "update.raucb"
    too_much = shutil.disk_usage(tmp_path).free + 10 * MIB
    with pytest.raises(DownloadError) as failed:
        await download(http_server.url("fw.bin"), dest, min_free_bytes=too_much)
    assert not failed.value.retryable
    assert "not enough space" in str(failed.value)
    assert not dest.exists() and not dest.with_name("update.raucb.part").exists()


async def test_unknown_size_downloads_until_close(http_server: _FileServer, tmp_path: Path) -> None:
    http_server.knobs.no_length = True
    calls: list[tuple[int, int | None]] = []
    threads: set[threading.Thread] = set()

    def progress(done: int, total: int | None) -> None:
        calls.append((done, total))
        threads.add(threading.current_thread())

    dest = await download(http_server.url("fw.bin"), tmp_path / "u.raucb", progress=progress)
    assert dest.read_bytes() == (http_server.knobs.root / "fw.bin").read_bytes()
    assert calls[0] == (0, None) and calls[-1] == (1_000_000, 1_000_000)
    assert threads == {threading.current_thread()}  # on the event loop, not the worker


async def test_50_mb_in_constant_memory_with_throttled_progress(
    http_server: _FileServer, tmp_path: Path
) -> None:
    big = http_server.knobs.root / "big.bin"
    with big.open("wb") as out:
        for seed in range(50):
            out.write(_blob(MIB, seed))
    calls: list[tuple[int, int | None]] = []
    tracemalloc.start()
    try:
        await download(
            http_server.url("big.bin"), tmp_path / "u.raucb", progress=lambda *a: calls.append(a)
        )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 3 * MIB, peak
    assert _digest(tmp_path / "u.raucb") == _digest(big)
    assert calls[0] == (0, 50 * MIB) and calls[-1] == (50 * MIB, 50 * MIB)
    assert len(calls) <= 50 + 2
    assert all(a[0] <= b[0] for a, b in itertools.pairwise(calls))


async def test_cancel_stops_a_stalled_transfer_promptly_and_keeps_part(
    http_server: _FileServer, tmp_path: Path
) -> None:
    knobs = http_server.knobs
    knobs.stall_after = 256 * 1024
    dest = tmp_path / "update.raucb"
    part = tmp_path / "update.raucb.part"
    task = asyncio.create_task(download(http_server.url("fw.bin"), dest))
    deadline = time.monotonic() + 5
    while not (part.exists() and part.stat().st_size >= 3 * 64 * 1024):
        assert time.monotonic() < deadline, "download did not start"
        await asyncio.sleep(0.01)
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - started < 1.0
    kept = part.stat().st_size
    assert kept >= 3 * 64 * 1024 and not dest.exists()

    knobs.stall_after = None
    knobs.release.set()
    await download(http_server.url("fw.bin"), dest)
    assert knobs.requests[-1]["range"] == f"bytes={kept}-"
    assert dest.read_bytes() == (knobs.root / "fw.bin").read_bytes()


async def test_downloads_and_resumes_from_development_csms(files: Path, tmp_path: Path) -> None:
    dest = tmp_path / "update.raucb"
    source = (files / "fw.bin").read_bytes()
    dest.with_name("update.raucb.part").write_bytes(source[:123_456])
    async with DevCsms(files_dir=files) as csms:
        await download(f"{csms.http_url}/files/fw.bin", dest)
        with pytest.raises(DownloadError) as failed:
            await download(f"{csms.http_url}/files/nope.bin", tmp_path / "nope")
    assert dest.read_bytes() == source
    assert not failed.value.retryable


# --- HTTPS ----------------------------------------------------------------------------------


@dataclass
class Pki:
    ca_file: str
    other_ca_file: str
    server: ssl.SSLContext
    wrong_name_server: ssl.SSLContext


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _ca(directory: Path, label: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(f"evsed test CA {label}"))
        .issuer_name(_name(f"evsed test CA {label}"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    path = directory / f"ca-{label}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, cert, str(path)


def _server_context(
    directory: Path,
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    names: Sequence[x509.GeneralName],
    label: str,
) -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(f"firmware server {label}"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    cert_file, key_file = directory / f"{label}.pem", directory / f"{label}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca_key, ca_cert, ca_file = _ca(directory, "good")
    _, _, other_ca_file = _ca(directory, "other")
    localhost = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
    elsewhere = [x509.DNSName("firmware.example")]
    return Pki(
        ca_file=ca_file,
        other_ca_file=other_ca_file,
        server=_server_context(directory, ca_key, ca_cert, localhost, "server"),
        wrong_name_server=_server_context(directory, ca_key, ca_cert, elsewhere, "elsewhere"),
    )


async def test_https_verified_with_ca_file(pki: Pki, files: Path, tmp_path: Path) -> None:
    for server in _run(_FileServer(Knobs(files), tls=pki.server)):
        dest = await download(server.url("fw.bin"), tmp_path / "u.raucb", ca_file=pki.ca_file)
        assert dest.read_bytes() == (files / "fw.bin").read_bytes()


@pytest.mark.parametrize(
    ("other_ca", "wrong_name", "cause"),
    [
        (True, False, "unable to get local issuer certificate"),
        (False, True, "mismatch"),
    ],
    ids=["unknown-ca", "wrong-host-name"],
)
async def test_https_unverified_server_is_not_retryable(
    pki: Pki, files: Path, tmp_path: Path, other_ca: bool, wrong_name: bool, cause: str
) -> None:
    context = pki.wrong_name_server if wrong_name else pki.server
    ca_file = pki.other_ca_file if other_ca else pki.ca_file
    for server in _run(_FileServer(Knobs(files), tls=context)):
        with pytest.raises(DownloadError) as failed:
            await download(server.url("fw.bin"), tmp_path / "u.raucb", ca_file=ca_file)
        assert not failed.value.retryable
        assert "certificate not verified" in str(failed.value)
        assert cause in str(failed.value)
        assert server.knobs.requests == []


async def test_unreadable_ca_file_is_not_retryable(pki: Pki, files: Path, tmp_path: Path) -> None:
    for server in _run(_FileServer(Knobs(files), tls=pki.server)):
        with pytest.raises(DownloadError) as failed:
            await download(server.url("fw.bin"), tmp_path / "u", ca_file=str(tmp_path / "no.pem"))
        assert not failed.value.retryable
        assert "cannot use CA file" in str(failed.value)


# --- FTP ------------------------------------------------------------------------------------


@dataclass
class FtpSite:
    root: Path
    port: int
    commands: list[str]

    def url(self, path: str, login: str = "") -> str:
        return f"ftp://{login}127.0.0.1:{self.port}/{path}"


@pytest.fixture
def ftp_site(files: Path) -> Iterator[FtpSite]:
    (files / "sub").mkdir()
    (files / "sub" / "fw.bin").write_bytes(_blob(700_000, seed=5))
    commands: list[str] = []

    class Recording(FTPHandler):  # type: ignore[misc]
        def pre_process_command(self, line: str, cmd: str, arg: str) -> None:
            commands.append(cmd if cmd == "PASS" else f"{cmd} {arg}".strip())
            super().pre_process_command(line, cmd, arg)

    authorizer = DummyAuthorizer()
    authorizer.add_anonymous(str(files))
    authorizer.add_user("fw", SECRET, str(files), perm="elr")
    Recording.authorizer = authorizer
    Recording.auth_failed_timeout = 0.05  # no 3 s penalty for the wrong-password test
    server = FTPServer(("127.0.0.1", 0), Recording)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            server.serve_forever(timeout=0.02, blocking=False, handle_exit=False)
        server.close_all()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield FtpSite(files, server.address[1], commands)
    finally:
        stop.set()
        thread.join(5)


async def test_ftp_anonymous(ftp_site: FtpSite, tmp_path: Path) -> None:
    dest = await download(ftp_site.url("fw.bin"), tmp_path / "u.raucb")
    assert dest.read_bytes() == (ftp_site.root / "fw.bin").read_bytes()
    assert "USER anonymous" in ftp_site.commands


async def test_ftp_user_password_and_resume_with_rest(ftp_site: FtpSite, tmp_path: Path) -> None:
    source = (ftp_site.root / "sub" / "fw.bin").read_bytes()
    dest = tmp_path / "u.raucb"
    dest.with_name("u.raucb.part").write_bytes(source[:100_000])
    url = ftp_site.url("sub/fw.bin", login=f"fw:{SECRET.replace('@', '%40')}@")
    await download(url, dest)
    assert dest.read_bytes() == source
    assert "USER fw" in ftp_site.commands
    assert "REST 100000" in ftp_site.commands
    assert ftp_site.commands.index("REST 100000") + 1 == ftp_site.commands.index("RETR sub/fw.bin")


async def test_ftp_complete_part_is_published_without_transfer(
    ftp_site: FtpSite, tmp_path: Path
) -> None:
    dest = tmp_path / "u.raucb"
    shutil.copy(ftp_site.root / "fw.bin", dest.with_name("u.raucb.part"))
    await download(ftp_site.url("fw.bin"), dest)
    assert dest.read_bytes() == (ftp_site.root / "fw.bin").read_bytes()
    assert not any(c.startswith("RETR") for c in ftp_site.commands)


@pytest.mark.parametrize(
    ("path", "login", "cause"),
    [("missing.bin", "", "550"), ("fw.bin", "fw:wrong@", "530")],
    ids=["missing-file", "wrong-password"],
)
async def test_ftp_refusals_are_not_retryable(
    ftp_site: FtpSite, tmp_path: Path, path: str, login: str, cause: str
) -> None:
    with pytest.raises(DownloadError) as failed:
        await download(ftp_site.url(path, login=login), tmp_path / "u.raucb")
    assert not failed.value.retryable
    assert cause in str(failed.value)
    assert not os.path.exists(tmp_path / "u.raucb.part")
