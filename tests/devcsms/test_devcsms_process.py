"""``python -m evsed_devcsms`` as processes: serve, the developer CLI, SIGTERM, journal file."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from ocpp.v16 import call
from ocpp.v16.enums import RegistrationStatus

STARTUP = re.compile(r"^devcsms listening ws=(ws://\S+) http=(http://\S+)$")


async def _cli(*args: str) -> tuple[int, str, str]:
    # A subprocess, not a thread: the charger in this test must keep answering meanwhile.
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "evsed_devcsms",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 10)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[asyncio.subprocess.Process, str, str]]:
    """``serve`` on free ports: (process, ws URL, http URL); killed if a test leaves it up."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "evsed_devcsms",
        "serve",
        "--port",
        "0",
        "--http-port",
        "0",
        "--tags",
        "TAG1,TAG2",
        "--heartbeat-interval",
        "30",
        "--journal",
        str(tmp_path / "journal.jsonl"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 10)).decode().strip()
        match = STARTUP.match(line)
        assert match, line
        yield process, match.group(1), match.group(2)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_serve_cli_and_sigterm(
    served: tuple[asyncio.subprocess.Process, str, str],
    connect_to: Callable[[str, str], Awaitable[Any]],
    tmp_path: Path,
) -> None:
    process, ws_url, http_url = served
    charger = await connect_to(ws_url, "CP01")
    boot = call.BootNotification(charge_point_model="M", charge_point_vendor="V")
    answer = await charger.call(boot, suppress=False)
    assert (answer.status, answer.interval) == (RegistrationStatus.accepted, 30)
    tag = await charger.call(call.Authorize(id_tag="TAG2"), suppress=False)
    assert tag.id_tag_info["status"] == "Accepted"

    code, out, _ = await _cli(
        "remote-start", "--http", http_url, "--cp", "CP01", "--tag", "TAG1", "--connector", "1"
    )
    assert code == 0
    assert json.loads(out)["result"] == {"status": "Accepted"}
    assert charger.remote_starts == [{"id_tag": "TAG1", "connector_id": 1}]

    code, _, err = await _cli(
        "remote-stop", "--http", http_url, "--cp", "NOPE", "--transaction", "1"
    )
    assert code == 2
    assert "HTTP 404" in err

    code, out, _ = await _cli("messages", "--http", http_url, "--cp", "CP01")
    assert code == 0
    assert "CP01 -> CALL RemoteStartTransaction" in out
    assert "CP01 <- RESULT RemoteStartTransaction" in out

    process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(process.wait(), 10) == 0
    assert process.stderr is not None
    log = (await process.stderr.read()).decode()
    assert re.search(r"CP01 <- CALL BootNotification #\S+ \{.*\"chargePointVendor\":\"V\"", log)
    assert "Traceback" not in log

    lines = (tmp_path / "journal.jsonl").read_text().splitlines()
    journal = [json.loads(line) for line in lines]
    assert [(e["dir"], e["type"], e["action"]) for e in journal][:2] == [
        ("in", 2, "BootNotification"),
        ("out", 3, "BootNotification"),
    ]
    assert {e["cp"] for e in journal} == {"CP01"}
    assert [e["i"] for e in journal] == list(range(len(journal)))


async def test_serve_with_tls_speaks_wss(tmp_path: Path) -> None:
    import ssl

    import websockets
    from tls_support import TestCa
    from websockets.typing import Subprotocol

    ca = TestCa(tmp_path / "pki")
    server = ca.issue_server("csms", ["localhost", "127.0.0.1"])
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "evsed_devcsms",
        "serve",
        "--port",
        "0",
        "--http-port",
        "0",
        "--tls-cert",
        str(server.cert),
        "--tls-key",
        str(server.key),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 10)).decode().strip()
        ws_url = re.search(r"ws=(\S+)", line)
        assert ws_url and ws_url.group(1).startswith("wss://127.0.0.1:")
        trust = ssl.create_default_context(cafile=ca.cert)
        async with websockets.connect(
            ws_url.group(1) + "/CP01", ssl=trust, subprotocols=[Subprotocol("ocpp1.6")]
        ) as ws:
            await ws.send('[2,"b1","Heartbeat",{}]')
            answer = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert answer[0:2] == [3, "b1"] and "currentTime" in answer[2]
        # Without the test CA the server's certificate is not trusted.
        with pytest.raises(ssl.SSLCertVerificationError):
            async with websockets.connect(
                ws_url.group(1) + "/CP02", ssl=ssl.create_default_context()
            ):
                pass
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 10)
