"""``/files/``: downloads with byte ranges (firmware resume) and no escape from the directory."""

from __future__ import annotations

import http.client
import os
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from evsed_devcsms import DevCsms
from evsed_devcsms.files import RangeNotSatisfiable, parse_range

SIZE = 10_000


@pytest.fixture
def firmware(tmp_path: Path) -> bytes:
    """A 10 kB file ``fw.bin`` in the served directory, and a secret one level up."""
    data = os.urandom(SIZE)
    (tmp_path / "files" / "fw.bin").write_bytes(data)
    (tmp_path / "secret.txt").write_text("do not serve")
    return data


def _request(
    csms: DevCsms, path: str, headers: dict[str, str] | None = None, method: str = "GET"
) -> tuple[int, http.client.HTTPMessage, bytes]:
    # The file route never needs the websocket loop, so a blocking client is fine here.
    url = urlsplit(csms.http_url)
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=5)
    try:
        connection.request(method, path, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


async def test_whole_file_with_length(csms: DevCsms, firmware: bytes) -> None:
    status, headers, body = _request(csms, "/files/fw.bin")
    assert status == 200
    assert headers["Content-Length"] == str(SIZE)
    assert headers["Accept-Ranges"] == "bytes"
    assert body == firmware


@pytest.mark.parametrize(
    ("header", "first", "last"),
    [
        ("bytes=4000-", 4000, SIZE - 1),
        ("bytes=10-19", 10, 19),
        ("bytes=-100", SIZE - 100, SIZE - 1),
    ],
)
async def test_range_resumes_with_206(
    csms: DevCsms, firmware: bytes, header: str, first: int, last: int
) -> None:
    status, headers, body = _request(csms, "/files/fw.bin", {"Range": header})
    assert status == 206
    assert headers["Content-Range"] == f"bytes {first}-{last}/{SIZE}"
    assert headers["Content-Length"] == str(last - first + 1)
    assert body == firmware[first : last + 1]


async def test_range_beyond_end_is_416(csms: DevCsms, firmware: bytes) -> None:
    status, headers, body = _request(csms, "/files/fw.bin", {"Range": f"bytes={SIZE}-"})
    assert status == 416
    assert headers["Content-Range"] == f"bytes */{SIZE}"
    assert body == b""


async def test_head_sends_headers_only(csms: DevCsms, firmware: bytes) -> None:
    status, headers, body = _request(csms, "/files/fw.bin", method="HEAD")
    assert (status, headers["Content-Length"], body) == (200, str(SIZE), b"")


@pytest.mark.parametrize(
    "path",
    [
        "/files/../secret.txt",
        "/files/..%2Fsecret.txt",
        "/files/%2e%2e/secret.txt",
        "/files/sub/../../secret.txt",
        "/files//etc/passwd",
        "/files/missing.bin",
        "/files/",
    ],
)
async def test_traversal_and_missing_files_are_404(
    csms: DevCsms, firmware: bytes, path: str
) -> None:
    status, _, body = _request(csms, path)
    assert status == 404
    assert b"do not serve" not in body


def test_parse_range_edge_cases() -> None:
    assert parse_range(None, 10) is None
    assert parse_range("bytes=0-0", 10) == (0, 0)
    assert parse_range("bytes=5-100", 10) == (5, 9)
    assert parse_range("bytes=-20", 10) == (0, 9)
    assert parse_range("bytes=0-1,5-6", 10) is None  # several ranges: whole file
    assert parse_range("items=0-1", 10) is None
    assert parse_range("bytes=7-3", 10) is None
    assert parse_range("bytes=x-", 10) is None
    for header in ("bytes=10-", "bytes=-0"):
        with pytest.raises(RangeNotSatisfiable):
            parse_range(header, 10)


def _json(csms: DevCsms, path: str, body: dict[str, object] | None = None) -> object:
    import json

    url = urlsplit(csms.http_url)
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=5)
    try:
        if body is None:
            connection.request("GET", path)
        else:
            connection.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        response = connection.getresponse()
        assert response.status == 200, response.read()
        return json.loads(response.read())
    finally:
        connection.close()


@pytest.fixture
def store(tmp_path: Path) -> dict[str, bytes]:
    """A casync-like chunk store: a directory tree two levels deep."""
    chunks = {}
    for name in ("ab12/ab12aa.cacnk", "ab12/ab12bb.cacnk", "cd34/cd34cc.cacnk"):
        path = tmp_path / "files" / "v2.castr" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        chunks[f"v2.castr/{name}"] = os.urandom(3000)
        path.write_bytes(chunks[f"v2.castr/{name}"])
    return chunks


async def test_a_directory_tree_is_served_with_ranges_and_counted(
    csms: DevCsms, firmware: bytes, store: dict[str, bytes]
) -> None:
    for name, data in store.items():
        assert _request(csms, f"/files/{name}")[2] == data
    status, _, body = _request(csms, "/files/v2.castr/cd34/cd34cc.cacnk", {"Range": "bytes=1000-"})
    assert (status, body) == (206, store["v2.castr/cd34/cd34cc.cacnk"][1000:])
    _request(csms, "/files/fw.bin", method="HEAD")
    served = _json(csms, "/api/files/served?prefix=v2.castr/")
    assert served == {
        "bytes": 3 * 3000 + 2000,
        "requests": 4,
        "paths": {
            "v2.castr/ab12/ab12aa.cacnk": {"bytes": 3000, "requests": 1},
            "v2.castr/ab12/ab12bb.cacnk": {"bytes": 3000, "requests": 1},
            "v2.castr/cd34/cd34cc.cacnk": {"bytes": 5000, "requests": 2},
        },
    }
    everything = _json(csms, "/api/files/served")
    assert isinstance(everything, dict)
    assert everything["paths"]["fw.bin"] == {"bytes": 0, "requests": 1}  # HEAD: no body
    assert _json(csms, "/api/files/served/reset", {}) == {"bytes": 0, "requests": 0, "paths": {}}


async def test_a_store_can_disappear_after_some_requests(
    csms: DevCsms, firmware: bytes, store: dict[str, bytes]
) -> None:
    _json(csms, "/api/files/faults", {"prefix": "v2.castr/", "mode": "gone", "after": 2})
    statuses = [_request(csms, f"/files/{name}")[0] for name in store]
    assert statuses == [200, 200, 404]
    assert _request(csms, "/files/fw.bin")[0] == 200  # other files are still there
    assert _json(csms, "/api/files/served?prefix=v2.castr/")["requests"] == 2  # type: ignore[index]
    _json(csms, "/api/files/faults", {"prefix": "v2.castr/", "mode": "normal"})
    assert _request(csms, "/files/v2.castr/cd34/cd34cc.cacnk")[0] == 200
    assert _json(csms, "/api/files/faults") == []
