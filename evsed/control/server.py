"""The local control socket: one JSON object per line in, one per line out.

Requests: ``{"cmd": "status"}``, ``{"cmd": "sim", "args": [...], "connector": N}``,
``{"cmd": "clear-faults", "connector": N}``, ``{"cmd": "faults", "connector": N, "limit": N}``
(the fault history, newest first; both optional), ``{"cmd": "data-transfer", "vendor_id": V,
"message_id": M, "data": D}`` (vendor data to the CSMS), and ``{"cmd": "display"}``: a stream
of JSON lines that lasts until the client closes (:mod:`evsed.control.display`),
``{"cmd": "security-log", "clear": B}`` (the security log, oldest first; ``clear`` empties
it, which is itself recorded).
Replies: ``{"ok": true, ...}`` or ``{"ok": false, "error": "..."}``.

The socket is created with mode 0660: its owner (the daemon's user) and group only, and root.
Under the systemd unit both are ``evsed``; a daemon run as root hands the socket to the
``evsed`` group when the machine has one. Whoever is in that group can drive the charger,
including ``clear-faults``, which clears a latched contactor weld (docs/systemd.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import json
import logging
import os
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger(__name__)

MAX_REQUEST = 64 * 1024
SOCKET_GROUP = "evsed"


class ControlError(Exception):
    """A control request that cannot be carried out; its message goes back to the client."""


class Controlled(Protocol):
    async def status(self) -> dict[str, Any]: ...

    def sim(self, words: list[str], connector_id: int | None) -> str:
        """A ``sim`` verb; ``connector_id`` None: connector 1, or a charger-wide verb."""

    def clear_faults(self, connector_id: int | None) -> list[str]: ...

    async def faults(self, connector_id: int | None, limit: int | None) -> list[dict[str, Any]]:
        """The fault history, newest first."""

    async def data_transfer(
        self, vendor_id: str, message_id: str | None, data: str | None
    ) -> dict[str, Any]:
        """Vendor data to the CSMS; its answer."""

    async def security_log(self, clear: bool) -> dict[str, Any]:
        """The security log's entries (after emptying it, when ``clear``)."""

    def display(self) -> AsyncGenerator[dict[str, Any], None]:
        """The display feed: current frames, then every change."""


class ControlServer:
    def __init__(self, path: Path, target: Controlled, *, group: str = SOCKET_GROUP) -> None:
        self.path = path
        self._target = target
        self._group = group
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self._server = await asyncio.start_unix_server(
            self._serve, path=str(self.path), limit=MAX_REQUEST
        )
        os.chmod(self.path, 0o660)
        if os.geteuid() == 0:
            self._give_to_group()

    def _give_to_group(self) -> None:
        try:
            gid = grp.getgrnam(self._group).gr_gid
        except KeyError:
            log.info("no group %r: the control socket is for root only", self._group)
            return
        os.chown(self.path, -1, gid)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                if _is_display(line):
                    await self._stream(reader, writer)
                    return
                writer.write(json.dumps(await self.handle(line)).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, ValueError) as exc:
            log.debug("control client went away: %s", exc)
        finally:
            writer.close()

    async def _stream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """The display feed until the client goes (it closes, or sends anything)."""
        writer.write(json.dumps({"ok": True, "stream": "display"}).encode() + b"\n")
        gone = asyncio.ensure_future(reader.read(1))
        frames = self._target.display()
        try:
            async for frame in frames:
                if gone.done():
                    break
                writer.write(json.dumps(frame).encode() + b"\n")
                await writer.drain()
        finally:
            gone.cancel()
            await frames.aclose()

    async def handle(self, line: bytes) -> dict[str, Any]:
        try:
            request = json.loads(line)
            if not isinstance(request, dict):
                raise ControlError("request must be a JSON object")
            return {"ok": True, **await self._dispatch(request)}
        except json.JSONDecodeError as exc:
            return {"ok": False, "error": f"malformed request: {exc}"}
        except (ControlError, ValueError) as exc:
            return {"ok": False, "error": str(exc)}

    async def _dispatch(self, request: dict[str, Any]) -> dict[str, Any]:
        cmd = request.get("cmd")
        connector = request.get("connector")
        if connector is not None and (
            not isinstance(connector, int) or isinstance(connector, bool)
        ):
            raise ControlError("connector must be an integer")
        if cmd == "status":
            return {"status": await self._target.status()}
        if cmd == "sim":
            args = request.get("args")
            if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
                raise ControlError("sim needs args: a list of strings")
            return {"message": self._target.sim(args, connector)}
        if cmd == "clear-faults":
            return {"cleared": self._target.clear_faults(connector)}
        if cmd == "data-transfer":
            vendor, message, data = (request.get(k) for k in ("vendor_id", "message_id", "data"))
            if not isinstance(vendor, str) or not vendor:
                raise ControlError("data-transfer needs vendor_id: a string")
            if not all(v is None or isinstance(v, str) for v in (message, data)):
                raise ControlError("message_id and data must be strings")
            return await self._target.data_transfer(vendor, message, data)
        if cmd == "security-log":
            clear = request.get("clear", False)
            if not isinstance(clear, bool):
                raise ControlError("clear must be true or false")
            return await self._target.security_log(clear)
        if cmd == "faults":
            limit = request.get("limit")
            if limit is not None and (not isinstance(limit, int) or limit < 1):
                raise ControlError("limit must be a positive integer")
            return {"faults": await self._target.faults(connector, limit)}
        raise ControlError(f"unknown command {cmd!r}")


def _is_display(line: bytes) -> bool:
    try:
        request = json.loads(line)
    except ValueError:
        return False
    return isinstance(request, dict) and request.get("cmd") == "display"
