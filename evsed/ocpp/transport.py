"""The websocket to the CSMS: connect, hand the connection to the protocol, reconnect.

Reconnects use exponential backoff with full random jitter, so that a fleet that lost its CSMS
does not come back in one wave. ``set_network(False)`` cuts the connection and holds it down
(the simulator's ``sim network down``). With a :class:`~evsed.security.connection.
ConnectionSecurity` each attempt gets the URL, TLS context and headers of the security profile
in force, and each outcome is told back to it (security events, falling back to settings that
worked). Without one a ``wss://`` URL gets a verifying context: the system's trust store, the
hostname checked, TLS 1.2 or newer. A password in the URL (Basic auth as userinfo)
is never shown: ``display_url`` and every log line carry ``user:***@`` instead.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
import ssl
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import websockets
from websockets.asyncio.client import ClientConnection, connect

from evsed.urls import redact_url

if TYPE_CHECKING:
    from evsed.security.connection import ConnectionSecurity

log = logging.getLogger(__name__)

# The websocket library's own cap on one message; frames above the configured maximum but
# below this are refused by the protocol layer with an answer (the connection stays up).
HARD_MAX_MESSAGE_BYTES = 4 * 1024 * 1024


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
        security: ConnectionSecurity | None = None,
        max_message_bytes: int = HARD_MAX_MESSAGE_BYTES,
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
        self._security = security
        self._max_size = max(max_message_bytes, HARD_MAX_MESSAGE_BYTES)
        self._hurry = False  # reconnect at once: the security settings changed
        if security is not None:
            security.on_reconnect_needed(self.reconnect)
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

    def reconnect(self) -> None:
        """Close the connection (normally) and connect again at once, with new settings."""
        self._hurry = True
        if self._connection is not None:
            asyncio.get_running_loop().create_task(
                self._connection.close(1000, "security settings changed")
            )

    async def close(self) -> None:
        """Close the connection with a normal close frame (the daemon is stopping)."""
        self._network_up.clear()
        if self._connection is not None:
            await self._connection.close(1001, "charge point shutting down")

    @property
    def network_up(self) -> bool:
        return self._network_up.is_set()

    def backoff(self, attempt: int) -> float:
        """Delay before reconnect ``attempt`` (1-based): uniform between the minimum and a cap
        that doubles with each attempt, from twice the minimum up to the maximum. The first
        retry is spread too: a fleet that lost its CSMS at the same moment must not come back
        at the same moment."""
        cap = min(self._max, self._min * 2**attempt)
        return self._rng.uniform(self._min, max(self._min, cap))

    async def run(self, session: Session) -> None:
        attempt = 0
        while True:
            if not self._network_up.is_set():
                self.state = LinkState.NETWORK_DOWN
                await self._network_up.wait()
                attempt = 0
            self.state = LinkState.CONNECTING
            opened = False
            try:
                url, context, headers = self.url, self._ssl, self._headers
                if self._security is not None:
                    settings = await self._security.settings()
                    url, context, headers = settings.url, settings.ssl, settings.headers
                    self.display_url = redact_url(url)  # ws:// becomes wss:// for profile 2
                self._hurry = False
                async with connect(
                    url,
                    subprotocols=[websockets.Subprotocol(self._subprotocol)],
                    ssl=context,
                    additional_headers=headers,
                    ping_interval=self._ping,
                    ping_timeout=self._ping,
                    open_timeout=10,
                    close_timeout=2,
                    max_size=self._max_size,
                ) as ws:
                    if ws.subprotocol != self._subprotocol:
                        raise ConnectionError(f"CSMS did not agree to {self._subprotocol}")
                    opened = True
                    self._connection, self.state, attempt = ws, LinkState.CONNECTED, 0
                    self.last_error = ""
                    log.info("connected to CSMS %s", self.display_url)
                    if self._security is not None:
                        await self._security.connected(_peer_certificate(ws))
                    await session(ws)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure of one connection: log, back off, retry
                self.last_error = _describe(exc).replace(url, self.display_url)
                log.warning("CSMS connection failed or lost: %s", self.last_error)
                if self._security is not None and not opened:
                    await self._security.failed(exc)
            finally:
                self._connection = None
                if self.state is LinkState.CONNECTED:
                    self.state = LinkState.DISCONNECTED
            attempt += 1
            delay = self.backoff(attempt) if not self._hurry else 0.0
            if self._network_up.is_set():
                self.state = LinkState.DISCONNECTED
                log.info("reconnecting to CSMS in %.1f s", delay)
                await asyncio.sleep(delay)


def _peer_certificate(ws: ClientConnection) -> bytes | None:
    """The CSMS's certificate (DER) of a TLS connection, None over plain TCP."""
    ssl_object = ws.transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    der: bytes | None = ssl_object.getpeercert(binary_form=True)
    return der


def verifying_context() -> ssl.SSLContext:
    """TLS client context: the system's trust store, hostname checked, TLS 1.2 or newer."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if str(exc) else text
