"""Fixtures for the development CSMS tests: a real CSMS on 127.0.0.1 and a minimal charger."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import websockets
from ocpp.routing import on
from ocpp.v16 import ChargePoint, call_result
from ocpp.v16.enums import Action, RemoteStartStopStatus, ResetStatus, UnlockStatus
from websockets.typing import Subprotocol

from evsed_devcsms import CsmsSettings, DevCsms


class _FailOnBadLogFormat(logging.Handler):
    """Fail the test when a log call's %-format does not match its arguments (zigpy idea)."""

    def __init__(self) -> None:
        super().__init__()
        self.bad: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            record.getMessage()
        except (TypeError, ValueError) as exc:
            self.bad.append(f"{record.name}: {record.msg!r} {exc}")


@pytest.fixture(autouse=True)
def _log_format_guard() -> Any:
    handler = _FailOnBadLogFormat()
    root = logging.getLogger()
    root.addHandler(handler)
    yield
    root.removeHandler(handler)
    assert not handler.bad, handler.bad


class TestCharger(ChargePoint):  # type: ignore[misc]
    """The smallest charge point that answers the CALLs these tests send."""

    __test__ = False  # not a test class despite the name

    def __init__(self, cp_id: str, connection: Any) -> None:
        super().__init__(cp_id, connection, response_timeout=5)
        self.remote_starts: list[dict[str, Any]] = []
        self.remote_stops: list[int] = []

    @on(Action.remote_start_transaction)  # type: ignore[untyped-decorator]
    def on_remote_start(self, id_tag: str, connector_id: int | None = None, **_: Any) -> Any:
        self.remote_starts.append({"id_tag": id_tag, "connector_id": connector_id})
        return call_result.RemoteStartTransaction(status=RemoteStartStopStatus.accepted)

    @on(Action.remote_stop_transaction)  # type: ignore[untyped-decorator]
    def on_remote_stop(self, transaction_id: int) -> Any:
        self.remote_stops.append(transaction_id)
        return call_result.RemoteStopTransaction(status=RemoteStartStopStatus.accepted)

    @on(Action.reset)  # type: ignore[untyped-decorator]
    async def on_reset(self, **_: Any) -> Any:
        await asyncio.sleep(0.6)  # slower than the tests' CALL timeout
        return call_result.Reset(status=ResetStatus.accepted)

    @on(Action.unlock_connector)  # type: ignore[untyped-decorator]
    async def on_unlock_connector(self, **_: Any) -> Any:
        await self._connection.close()  # hang up instead of answering
        return call_result.UnlockConnector(status=UnlockStatus.unlocked)


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, websockets.ConnectionClosed):
        await task


ChargerFactory = Callable[[str], Awaitable[TestCharger]]


@pytest.fixture
def settings() -> CsmsSettings:
    """CSMS settings (tags GOOD1, GOOD2); shared with the running CSMS, so tests may mutate."""
    return CsmsSettings(heartbeat_interval=60, tags=frozenset({"GOOD1", "GOOD2"}))


@pytest.fixture
async def csms(settings: CsmsSettings, tmp_path: Path) -> AsyncIterator[DevCsms]:
    """A running CSMS on free ports, serving ``tmp_path / "files"``."""
    files = tmp_path / "files"
    files.mkdir()
    async with DevCsms(settings, files_dir=files, call_timeout=2.0) as server:
        yield server


@pytest.fixture
async def connect_to() -> AsyncIterator[Callable[[str, str], Awaitable[TestCharger]]]:
    """Connect TestChargers to ``(ws base URL, id)``; receive loops run until the test ends."""
    async with contextlib.AsyncExitStack() as stack:

        async def factory(base_url: str, cp_id: str) -> TestCharger:
            ws = await stack.enter_async_context(
                websockets.connect(f"{base_url}/{cp_id}", subprotocols=[Subprotocol("ocpp1.6")])
            )
            charger = TestCharger(cp_id, ws)
            stack.push_async_callback(_stop, asyncio.create_task(charger.start()))
            return charger

        yield factory


@pytest.fixture
def connect(
    csms: DevCsms, connect_to: Callable[[str, str], Awaitable[TestCharger]]
) -> ChargerFactory:
    """Connect TestChargers to the ``csms`` fixture by id."""

    def factory(cp_id: str) -> Awaitable[TestCharger]:
        return connect_to(csms.ws_url, cp_id)

    return factory
