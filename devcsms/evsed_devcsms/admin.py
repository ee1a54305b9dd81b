"""Admin HTTP API and file server of the development CSMS.

Runs ``http.server.ThreadingHTTPServer`` in a thread so slow clients never stall the websocket
loop; anything touching charge points or CSMS state runs on that loop through
``asyncio.run_coroutine_threadsafe``. The journal has its own lock and is read directly.

Routes (JSON bodies; API-level failures answer ``{"detail": "..."}``):
``GET /api/messages[?cp=&action=&since=]``, ``GET /api/chargers``, ``GET /api/transactions``,
``POST /api/call``, ``POST /api/send-raw``, ``POST /api/remote-start``, ``POST /api/remote-stop``,
``POST /api/boot-status``, ``GET|POST /api/id-tags`` (per-tag IdTagInfo), ``GET|POST
/api/answers`` (drop, delay or refuse a charger's CALLs of one action), ``GET
/api/connections`` (every connection attempt: Basic auth, TLS, client certificate), ``POST
/api/auth-keys`` (the AuthorizationKey a charge point's Basic auth must carry), ``GET|HEAD
/files/<name>`` (``<name>`` may be a path into a directory tree, e.g. a casync chunk store),
``GET /api/files/served[?prefix=]`` (bytes and requests served per file),
``POST /api/files/served/reset``, ``GET|POST /api/files/faults`` (files under a prefix
disappear after a number of requests), ``PUT /uploads/<name>`` (a charger uploads a file),
``GET /uploads/<name>`` (what it uploaded), ``GET /api/uploads`` (files and attempts),
``POST /api/uploads/refuse`` (answer the next uploads with an HTTP error status).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import threading
from collections.abc import Callable, Coroutine
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

from evsed_devcsms.chargepoint import CallOutcome
from evsed_devcsms.errors import ChargerGone, ChargerNotConnected, InvalidCall
from evsed_devcsms.files import FileFaults, FileLedger, resolve_file, send_file
from evsed_devcsms.journal import Journal
from evsed_devcsms.state import AnswerRule, IdTagRecord
from evsed_devcsms.uploads import UploadStore

_LOG = logging.getLogger(__name__)
_T = TypeVar("_T")
_MAX_BODY = 1024 * 1024
#: Extra seconds the HTTP thread waits beyond the CALL timeout before answering 504 itself.
_LOOP_GRACE = 5.0


class AdminBackend(Protocol):
    """What the admin API needs from the CSMS; every coroutine runs on the websocket loop."""

    journal: Journal
    call_timeout: float

    async def chargers(self) -> list[dict[str, Any]]:
        """Charge points seen."""

    async def transactions(self) -> list[dict[str, Any]]:
        """Transactions started."""

    async def call(
        self,
        cp_id: str,
        action: str,
        payload: dict[str, Any],
        *,
        timeout: float | None = None,
        validate: bool = True,
    ) -> CallOutcome:
        """Send a CALL to a charge point."""

    async def send_raw(
        self, cp_id: str, text: str, *, timeout: float | None = None
    ) -> CallOutcome | None:
        """Send one raw frame to a charge point; its answer if the frame has an id."""

    async def set_boot_status(self, status: str) -> dict[str, Any]:
        """Change later BootNotification answers."""

    async def set_id_tag(self, id_tag: str, record: IdTagRecord | None) -> dict[str, Any]:
        """Set or remove the record of one idTag."""

    async def id_tags(self) -> dict[str, Any]:
        """The per-tag records."""

    async def set_answer_rule(self, action: str, rule: AnswerRule | None) -> dict[str, Any]:
        """Change how CALLs of one action are answered."""

    async def answer_rules(self) -> dict[str, Any]:
        """The answer rules in force."""

    async def connections(self) -> list[dict[str, Any]]:
        """Every connection attempt (Basic auth outcome, TLS, client certificate)."""

    async def set_auth_key(self, cp_id: str, key: str | None) -> dict[str, Any]:
        """Expect Basic auth with this AuthorizationKey (hex) from a charge point."""


class ApiError(Exception):
    """An API-level failure with its HTTP status."""

    def __init__(self, status: HTTPStatus, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class _AdminHttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        backend: AdminBackend,
        loop: asyncio.AbstractEventLoop,
        files_dir: Path | None,
    ) -> None:
        super().__init__(address, _AdminHandler)
        self.backend = backend
        self.loop = loop
        self.files_dir = files_dir
        # Touched only by the HTTP threads: no need to go through the websocket loop.
        self.ledger = FileLedger()
        self.faults = FileFaults()
        self.uploads = UploadStore()


class AdminServer:
    """The admin HTTP server and the thread it runs in."""

    def __init__(
        self,
        backend: AdminBackend,
        loop: asyncio.AbstractEventLoop,
        host: str,
        port: int,
        files_dir: Path | None,
    ) -> None:
        self._httpd = _AdminHttpServer((host, port), backend, loop, files_dir)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )

    @property
    def port(self) -> int:
        """The bound port (useful when asked for port 0)."""
        return int(self._httpd.server_address[1])

    def start(self) -> None:
        """Start answering in the background thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop and close the socket (blocks up to one poll interval; call off the loop)."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()


def _require(body: dict[str, Any], key: str, kind: type[_T]) -> _T:
    value = body.get(key)
    if not isinstance(value, kind) or isinstance(value, bool) != (kind is bool):
        raise ApiError(HTTPStatus.BAD_REQUEST, f"{key!r} must be a {kind.__name__}")
    return value


class _AdminHandler(BaseHTTPRequestHandler):
    server: _AdminHttpServer
    protocol_version = "HTTP/1.1"
    # Headers and body are separate writes: without this a keep-alive client that delays its
    # ACKs (casync fetching chunks) waits about 40 ms per response, as no real server makes it.
    disable_nagle_algorithm = True

    # --- plumbing -------------------------------------------------------------------------

    def log_message(self, format: str, *args: Any) -> None:  # stdlib names it format
        _LOG.debug("http %s %s", self.address_string(), format % args)

    def _send_json(self, status: HTTPStatus, body: Any, *, head_only: bool = False) -> None:
        data = json.dumps(body, default=str).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if not head_only:
            self.wfile.write(data)

    def _read_json(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        if length > _MAX_BODY:
            raise ApiError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "body too large")
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ApiError(HTTPStatus.BAD_REQUEST, f"body is not JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise ApiError(HTTPStatus.BAD_REQUEST, "body must be a JSON object")
        return body

    def _on_loop(self, coro: Coroutine[Any, Any, _T], timeout: float) -> _T:
        try:
            future = asyncio.run_coroutine_threadsafe(coro, self.server.loop)
        except RuntimeError as exc:  # the loop is closing
            coro.close()
            raise ApiError(HTTPStatus.SERVICE_UNAVAILABLE, "shutting down") from exc
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError as exc:
            if future.done():
                raise  # the coroutine's own TimeoutError (same class since Python 3.11)
            future.cancel()
            raise ApiError(HTTPStatus.GATEWAY_TIMEOUT, "no answer in time") from exc

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        try:
            if url.path.startswith("/files/") and method in ("GET", "HEAD"):
                self._serve_file(url.path[len("/files/") :], head_only=method == "HEAD")
                return
            if url.path.startswith("/uploads/") and method in ("GET", "PUT"):
                self._upload(url.path[len("/uploads/") :], method)
                return
            route = _ROUTES.get((method, url.path))
            if route is None:
                raise ApiError(HTTPStatus.NOT_FOUND, f"no route {method} {url.path}")
            body = self._read_json() if method == "POST" else parse_qs(url.query)
            status, answer = route(self, body)
        except ApiError as exc:
            status, answer = exc.status, {"detail": exc.detail}
        except Exception as exc:  # the API boundary: answer, log, keep serving
            _LOG.exception("admin API %s %s failed", method, url.path)
            status, answer = HTTPStatus.INTERNAL_SERVER_ERROR, {"detail": repr(exc)}
        self._send_json(status, answer, head_only=method == "HEAD")

    def do_GET(self) -> None:
        """Answer GET (API and files)."""
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        """Answer HEAD (files only)."""
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        """Answer POST (API)."""
        self._dispatch("POST")

    def do_PUT(self) -> None:
        """Answer PUT (uploads)."""
        self._dispatch("PUT")

    # --- routes -------------------------------------------------------------------------

    def _serve_file(self, name: str, *, head_only: bool) -> None:
        root = self.server.files_dir
        path = resolve_file(root, name) if root is not None else None
        if path is None or self.server.faults.gone(name):
            raise ApiError(HTTPStatus.NOT_FOUND, f"no file {name!r}")
        send_file(self, path, head_only=head_only, ledger=self.server.ledger, name=name)

    def _upload(self, name: str, method: str) -> None:
        name = unquote(name)
        if not name or "/" in name or "\x00" in name or name.startswith("."):
            raise ApiError(HTTPStatus.BAD_REQUEST, f"bad upload name {name!r}")
        store = self.server.uploads
        if method == "GET":
            data = store.get(name)
            if data is None:
                raise ApiError(HTTPStatus.NOT_FOUND, f"no upload {name!r}")
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)  # read before answering, even a refusal
        refused = store.refusal(name)
        if refused is not None:
            raise ApiError(HTTPStatus(refused), f"upload of {name!r} refused (test rule)")
        if not store.store(name, body):
            raise ApiError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "upload store full")
        self._send_json(HTTPStatus.CREATED, {"name": name, "bytes": len(body)})

    def _uploads(self, _: object) -> tuple[HTTPStatus, Any]:
        return HTTPStatus.OK, self.server.uploads.snapshot()

    def _refuse_uploads(self, body: dict[str, Any]) -> tuple[HTTPStatus, Any]:
        """``{"status": 401|503|..., "times"?}``; ``{"status": null}`` ends the rule."""
        try:
            self.server.uploads.set_refusal(
                _optional(body, "status", int), _optional(body, "times", int)
            )
        except ValueError as exc:
            raise ApiError(HTTPStatus.BAD_REQUEST, str(exc)) from exc
        return HTTPStatus.OK, self.server.uploads.snapshot()

    def _files_served(self, query: dict[str, list[str]]) -> tuple[HTTPStatus, Any]:
        """``{"bytes", "requests", "paths": {name: {"bytes", "requests"}}}``: body bytes sent
        per file name (as in the URL after ``/files/``), optionally under ``?prefix=``."""
        return HTTPStatus.OK, self.server.ledger.snapshot(query.get("prefix", [""])[0])

    def _files_served_reset(self, _: object) -> tuple[HTTPStatus, Any]:
        self.server.ledger.reset()
        return HTTPStatus.OK, self.server.ledger.snapshot()

    def _files_faults(self, _: object) -> tuple[HTTPStatus, Any]:
        return HTTPStatus.OK, self.server.faults.snapshot()

    def _set_files_fault(self, body: dict[str, Any]) -> tuple[HTTPStatus, Any]:
        """``{"prefix", "mode": "gone"|"normal", "after"?}``: with ``gone``, ``after`` more
        requests under ``prefix`` are served, then every one answers 404; ``normal`` ends it."""
        prefix, mode = _require(body, "prefix", str), _require(body, "mode", str)
        if mode == "normal":
            self.server.faults.clear(prefix)
        elif mode == "gone":
            try:
                self.server.faults.set_gone(prefix, _optional(body, "after", int) or 0)
            except ValueError as exc:
                raise ApiError(HTTPStatus.BAD_REQUEST, str(exc)) from exc
        else:
            raise ApiError(HTTPStatus.BAD_REQUEST, "'mode' must be 'gone' or 'normal'")
        return HTTPStatus.OK, self.server.faults.snapshot()

    def _messages(self, query: dict[str, list[str]]) -> tuple[HTTPStatus, Any]:
        try:
            since = int(query.get("since", ["0"])[0])
        except ValueError as exc:
            raise ApiError(HTTPStatus.BAD_REQUEST, "'since' must be an integer") from exc
        entries = self.server.backend.journal.query(
            cp=query.get("cp", [None])[0], action=query.get("action", [None])[0], since=since
        )
        return HTTPStatus.OK, entries

    def _chargers(self, _: object) -> tuple[HTTPStatus, Any]:
        return HTTPStatus.OK, self._on_loop(self.server.backend.chargers(), _LOOP_GRACE)

    def _transactions(self, _: object) -> tuple[HTTPStatus, Any]:
        return HTTPStatus.OK, self._on_loop(self.server.backend.transactions(), _LOOP_GRACE)

    def _call(self, body: dict[str, Any]) -> tuple[HTTPStatus, Any]:
        payload = body.get("payload", {})
        if not isinstance(payload, dict):
            raise ApiError(HTTPStatus.BAD_REQUEST, "'payload' must be a JSON object")
        timeout = body.get("timeout", self.server.backend.call_timeout)
        if not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout <= 0:
            raise ApiError(HTTPStatus.BAD_REQUEST, "'timeout' must be a positive number")
        return self._send_call(
            _require(body, "cp", str),
            _require(body, "action", str),
            payload,
            float(timeout),
            validate=body.get("validate", True) is not False,
        )

    def _send_raw(self, body: dict[str, Any]) -> tuple[HTTPStatus, Any]:
        """``{"cp", "frame", "timeout"?}``: send ``frame`` (a string) as it is; the answer is
        ``{"id", "result"}`` / ``{"id", "error"}``, or ``{"id": null}`` for a frame without a
        readable message id."""
        cp_id, frame = _require(body, "cp", str), _require(body, "frame", str)
        timeout = body.get("timeout", self.server.backend.call_timeout)
        if not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout <= 0:
            raise ApiError(HTTPStatus.BAD_REQUEST, "'timeout' must be a positive number")
        coro = self.server.backend.send_raw(cp_id, frame, timeout=float(timeout))
        try:
            outcome = self._on_loop(coro, float(timeout) + _LOOP_GRACE)
        except ChargerNotConnected as exc:
            raise ApiError(HTTPStatus.NOT_FOUND, str(exc)) from exc
        except ChargerGone as exc:
            raise ApiError(HTTPStatus.BAD_GATEWAY, str(exc)) from exc
        except TimeoutError as exc:
            detail = f"{cp_id} did not answer the frame within {timeout:g} s"
            raise ApiError(HTTPStatus.GATEWAY_TIMEOUT, detail) from exc
        return HTTPStatus.OK, {"id": None} if outcome is None else outcome.to_json()

    def _remote_start(self, body: dict[str, Any]) -> tuple[HTTPStatus, Any]:
        payload: dict[str, Any] = {"idTag": _require(body, "id_tag", str)}
        if body.get("connector_id") is not None:
            payload["connectorId"] = _require(body, "connector_id", int)
        timeout = self.server.backend.call_timeout
        return self._send_call(
            _require(body, "cp", str), "RemoteStartTransaction", payload, timeout
        )

    def _remote_stop(self, body: dict[str, Any]) -> tuple[HTTPStatus, Any]:
        payload = {"transactionId": _require(body, "transaction_id", int)}
        timeout = self.server.backend.call_timeout
        return self._send_call(_require(body, "cp", str), "RemoteStopTransaction", payload, timeout)

    def _send_call(
        self,
        cp_id: str,
        action: str,
        payload: dict[str, Any],
        timeout: float,
        validate: bool = True,
    ) -> tuple[HTTPStatus, Any]:
        backend = self.server.backend
        coro = backend.call(cp_id, action, payload, timeout=timeout, validate=validate)
        try:
            outcome = self._on_loop(coro, timeout + _LOOP_GRACE)
        except ChargerNotConnected as exc:
            raise ApiError(HTTPStatus.NOT_FOUND, str(exc)) from exc
        except InvalidCall as exc:
            raise ApiError(HTTPStatus.BAD_REQUEST, str(exc)) from exc
        except ChargerGone as exc:
            raise ApiError(HTTPStatus.BAD_GATEWAY, str(exc)) from exc
        except TimeoutError as exc:
            detail = f"{cp_id} did not answer {action} within {timeout:g} s"
            raise ApiError(HTTPStatus.GATEWAY_TIMEOUT, detail) from exc
        return HTTPStatus.OK, outcome.to_json()

    def _boot_status(self, body: dict[str, Any]) -> tuple[HTTPStatus, Any]:
        coro = self.server.backend.set_boot_status(_require(body, "status", str))
        try:
            return HTTPStatus.OK, self._on_loop(coro, _LOOP_GRACE)
        except ValueError as exc:
            raise ApiError(HTTPStatus.BAD_REQUEST, str(exc)) from exc

    def _id_tags(self, _: object) -> tuple[HTTPStatus, Any]:
        return HTTPStatus.OK, self._on_loop(self.server.backend.id_tags(), _LOOP_GRACE)

    def _set_id_tag(self, body: dict[str, Any]) -> tuple[HTTPStatus, Any]:
        """``{"id_tag", "status", "parent_id_tag"?, "expiry_date"?}``; status null removes."""
        id_tag = _require(body, "id_tag", str)
        record = None
        if body.get("status") is not None:
            try:
                record = IdTagRecord(
                    _require(body, "status", str),
                    _optional(body, "parent_id_tag", str),
                    _optional(body, "expiry_date", str),
                )
            except ValueError as exc:
                raise ApiError(HTTPStatus.BAD_REQUEST, str(exc)) from exc
        coro = self.server.backend.set_id_tag(id_tag, record)
        return HTTPStatus.OK, self._on_loop(coro, _LOOP_GRACE)

    def _answers(self, _: object) -> tuple[HTTPStatus, Any]:
        return HTTPStatus.OK, self._on_loop(self.server.backend.answer_rules(), _LOOP_GRACE)

    def _set_answer(self, body: dict[str, Any]) -> tuple[HTTPStatus, Any]:
        """``{"action", "mode", "delay"?, "times"?, "code"?}``; mode ``normal`` removes the
        rule; ``code`` is the errorCode of mode ``error``."""
        action = _require(body, "action", str)
        mode = _require(body, "mode", str)
        rule = None
        if mode != "normal":
            delay = body.get("delay", 0.0)
            if not isinstance(delay, int | float) or isinstance(delay, bool):
                raise ApiError(HTTPStatus.BAD_REQUEST, "'delay' must be a number")
            try:
                rule = AnswerRule(
                    mode,
                    float(delay),
                    _optional(body, "times", int),
                    _optional(body, "code", str) or "InternalError",
                )
            except ValueError as exc:
                raise ApiError(HTTPStatus.BAD_REQUEST, str(exc)) from exc
        coro = self.server.backend.set_answer_rule(action, rule)
        return HTTPStatus.OK, self._on_loop(coro, _LOOP_GRACE)

    def _connections(self, _: object) -> tuple[HTTPStatus, Any]:
        return HTTPStatus.OK, self._on_loop(self.server.backend.connections(), _LOOP_GRACE)

    def _set_auth_key(self, body: dict[str, Any]) -> tuple[HTTPStatus, Any]:
        """``{"cp", "key"}``: the AuthorizationKey (hex) Basic auth must carry; null: none."""
        coro = self.server.backend.set_auth_key(
            _require(body, "cp", str), _optional(body, "key", str)
        )
        try:
            return HTTPStatus.OK, self._on_loop(coro, _LOOP_GRACE)
        except ValueError as exc:
            raise ApiError(HTTPStatus.BAD_REQUEST, str(exc)) from exc


def _optional(body: dict[str, Any], key: str, kind: type[_T]) -> _T | None:
    return None if body.get(key) is None else _require(body, key, kind)


_Route = Callable[[_AdminHandler, Any], tuple[HTTPStatus, Any]]
_ROUTES: dict[tuple[str, str], _Route] = {
    ("GET", "/api/messages"): _AdminHandler._messages,
    ("GET", "/api/chargers"): _AdminHandler._chargers,
    ("GET", "/api/transactions"): _AdminHandler._transactions,
    ("POST", "/api/call"): _AdminHandler._call,
    ("POST", "/api/send-raw"): _AdminHandler._send_raw,
    ("POST", "/api/remote-start"): _AdminHandler._remote_start,
    ("POST", "/api/remote-stop"): _AdminHandler._remote_stop,
    ("POST", "/api/boot-status"): _AdminHandler._boot_status,
    ("GET", "/api/id-tags"): _AdminHandler._id_tags,
    ("POST", "/api/id-tags"): _AdminHandler._set_id_tag,
    ("GET", "/api/answers"): _AdminHandler._answers,
    ("POST", "/api/answers"): _AdminHandler._set_answer,
    ("GET", "/api/connections"): _AdminHandler._connections,
    ("POST", "/api/auth-keys"): _AdminHandler._set_auth_key,
    ("GET", "/api/files/served"): _AdminHandler._files_served,
    ("POST", "/api/files/served/reset"): _AdminHandler._files_served_reset,
    ("GET", "/api/files/faults"): _AdminHandler._files_faults,
    ("POST", "/api/files/faults"): _AdminHandler._set_files_fault,
    ("GET", "/api/uploads"): _AdminHandler._uploads,
    ("POST", "/api/uploads/refuse"): _AdminHandler._refuse_uploads,
}
