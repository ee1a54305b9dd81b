"""The development CSMS as one object: OCPP 1.6J websocket endpoint plus admin HTTP API.

Used in-process by tests (``async with DevCsms(...) as csms``) and by ``evsed-devcsms serve``.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from datetime import datetime
from http import HTTPStatus
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import unquote, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from evsed_devcsms.admin import AdminServer
from evsed_devcsms.chargepoint import CallOutcome, CsmsChargePoint
from evsed_devcsms.errors import ChargerNotConnected
from evsed_devcsms.journal import Journal, utc_now
from evsed_devcsms.security import ConnectionChecks
from evsed_devcsms.state import (
    AnswerRule,
    CsmsSettings,
    CsmsState,
    IdTagRecord,
    check_boot_status,
)

_LOG = logging.getLogger(__name__)

#: OCPP-J 1.6 §3.1.1: the websocket subprotocol name.
SUBPROTOCOL = "ocpp1.6"
PATH_PREFIX = "/ocpp/"
DEFAULT_CALL_TIMEOUT = 10.0


def charge_point_id(path: str) -> str | None:
    """The charge point identity from ``/ocpp/<id>`` (OCPP-J 1.6 §3.1.1), None if not ours."""
    route = urlsplit(path).path
    if not route.startswith(PATH_PREFIX):
        return None
    cp_id = unquote(route[len(PATH_PREFIX) :])
    if not cp_id or "/" in cp_id or not cp_id.isprintable():
        return None
    return cp_id


def _peer(connection: ServerConnection) -> str:
    address = connection.remote_address
    return f"{address[0]}:{address[1]}" if isinstance(address, tuple) else str(address)


class DevCsms:
    """A small OCPP 1.6J central system for development and end-to-end tests."""

    def __init__(
        self,
        settings: CsmsSettings | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        http_port: int = 0,
        files_dir: Path | None = None,
        journal: Journal | None = None,
        call_timeout: float = DEFAULT_CALL_TIMEOUT,
        id_factory: Callable[[], object] | None = None,
        clock: Callable[[], datetime] = utc_now,
        tls: ssl.SSLContext | None = None,
        auth_keys: dict[str, str] | None = None,
    ) -> None:
        """``tls``: serve the OCPP endpoint as wss:// with this server context;
        ``auth_keys``: charge point id -> the AuthorizationKey (hex) its Basic auth must
        carry (security profiles 1 and 2)."""
        self._tls = tls
        self.checks = ConnectionChecks(auth_keys)
        self.state = CsmsState(settings or CsmsSettings(), clock=clock)
        self.journal = journal if journal is not None else Journal(clock=clock)
        self.call_timeout = call_timeout
        self._host = host
        self._port = port
        self._http_port = http_port
        self._files_dir = files_dir
        self._id_factory = id_factory
        self._live: dict[str, tuple[CsmsChargePoint, ServerConnection]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: Server | None = None
        self._admin: AdminServer | None = None

    # --- life cycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Bind both ports (0 = pick a free one) and start serving."""
        self._server = await serve(
            self._serve_connection,
            self._host,
            self._port,
            subprotocols=[Subprotocol(SUBPROTOCOL)],
            process_request=self._check_request,
            ssl=self._tls,
        )
        self._port = self._server.sockets[0].getsockname()[1]
        self._admin = AdminServer(
            self, asyncio.get_running_loop(), self._host, self._http_port, self._files_dir
        )
        self._admin.start()
        self._http_port = self._admin.port
        _LOG.info("OCPP endpoint %s/<id>, admin API %s", self.ws_url, self.http_url)

    async def stop(self) -> None:
        """Close every connection (1001 going away) and both servers."""
        if self._admin is not None:
            await asyncio.to_thread(self._admin.stop)
            self._admin = None
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for task in list(self._tasks):
            task.cancel()

    async def __aenter__(self) -> DevCsms:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def ws_url(self) -> str:
        """Base URL of the OCPP endpoint; charge points append ``/<id>``."""
        scheme = "wss" if self._tls is not None else "ws"
        return f"{scheme}://{self._host}:{self._port}{PATH_PREFIX.rstrip('/')}"

    @property
    def http_url(self) -> str:
        """Base URL of the admin API and file server."""
        return f"http://{self._host}:{self._http_port}"

    # --- websocket side -----------------------------------------------------------------

    def _check_request(self, connection: ServerConnection, request: Request) -> Response | None:
        cp_id = charge_point_id(request.path)
        if cp_id is None:
            _LOG.warning("refused websocket request for %s", request.path)
            return connection.respond(
                HTTPStatus.NOT_FOUND, f"OCPP endpoint is {PATH_PREFIX}<charge point id>\n"
            )
        return self.checks.check(connection, request, cp_id, self.state.now())

    async def _serve_connection(self, connection: ServerConnection) -> None:
        assert connection.request is not None  # set once the handshake succeeded
        cp_id = charge_point_id(connection.request.path)
        assert cp_id is not None  # _check_request refused every other path
        cp = CsmsChargePoint(
            cp_id, connection, self.state, self.journal, id_factory=self._id_factory
        )
        previous = self._live.get(cp_id)
        if previous is not None:
            _LOG.warning("%s connected again: closing the older connection", cp_id)
            previous[0].mark_closed()
            self._spawn(previous[1].close(1000, "superseded by a new connection"))
        self._live[cp_id] = (cp, connection)
        self.state.charger_connected(cp_id)
        _LOG.info("%s connected from %s", cp_id, _peer(connection))
        try:
            await cp.start()
        except ConnectionClosed:
            pass  # abnormal close: logged below like a normal one
        finally:
            cp.mark_closed()
            if self._live.get(cp_id, (None,))[0] is cp:
                del self._live[cp_id]
                self.state.charger_disconnected(cp_id)
            _LOG.info(
                "%s disconnected (close code %s%s)",
                cp_id,
                connection.close_code,
                f": {connection.close_reason}" if connection.close_reason else "",
            )

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- operations (also behind the admin API; run on the websocket loop) --------------

    async def connections(self) -> list[dict[str, Any]]:
        """Every connection attempt: Basic auth outcome, TLS version, client certificate."""
        return list(self.checks.records)

    async def set_auth_key(self, cp_id: str, key: str | None) -> dict[str, Any]:
        """Expect Basic auth with ``key`` (hex) from ``cp_id`` from now on (None: none)."""
        return self.checks.set_key(cp_id, key)

    def connected(self) -> list[str]:
        """Ids of the connected charge points."""
        return sorted(self._live)

    async def call(
        self,
        cp_id: str,
        action: str,
        payload: dict[str, Any],
        *,
        timeout: float | None = None,
        validate: bool = True,
    ) -> CallOutcome:
        """Send a CALL to a connected charge point and return its answer.

        Raises ChargerNotConnected, InvalidCall, TimeoutError, ChargerGone.
        """
        live = self._live.get(cp_id)
        if live is None:
            raise ChargerNotConnected(cp_id)
        return await live[0].call_raw(
            action, payload, timeout=timeout or self.call_timeout, validate=validate
        )

    async def send_raw(
        self, cp_id: str, text: str, *, timeout: float | None = None
    ) -> CallOutcome | None:
        """Send one raw websocket message to a connected charge point; its answer (a
        CallOutcome) when the message has a readable id, else None.

        Raises ChargerNotConnected, TimeoutError, ChargerGone.
        """
        live = self._live.get(cp_id)
        if live is None:
            raise ChargerNotConnected(cp_id)
        return await live[0].send_raw(text, timeout=timeout or self.call_timeout)

    async def set_boot_status(self, status: str) -> dict[str, Any]:
        """Change what later BootNotifications get (current connections are not re-booted)."""
        self.state.settings.boot_status = check_boot_status(status)
        _LOG.info("BootNotification answers are now %s", status)
        return {"boot_status": status}

    async def set_id_tag(self, id_tag: str, record: IdTagRecord | None) -> dict[str, Any]:
        """Set (None: remove) what Authorize, StartTransaction and StopTransaction answer for
        one tag; returns every per-tag record."""
        self.state.set_id_tag(id_tag, record)
        _LOG.info("idTag %s: %s", id_tag, record.to_json() if record else "default answer")
        return self.state.id_tags_snapshot()

    async def id_tags(self) -> dict[str, Any]:
        """The per-tag records."""
        return self.state.id_tags_snapshot()

    async def set_answer_rule(self, action: str, rule: AnswerRule | None) -> dict[str, Any]:
        """Change how CALLs of ``action`` from charge points are answered (None: normally)."""
        self.state.set_answer_rule(action, rule)
        _LOG.info("%s CALLs: %s", action, f"{rule.mode} {rule.delay:g} s" if rule else "normal")
        return self.state.answer_rules_snapshot()

    async def answer_rules(self) -> dict[str, Any]:
        """The answer rules in force."""
        return self.state.answer_rules_snapshot()

    async def chargers(self) -> list[dict[str, Any]]:
        """Every charge point seen, with ``connected`` and last status per connector."""
        return self.state.chargers_snapshot()

    async def transactions(self) -> list[dict[str, Any]]:
        """Every transaction started since this CSMS started."""
        return self.state.transactions_snapshot()
