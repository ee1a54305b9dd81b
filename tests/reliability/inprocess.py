"""The daemon and a development CSMS on one event loop in a background thread, for tests that
send thousands of inputs (hypothesis examples) and watch the contactor coil as it switches.

The daemon is the real one (``evsed.daemon.Daemon``, simulated HAL, its own state directory);
only the process boundary is missing, which lets a test write to the simulated MCU's line,
send frames without waiting for an answer and see every coil edge. A daemon that dies shows as
its task being done; :meth:`Rig.alive` re-raises what stopped it.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

from evsed.config import load_config
from evsed.daemon import Daemon
from evsed_devcsms.server import DevCsms
from evsed_devcsms.state import CsmsSettings
from evsed_devtools.harness import write_config

T = TypeVar("T")
CP = "CP01"


class Rig:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.csms: DevCsms
        self.daemon: Daemon
        self.task: asyncio.Task[None]
        self.coil_edges: list[tuple[int, bool]] = []  # (connector, energised)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call_soon(self, func: Callable[[], T], timeout: float = 10.0) -> T:
        async def wrapper() -> T:
            return func()

        return self.run(wrapper(), timeout)

    def alive(self) -> None:
        if self.task.done():
            self.task.result()
            raise AssertionError("the daemon stopped")

    def connector(self, connector_id: int = 1) -> Any:
        assert self.daemon.charger is not None
        return self.daemon.charger.connectors[connector_id]

    def world(self) -> Any:
        assert self.daemon.charger is not None
        return self.daemon.charger.hardware.world

    def wait(self, predicate: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        while not self.call_soon(predicate):
            self.alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out waiting for {what}")
            time.sleep(0.02)


@contextlib.contextmanager
def running(workdir: Path, **sections: Any) -> Iterator[Rig]:
    """Start the CSMS and the daemon; stop both (the daemon must stop cleanly, unless the body
    failed already)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="rig-loop", daemon=True)
    thread.start()
    rig = Rig(loop)

    async def start() -> None:
        rig.csms = DevCsms(CsmsSettings(heartbeat_interval=300), host="127.0.0.1", port=0)
        await rig.csms.start()
        config = load_config(write_config(workdir, rig.csms.ws_url, CP, **sections))
        rig.daemon = Daemon(config)
        rig.task = asyncio.create_task(rig.daemon.run(), name="evsed")

    rig.run(start())

    def ready() -> bool:
        charger, client = rig.daemon.charger, rig.daemon.client
        return (
            charger is not None
            and client is not None
            and charger.hardware.world is not None
            and all(c.pilot_link_ok for c in charger.connectors.values())
            and client.snapshot()["registration"] == "Accepted"
        )

    try:
        rig.wait(ready, 20, "the daemon registered")
        for cid in rig.daemon.charger.connectors:  # type: ignore[union-attr]

            def observe(energised: bool, _stamp: int, cid: int = cid) -> None:
                rig.coil_edges.append((cid, energised))

            rig.call_soon(
                lambda o=observe, c=cid: rig.world().connector(c).contactor.on_coil_change.append(o)
            )
        yield rig
        rig.alive()
    finally:

        async def stop() -> BaseException | None:
            rig.daemon.terminate()
            error: BaseException | None = None
            try:
                await asyncio.wait_for(rig.task, 20)
            except Exception as exc:  # reported below, after the CSMS is stopped too
                error = exc
            await rig.csms.stop()
            return error

        try:
            stopped_with = rig.run(stop(), 40)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            loop.close()
        if stopped_with is not None and sys.exc_info()[0] is None:
            raise AssertionError("the daemon did not stop cleanly") from stopped_with
