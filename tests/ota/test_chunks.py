"""The chunk relay of delta updates, against a real file server on 127.0.0.1 (the dev CSMS's)."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import socket
import threading
from collections.abc import AsyncIterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from evsed.ota.chunks import ChunkRelay, store_url_for
from evsed.ota.delta import chunk_store
from evsed_devcsms import DevCsms
from evsed_devtools.harness import free_port

CHUNK_A = "ab12" + "0" * 60
CHUNK_B = "cd34" + "1" * 60


@pytest.mark.parametrize(
    ("location", "configured", "store"),
    [
        ("https://fw.example/r/evsed-2.0.raucb", "", "https://fw.example/r/evsed-2.0.castr"),
        ("https://u:p@fw.example/evsed.raucb?sig=x", "", "https://u:p@fw.example/evsed.castr"),
        ("http://fw.example/latest", "", "http://fw.example/latest.castr"),
        ("ftp://fw.example/evsed.raucb", "", "ftp://fw.example/evsed.castr"),
        ("https://fw.example/a.raucb", "https://cdn.example/store/", "https://cdn.example/store"),
    ],
)
def test_the_store_is_beside_the_bundle_unless_configured(
    location: str, configured: str, store: str
) -> None:
    assert store_url_for(location, configured) == store


def test_delta_bundles_need_an_http_store_and_a_relay(tmp_path: Path) -> None:
    relay = ChunkRelay(free_port(), tmp_path)
    assert chunk_store("https://h/a.raucb", "", relay) == ("https://h/a.castr", "")
    store, problem = chunk_store("ftp://h/a.raucb", "", relay)
    assert store == "" and "HTTP(S) chunk store, not ftp" in problem
    assert chunk_store("ftp://h/a.raucb", "http://h/s", relay) == ("http://h/s", "")
    assert "casync_relay_port = 0" in chunk_store("https://h/a.raucb", "", None)[1]


@pytest.fixture
async def csms(tmp_path: Path) -> AsyncIterator[DevCsms]:
    files = tmp_path / "files"
    for chunk, size in ((CHUNK_A, 5000), (CHUNK_B, 7000)):
        path = files / "v2.castr" / chunk[:4] / f"{chunk}.cacnk"
        path.parent.mkdir(parents=True)
        path.write_bytes(os.urandom(size))
    async with DevCsms(files_dir=files) as server:
        yield server


def _get(port: int, path: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


async def test_relays_each_chunk_once_and_keeps_it_for_a_retry(
    csms: DevCsms, tmp_path: Path
) -> None:
    relay = ChunkRelay(free_port(), tmp_path / "cache")
    port = relay.address[1]
    store = f"{csms.http_url}/files/v2.castr"
    expected = (tmp_path / "files" / "v2.castr" / "ab12" / f"{CHUNK_A}.cacnk").read_bytes()
    async with relay.serve(store):
        for _ in range(2):
            assert await asyncio.to_thread(_get, port, f"/ab12/{CHUNK_A}.cacnk") == (200, expected)
        assert (await asyncio.to_thread(_get, port, "/files/v2.castr"))[0] == 404
        assert (await asyncio.to_thread(_get, port, f"/ab12/{CHUNK_A}.cacnk.part"))[0] == 404
    assert (relay.stats.fetched, relay.stats.fetched_bytes) == (1, 5000)
    assert (relay.stats.cached, relay.stats.cached_bytes) == (1, 5000)
    assert relay.failure is None
    # Outside an install nothing listens.
    with pytest.raises(ConnectionRefusedError):
        _get(port, f"/ab12/{CHUNK_A}.cacnk")
    # The next attempt starts its count afresh and finds the chunk in the cache.
    async with relay.serve(store):
        assert (await asyncio.to_thread(_get, port, f"/ab12/{CHUNK_A}.cacnk"))[0] == 200
        assert (await asyncio.to_thread(_get, port, f"/cd34/{CHUNK_B}.cacnk"))[0] == 200
    assert (relay.stats.fetched, relay.stats.cached) == (1, 1)
    await relay.clear_cache()
    assert not relay.cache_dir.exists()


async def test_a_store_that_disappears_is_a_failed_fetch_with_its_reason(
    csms: DevCsms, tmp_path: Path
) -> None:
    relay = ChunkRelay(free_port(), tmp_path / "cache")
    port = relay.address[1]
    await asyncio.to_thread(
        csms_api, csms, "/api/files/faults", {"prefix": "v2.castr/", "mode": "gone", "after": 1}
    )
    async with relay.serve(f"{csms.http_url}/files/v2.castr"):
        assert (await asyncio.to_thread(_get, port, f"/ab12/{CHUNK_A}.cacnk"))[0] == 200
        status, body = await asyncio.to_thread(_get, port, f"/cd34/{CHUNK_B}.cacnk")
    assert status == 502 and b"HTTP 404" in body
    assert relay.failure is not None
    assert relay.failure.chunk == f"cd34/{CHUNK_B}.cacnk"
    assert "HTTP 404" in relay.failure.reason
    assert not (relay.cache_dir / "cd34" / f"{CHUNK_B}.cacnk").exists()


async def test_refuses_a_store_that_is_not_http(tmp_path: Path) -> None:
    relay = ChunkRelay(free_port(), tmp_path / "cache")
    with pytest.raises(ValueError, match="must be http"):
        async with relay.serve("ftp://127.0.0.1/v2.castr"):
            pass


def csms_api(csms: DevCsms, path: str, body: dict[str, object]) -> None:
    port = int(csms.http_url.rsplit(":", 1)[1])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        assert connection.getresponse().status == 200
    finally:
        connection.close()


class _CutShort(BaseHTTPRequestHandler):
    """Promises 5000 bytes of a chunk, sends 100 and hangs up."""

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "5000")
        self.end_headers()
        self.wfile.write(b"x" * 100)
        self.wfile.flush()
        self.connection.shutdown(socket.SHUT_RDWR)


async def test_a_chunk_cut_short_is_a_failed_fetch_and_not_cached(tmp_path: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _CutShort)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    relay = ChunkRelay(free_port(), tmp_path / "cache")
    try:
        async with relay.serve(f"http://127.0.0.1:{server.server_address[1]}/v2.castr"):
            status, _ = await asyncio.to_thread(_get, relay.address[1], f"/ab12/{CHUNK_A}.cacnk")
    finally:
        server.shutdown()
        server.server_close()
    assert status == 502
    assert relay.failure is not None and "ended at byte 100 of 5000" in relay.failure.reason
    assert not (relay.cache_dir / "ab12" / f"{CHUNK_A}.cacnk").exists()
    assert relay.stats.fetched == 0
