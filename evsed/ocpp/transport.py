"""The websocket to the CSMS: connect, hand the connection to the protocol, reconnect.

Reconnects use exponential backoff with full random jitter, so that a fleet that lost its CSMS
does not come back in one wave. ``set_network(False)`` cuts the connection and holds it down
(the simulator's ``sim network down``); TLS and HTTP Basic auth plug in as connect arguments.
A ``wss://`` URL without a TLS context of its own gets a verifying one: the system's trust
store, the hostname checked, TLS 1.2 or newer. A password in the URL (Basic auth as userinfo)
is never shown: ``display_url`` and every log line carry ``user:***@`` instead.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
import ssl
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit, urlunsplit

import websockets
from websockets.asyncio.client import ClientConnection, connect

log = logging.getLogger(__name__)


class LinkState(enum.StrEnum):
    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    NETWORK_DOWN = "network-down"


Session = Callable[[ClientConnection], Awaitable[None]]


class CsmsLink:
    """Keeps one websocket to the CSMS open and runs ``session`` on each connection;
    ``subprotocol`` is the OCPP version's (OCPP-J 1.6 §3.1.2: "ocpp1.6")."""

    def __init__(
        self,
        url: str,
        *,
        subprotocol: str,
        reconnect_min_s: float,
        reconnect_max_s: float,
        ping_interval_s: float,
        ssl_context: ssl.SSLContext | None = None,
        headers: dict[str, str] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.url = url
        self.display_url = redact_url(url)
        self._subprotocol = subprotocol
        self.state = LinkState.DISCONNECTED
        self.last_error = ""
        self._min, self._max = reconnect_min_s, reconnect_max_s
        self._ping = ping_interval_s or None
        if ssl_context is None and url.startswith("wss://"):
            ssl_context = verifying_context()
        self._ssl, self._headers = ssl_context, headers
        self._rng = rng or random.Random()
        self._network_up = asyncio.Event()
        self._network_up.set()
        self._connection: ClientConnection | None = None

    def set_network(self, up: bool) -> None:
        """Simulate losing (False) or regaining (True) the network path to the CSMS."""
        if up:
            self._network_up.set()
            return
        self._network_up.clear()
        self.state = LinkState.NETWORK_DOWN
        if self._connection is not None:
            # An abrupt loss: no close handshake reaches the CSMS.
            self._connection.transport.abort()

    async def close(self) -> None:
        """Close the connection with a normal close frame (the daemon is stopping)."""
        self._network_up.clear()
        if self._connection is not None:
            await self._connection.close(1001, "charge point shutting down")

    @property
    def network_up(self) -> bool:
        return self._network_up.is_set()

    def backoff(self, attempt: int) -> float:
        """Delay before reconnect ``attempt`` (1-based): full jitter over an exponential cap."""
        cap = min(self._max, self._min * 2 ** max(0, attempt - 1))
        return self._min + self._rng.uniform(0, max(0.0, cap - self._min))

    async def run(self, session: Session) -> None:
        attempt = 0
        while True:
            if not self._network_up.is_set():
                self.state = LinkState.NETWORK_DOWN
                await self._network_up.wait()
                attempt = 0
            self.state = LinkState.CONNECTING
            try:
                async with connect(
                    self.url,
                    subprotocols=[websockets.Subprotocol(self._subprotocol)],
                    ssl=self._ssl,
                    additional_headers=self._headers,
                    ping_interval=self._ping,
                    ping_timeout=self._ping,
                    open_timeout=10,
                    close_timeout=2,
                ) as ws:
                    if ws.subprotocol != self._subprotocol:
                        raise ConnectionError(f"CSMS did not agree to {self._subprotocol}")
                    self._connection, self.state, attempt = ws, LinkState.CONNECTED, 0
                    self.last_error = ""
                    log.info("connected to CSMS %s", self.display_url)
                    await session(ws)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure of one connection: log, back off, retry
                self.last_error = _describe(exc).replace(self.url, self.display_url)
                log.warning("CSMS connection failed or lost: %s", self.last_error)
            finally:
                self._connection = None
                if self.state is LinkState.CONNECTED:
                    self.state = LinkState.DISCONNECTED
            attempt += 1
            delay = self.backoff(attempt)
            if self._network_up.is_set():
                self.state = LinkState.DISCONNECTED
                log.info("reconnecting to CSMS in %.1f s", delay)
                await asyncio.sleep(delay)


def verifying_context() -> ssl.SSLContext:
    """TLS client context: the system's trust store, hostname checked, TLS 1.2 or newer."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def redact_url(url: str) -> str:
    """``url`` with the password of its userinfo (if any) replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if str(exc) else text
