"""Delta updates: the chunks of a casync bundle, from the chunk store to RAUC, each fetched once.

A casync bundle (``rauc convert``, rauc/make-delta-bundle) holds blob indexes instead of images;
``rauc install`` has casync rebuild each image from the chunks the running slot already has
(the seed) and fetches only the others from the chunk store. RAUC 1.8 takes the store from its
own ``system.conf`` or from beside the bundle file it was given: it cannot be told a store per
install. evsed downloads the bundle itself (resume, free space, the OCPP signature over exactly
that file), so the device's system.conf points RAUC's casync at this relay on the loopback
interface, ``[casync] install-args=--store=http://127.0.0.1:PORT/`` (casync takes the last
``--store``; ``storepath=`` would do the same but RAUC before 1.11.1 frees it after the first
install, so a second install in the same boot gets a garbled store), and the relay forwards each
chunk request to the store of the update being installed:

- casync asks for ``/<first 4 hex digits>/<chunk id>.cacnk``; nothing else is answered, and
  nothing at all outside an install.
- Each chunk is fetched with :func:`evsed.ota.download.download` (HTTP or HTTPS with the
  configured CA file, redirects, Basic auth from the URL, free space kept) into a cache on the
  data partition, then handed to casync. When an install is tried again after a failed fetch,
  the chunks that arrived are not fetched a second time.
- casync checks every chunk against its id (a SHA-512/256 of the content): a tampered or
  wrong chunk fails the install, and RAUC leaves the target slot marked bad. The relay does
  not need to be trusted; neither does the store.
- The first failed fetch is kept (:attr:`ChunkRelay.failure`): casync's own message goes to
  the RAUC service's log, not to ``rauc install``, so this is what says why an install failed.

The HTTP server runs in a thread (stdlib ``http.server``); fetches run on the event loop, whose
blocking I/O is in worker threads already.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import shutil
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from evsed.ota.download import DownloadError, download
from evsed.urls import redact_url

log = logging.getLogger(__name__)

CHUNK_PATH = re.compile(r"/(?P<dir>[0-9a-f]{4})/(?P<id>[0-9a-f]{64})\.cacnk")
STORE_SCHEMES = ("http", "https")
#: Longest a casync request waits for its chunk (a stalled server fails sooner: the download's
#: own timeout bounds every wait for data).
FETCH_BOUND_S = 600.0


def store_url_for(location: str, configured: str = "") -> str:
    """The chunk store of the bundle at ``location``: ``configured`` when set, else beside the
    bundle as RAUC itself would look for it (``NAME.raucb`` -> ``NAME.castr``). The query
    string is dropped: presigned links sign one object, not a directory of chunks."""
    if configured:
        return configured.rstrip("/")
    parts = urlsplit(location)
    path = parts.path.removesuffix(".raucb")
    return urlunsplit((parts.scheme, parts.netloc, path + ".castr", "", ""))


@dataclass(frozen=True, slots=True)
class FetchFailure:
    chunk: str
    reason: str


@dataclass(slots=True)
class RelayStats:
    """One install attempt: chunks fetched from the store, and chunks the cache already had."""

    fetched: int = 0
    fetched_bytes: int = 0
    cached: int = 0
    cached_bytes: int = 0


class ChunkRelay:
    """Answers casync's chunk requests on ``127.0.0.1:port`` while :meth:`serve` is active."""

    def __init__(
        self,
        port: int,
        cache_dir: Path,
        *,
        ca_file: str | None = None,
        min_free_bytes: int = 0,
        timeout: float = 30.0,
        host: str = "127.0.0.1",
    ) -> None:
        self.address = (host, port)
        self.cache_dir = cache_dir
        self._ca_file = ca_file
        self._min_free = min_free_bytes
        self._timeout = timeout
        self._store = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._fetching: dict[str, threading.Lock] = {}
        self.stats = RelayStats()
        self.failure: FetchFailure | None = None

    @contextlib.asynccontextmanager
    async def serve(self, store_url: str) -> AsyncIterator[ChunkRelay]:
        """Relay chunks of ``store_url`` until the block ends; stats and failure start afresh.

        Raises OSError when the port cannot be bound (another process has it)."""
        if urlsplit(store_url).scheme not in STORE_SCHEMES:
            raise ValueError(f"a chunk store must be http(s), not {redact_url(store_url)}")
        await asyncio.to_thread(self.cache_dir.mkdir, parents=True, exist_ok=True)
        self._store, self._loop = store_url.rstrip("/"), asyncio.get_running_loop()
        self.stats, self.failure, self._fetching = RelayStats(), None, {}
        server = _RelayServer(self.address, self)
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True
        )
        thread.start()
        log.info("relaying casync chunks of %s on %s:%d", redact_url(store_url), *self.address)
        try:
            yield self
        finally:
            await asyncio.to_thread(server.shutdown)
            server.server_close()
            await asyncio.to_thread(thread.join)
            self._store = ""

    async def clear_cache(self) -> None:
        """Drop the chunks kept for this update (after it installed, or when it ended)."""
        await asyncio.to_thread(shutil.rmtree, self.cache_dir, True)

    # -- called in the HTTP server's threads ----------------------------------------------------

    def chunk(self, directory: str, chunk_id: str) -> Path:
        """The chunk's file in the cache, fetched first if it is not there; DownloadError."""
        name = f"{directory}/{chunk_id}.cacnk"
        path = self.cache_dir / directory / f"{chunk_id}.cacnk"
        with self._lock:
            fetching = self._fetching.setdefault(name, threading.Lock())
        with fetching:  # casync may ask twice at once; one download per chunk
            if path.exists():
                self._count(cached=path.stat().st_size)
                return path
            store, loop = self._store, self._loop
            if not store or loop is None:
                raise DownloadError("no update is being installed", retryable=False)
            path.parent.mkdir(parents=True, exist_ok=True)
            transfer = download(
                f"{store}/{name}",
                path,
                ca_file=self._ca_file,
                timeout=self._timeout,
                min_free_bytes=self._min_free,
                log_level=logging.DEBUG,
            )
            future = asyncio.run_coroutine_threadsafe(transfer, loop)
            try:
                future.result(FETCH_BOUND_S)
            except DownloadError as exc:
                self._fail(name, exc.message)
                raise
            except (TimeoutError, RuntimeError) as exc:  # too slow, or the loop is closing
                future.cancel()  # the download keeps its .part, to resume next time
                reason = f"not fetched within {FETCH_BOUND_S:.0f} s ({type(exc).__name__})"
                self._fail(name, reason)
                raise DownloadError(reason, retryable=True) from exc
            self._count(fetched=path.stat().st_size)
            return path

    def _count(self, *, fetched: int | None = None, cached: int | None = None) -> None:
        with self._lock:
            if fetched is not None:
                self.stats.fetched += 1
                self.stats.fetched_bytes += fetched
            if cached is not None:
                self.stats.cached += 1
                self.stats.cached_bytes += cached

    def _fail(self, name: str, reason: str) -> None:
        with self._lock:
            if self.failure is None:
                self.failure = FetchFailure(name, reason)
        log.warning("chunk %s not fetched: %s", name, reason)


class _RelayServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], relay: ChunkRelay) -> None:
        super().__init__(address, _RelayHandler)
        self.relay = relay


class _RelayHandler(BaseHTTPRequestHandler):
    server: _RelayServer
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle's algorithm and casync's delayed ACKs
    # every chunk would wait about 40 ms for the second one.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # stdlib names it format
        log.debug("relay %s", format % args)

    def do_GET(self) -> None:
        match = CHUNK_PATH.fullmatch(self.path)
        if match is None:
            return self._answer(HTTPStatus.NOT_FOUND, b"not a chunk\n")
        try:
            path = self.server.relay.chunk(match["dir"], match["id"])
            data = path.read_bytes()
        except DownloadError as exc:
            return self._answer(HTTPStatus.BAD_GATEWAY, exc.message.encode() + b"\n")
        except OSError as exc:
            return self._answer(HTTPStatus.INTERNAL_SERVER_ERROR, str(exc).encode() + b"\n")
        self._answer(HTTPStatus.OK, data, "application/octet-stream")
        return None

    def _answer(self, status: HTTPStatus, body: bytes, kind: str = "text/plain") -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(body)
