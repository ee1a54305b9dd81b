"""Blocking client of the development CSMS admin API (stdlib ``urllib`` only).

Used by the developer CLI and handy in end-to-end tests that drive the CSMS as a process.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from evsed_devcsms.errors import DevCsmsError

DEFAULT_HTTP = "http://127.0.0.1:9001"


class AdminApiError(DevCsmsError):
    """The admin API answered with an HTTP error (``status``, ``detail``)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status
        self.detail = detail


class AdminClient:
    """Calls to ``/api/...`` of one development CSMS."""

    def __init__(self, base_url: str = DEFAULT_HTTP, *, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """One admin API call; raises AdminApiError with the API's detail on an HTTP error."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.base_url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"} if data is not None else {},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                detail = json.loads(raw).get("detail", raw.decode(errors="replace"))
            except (ValueError, AttributeError):
                detail = raw.decode(errors="replace")
            raise AdminApiError(exc.code, str(detail)) from exc

    def messages(
        self, *, cp: str | None = None, action: str | None = None, since: int = 0
    ) -> list[dict[str, Any]]:
        """Journal entries (``GET /api/messages``)."""
        query = {"cp": cp, "action": action, "since": since}
        encoded = urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        result: list[dict[str, Any]] = self.request("GET", f"/api/messages?{encoded}")
        return result

    def wait_for_message(
        self,
        action: str,
        *,
        cp: str | None = None,
        direction: str | None = None,
        since: int = 0,
        timeout: float = 10.0,
        poll: float = 0.1,
    ) -> dict[str, Any]:
        """First journal entry from index ``since`` on with this action; TimeoutError if none.

        Blocking: from async code run it with ``asyncio.to_thread``.
        """
        deadline = time.monotonic() + timeout
        while True:
            for entry in self.messages(cp=cp, action=action, since=since):
                if direction is None or entry["dir"] == direction:
                    return entry
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no {action} in the journal within {timeout:g} s")
            time.sleep(poll)

    def chargers(self) -> list[dict[str, Any]]:
        """Charge points seen (``GET /api/chargers``)."""
        result: list[dict[str, Any]] = self.request("GET", "/api/chargers")
        return result

    def transactions(self) -> list[dict[str, Any]]:
        """Transactions (``GET /api/transactions``)."""
        result: list[dict[str, Any]] = self.request("GET", "/api/transactions")
        return result

    def call(
        self,
        cp: str,
        action: str,
        payload: dict[str, Any],
        *,
        timeout: float | None = None,
        validate: bool = True,
    ) -> dict[str, Any]:
        """Send a CALL (``POST /api/call``): ``{"id", "result"}`` or ``{"id", "error"}``."""
        body: dict[str, Any] = {"cp": cp, "action": action, "payload": payload}
        if timeout is not None:
            body["timeout"] = timeout
        if not validate:
            body["validate"] = False
        result: dict[str, Any] = self.request("POST", "/api/call", body)
        return result

    def send_raw(self, cp: str, frame: str, *, timeout: float | None = None) -> dict[str, Any]:
        """Send one raw frame to the charger (``POST /api/send-raw``): its answer, or
        ``{"id": None}`` when the frame has no readable message id."""
        body: dict[str, Any] = {"cp": cp, "frame": frame}
        if timeout is not None:
            body["timeout"] = timeout
        result: dict[str, Any] = self.request("POST", "/api/send-raw", body)
        return result

    def remote_start(self, cp: str, id_tag: str, connector_id: int | None = None) -> dict[str, Any]:
        """RemoteStartTransaction (``POST /api/remote-start``)."""
        body: dict[str, Any] = {"cp": cp, "id_tag": id_tag}
        if connector_id is not None:
            body["connector_id"] = connector_id
        result: dict[str, Any] = self.request("POST", "/api/remote-start", body)
        return result

    def remote_stop(self, cp: str, transaction_id: int) -> dict[str, Any]:
        """RemoteStopTransaction (``POST /api/remote-stop``)."""
        body = {"cp": cp, "transaction_id": transaction_id}
        result: dict[str, Any] = self.request("POST", "/api/remote-stop", body)
        return result

    def set_boot_status(self, status: str) -> dict[str, Any]:
        """Change later BootNotification answers (``POST /api/boot-status``)."""
        result: dict[str, Any] = self.request("POST", "/api/boot-status", {"status": status})
        return result

    def set_id_tag(
        self,
        id_tag: str,
        status: str | None,
        *,
        parent_id_tag: str | None = None,
        expiry_date: str | None = None,
    ) -> dict[str, Any]:
        """What the CSMS answers for one idTag (``POST /api/id-tags``); status None removes it."""
        body = {
            "id_tag": id_tag,
            "status": status,
            "parent_id_tag": parent_id_tag,
            "expiry_date": expiry_date,
        }
        result: dict[str, Any] = self.request("POST", "/api/id-tags", body)
        return result

    def id_tags(self) -> dict[str, Any]:
        """The per-tag records (``GET /api/id-tags``)."""
        result: dict[str, Any] = self.request("GET", "/api/id-tags")
        return result

    def set_answer_rule(
        self,
        action: str,
        mode: str,
        *,
        delay: float = 0.0,
        times: int | None = None,
        code: str | None = None,
    ) -> dict[str, Any]:
        """How the charger's CALLs of ``action`` are answered (``POST /api/answers``): ``drop``,
        ``delay`` (by ``delay`` s), ``error`` (CALLERROR with errorCode ``code``, default
        InternalError) or ``normal``; ``times`` CALLs only."""
        body = {"action": action, "mode": mode, "delay": delay, "times": times, "code": code}
        result: dict[str, Any] = self.request("POST", "/api/answers", body)
        return result

    def answer_rules(self) -> dict[str, Any]:
        """The answer rules in force (``GET /api/answers``)."""
        result: dict[str, Any] = self.request("GET", "/api/answers")
        return result
