"""Remote diagnostics: GetDiagnostics (OCPP 1.6 §5.9) with DiagnosticsStatusNotification
(§4.4), TriggerMessage (§5.17), and the Security Whitepaper's GetLog with LogStatusNotification.

OCA test cases TC_045_1 and TC_045_2 (Get Diagnostics, and its upload failing), TC_054 and
TC_055 (Trigger Message, and its Rejected case), plus what the archive holds, what it must not
hold (secrets), retries, FTP beside HTTP, and GetLog's statuses. The uploads go to the
development CSMS's file server (``PUT /uploads/<name>``) and to an FTP server in the test
process, both on 127.0.0.1; a closed port stands for a server that is down.
"""

from __future__ import annotations

import io
import json
import tarfile
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from oca_support import booted, mark, since

from evsed_devtools.ftp_server import TestFtpServer
from evsed_devtools.harness import DevCsms, Evsed, free_port, wait_for

AUTH_KEY = "00112233445566778899AABBCCDDEEFF"  # in the config file
NEW_AUTH_KEY = "FEDCBA9876543210FEDCBA9876543210"  # set by ChangeConfiguration
URL_SECRET = "urlsecret42"
FTP_USER, FTP_PASSWORD = "logs", "ftp-pa55"
DONE = {"Uploaded", "UploadFailed"}
LOG_DONE = {"Uploaded", "UploadFailure", "PermissionDenied", "BadMessage"}


def _location(csms: DevCsms) -> str:
    return f"{csms.http_url}/uploads/"


def _closed_port() -> str:
    return f"http://127.0.0.1:{free_port()}/uploads/"


def _statuses(csms: DevCsms, action: str, start: int) -> list[dict[str, Any]]:
    return [m for m in since(csms, start) if m["action"] == action]


def _diagnostics_statuses(csms: DevCsms, start: int, timeout: float = 20.0) -> list[str]:
    """DiagnosticsStatusNotification statuses from ``start`` on, once one of them ends it."""
    wait_for(
        lambda: DONE & {m["payload"]["status"] for m in _statuses(csms, _DSN, start)},
        timeout,
        "the end of the diagnostics upload",
    )
    return [m["payload"]["status"] for m in _statuses(csms, _DSN, start)]


def _log_statuses(csms: DevCsms, start: int, timeout: float = 20.0) -> list[dict[str, Any]]:
    wait_for(
        lambda: LOG_DONE & {m["payload"]["status"] for m in _statuses(csms, _LSN, start)},
        timeout,
        "the end of the log upload",
    )
    return [m["payload"] for m in _statuses(csms, _LSN, start)]


_DSN = "DiagnosticsStatusNotification"
_LSN = "LogStatusNotification"


def _uploaded(csms: DevCsms, name: str) -> bytes:
    with urllib.request.urlopen(f"{csms.http_url}/uploads/{name}", timeout=10) as response:
        data: bytes = response.read()
    return data


def _members(archive: bytes) -> dict[str, str]:
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        return {
            m.name: tar.extractfile(m).read().decode()  # type: ignore[union-attr]
            for m in tar.getmembers()
        }


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _answer_index(csms: DevCsms, action: str) -> int:
    answers = [m for m in csms.messages("CP01") if m["type"] == 3 and m["action"] == action]
    index: int = answers[-1]["i"]
    return index


def test_tc_045_1_get_diagnostics_uploads_the_archive_to_the_location(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    booted(start_evsed, csms)
    start = mark(csms)
    answer = csms.result("GetDiagnostics", {"location": _location(csms)})
    name = answer["fileName"]
    assert name.startswith("CP01-diagnostics-") and name.endswith(".tar.gz")
    assert _diagnostics_statuses(csms, start) == ["Uploading", "Uploaded"]
    first = _statuses(csms, _DSN, start)[0]
    assert _answer_index(csms, "GetDiagnostics") < first["i"]  # the answer comes first
    files = {f["name"] for f in csms.api("/api/uploads")["files"]}
    assert files == {name}
    members = _members(_uploaded(csms, name))
    assert {"log.txt", "config.json", "faults.json", "versions.json", "ocpp-frames.txt"} <= set(
        members
    )
    assert "firmware.json" not in members  # [ota] is disabled
    assert '"BootNotification"' in members["ocpp-frames.txt"]


def test_tc_045_2_get_diagnostics_upload_failed_and_the_charger_carries_on(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = booted(start_evsed, csms)
    start = mark(csms)
    answer = csms.result("GetDiagnostics", {"location": _closed_port(), "retries": 0})
    assert answer["fileName"]
    assert _diagnostics_statuses(csms, start) == ["Uploading", "UploadFailed"]
    # Normal operation continues.
    assert csms.result("TriggerMessage", {"requestedMessage": "Heartbeat"})["status"] == "Accepted"
    assert evsed.status()["ocpp"]["connection"] == "connected"
    assert "Traceback" not in evsed.log()


def test_tc_054_trigger_message_sends_each_message_diagnostics_status_included(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    booted(start_evsed, csms)
    for message, connector in (
        ("MeterValues", 1),
        ("Heartbeat", None),
        ("StatusNotification", 1),
        (_DSN, None),
        ("FirmwareStatusNotification", None),
    ):
        before = len(csms.calls("CP01", message))
        payload: dict[str, Any] = {"requestedMessage": message}
        if connector is not None:
            payload["connectorId"] = connector
        assert csms.result("TriggerMessage", payload)["status"] == "Accepted", message
        sent = wait_for(
            lambda m=message, b=before: csms.calls("CP01", m)[b:],  # type: ignore[misc]
            what=message,
        )
        assert _answer_index(csms, "TriggerMessage") < sent[0]["i"], message
        if message == _DSN:
            assert sent[0]["payload"] == {"status": "Idle"}  # no upload in progress


def test_tc_055_trigger_message_for_a_connector_past_the_last_is_rejected(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    booted(start_evsed, csms)
    connectors = csms.result("GetConfiguration", {"key": ["NumberOfConnectors"]})
    count = int(connectors["configurationKey"][0]["value"])
    start = mark(csms)
    payload = {"requestedMessage": "MeterValues", "connectorId": count + 1}
    assert csms.result("TriggerMessage", payload)["status"] == "Rejected"
    time.sleep(1.0)  # long enough for a message that should not come
    assert not [m for m in csms.calls("CP01", "MeterValues") if m["i"] >= start]


def test_the_archive_honours_the_window_and_holds_no_secret_but_the_fault_history(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = booted(
        start_evsed,
        csms,
        csms={"authorization_key": AUTH_KEY},
        ota={"enabled": False, "casync_store_url": f"http://fw:{URL_SECRET}@127.0.0.1:1/store"},
    )
    key = {"key": "AuthorizationKey", "value": NEW_AUTH_KEY}
    assert csms.result("ChangeConfiguration", key)["status"] == "Accepted"
    evsed.sim("fault", "overtemp")
    wait_for(lambda: "HighTemperature" in evsed.ctl("faults").stdout, what="fault recorded")
    evsed.sim("clear", "overtemp")
    time.sleep(0.3)
    window_start = datetime.now(UTC)
    time.sleep(0.3)
    assert csms.result("TriggerMessage", {"requestedMessage": "Heartbeat"})["status"]
    start = mark(csms)
    stop = datetime.now(UTC) + timedelta(minutes=5)
    answer = csms.result(
        "GetDiagnostics",
        {"location": _location(csms), "startTime": _iso(window_start), "stopTime": _iso(stop)},
    )
    assert _diagnostics_statuses(csms, start) == ["Uploading", "Uploaded"]
    archive = _uploaded(csms, answer["fileName"])
    members = _members(archive)
    everything = "\n".join(members.values())
    for secret in (AUTH_KEY, NEW_AUTH_KEY, URL_SECRET):
        assert secret not in everything, secret
        assert secret.lower() not in everything.lower(), secret
    assert NEW_AUTH_KEY not in evsed.log()  # the frame as the daemon logs it, too
    config = json.loads(members["config.json"])
    assert config["csms"]["authorization_key"] == "***"
    assert config["ota"]["casync_store_url"] == "http://fw:***@127.0.0.1:1/store"
    assert config["charger"]["id"] == "CP01"
    # The log window: nothing from before startTime (the boot), the trigger after it.
    lines = [line for line in members["log.txt"].splitlines() if line]
    assert lines
    times = [datetime.fromisoformat(line.split(" ", 1)[0]) for line in lines]
    assert min(times) >= window_start
    assert not any("BootNotification: Accepted" in line for line in lines)
    assert any('"TriggerMessage"' in line for line in lines)
    frames = members["ocpp-frames.txt"]
    assert '"TriggerMessage"' in frames and '"BootNotification"' not in frames
    faults = json.loads(members["faults.json"])
    assert [f["fault"] for f in faults] == ["over-temperature"]
    assert faults[0]["reported_error_code"] == "HighTemperature"
    versions = json.loads(members["versions.json"])
    assert versions["evsed"] and "ocpp" in {p.lower() for p in versions["packages"]}


def test_an_upload_to_a_closed_port_is_retried_then_fails_and_a_trigger_says_uploading(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = booted(start_evsed, csms)
    start = mark(csms)
    began = time.monotonic()
    payload = {"location": _closed_port(), "retries": 2, "retryInterval": 2}
    csms.result("GetDiagnostics", payload)
    wait_for(lambda: _statuses(csms, _DSN, start), what="Uploading")
    # While it waits to try again, a triggered status says Uploading.
    before = len(csms.calls("CP01", _DSN))
    csms.result("TriggerMessage", {"requestedMessage": _DSN})
    triggered = wait_for(lambda: csms.calls("CP01", _DSN)[before:], what="triggered status")
    assert triggered[0]["payload"] == {"status": "Uploading"}
    statuses = _diagnostics_statuses(csms, start)
    assert statuses == ["Uploading", "Uploading", "UploadFailed"]  # the second: the trigger
    assert time.monotonic() - began >= 4.0  # two intervals of 2 s between three attempts
    attempts = [line for line in evsed.log().splitlines() if "of 3:" in line]
    assert len(attempts) == 3, attempts


def test_http_upload_is_retried_after_server_errors_until_it_succeeds(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    booted(start_evsed, csms)
    csms.api("/api/uploads/refuse", {"status": 503, "times": 2})
    start = mark(csms)
    payload = {"location": _location(csms), "retries": 2, "retryInterval": 0}
    name = csms.result("GetDiagnostics", payload)["fileName"]
    assert _diagnostics_statuses(csms, start) == ["Uploading", "Uploaded"]
    attempts = [a["status"] for a in csms.api("/api/uploads")["attempts"] if a["name"] == name]
    assert attempts == [503, 503, 201]


def test_diagnostics_and_the_security_log_upload_over_ftp(
    csms: DevCsms, start_evsed: Callable[..., Evsed], tmp_path: Path
) -> None:
    evsed = booted(start_evsed, csms)
    root = tmp_path / "ftp"
    root.mkdir()
    with TestFtpServer(root, FTP_USER, FTP_PASSWORD) as ftp:
        (root / "logs").mkdir()
        location = ftp.url(FTP_USER, FTP_PASSWORD, "/logs/")
        start = mark(csms)
        name = csms.result("GetDiagnostics", {"location": location})["fileName"]
        assert _diagnostics_statuses(csms, start) == ["Uploading", "Uploaded"]
        assert "log.txt" in _members((root / "logs" / name).read_bytes())
        start = mark(csms)
        request = {"logType": "SecurityLog", "requestId": 7, "log": {"remoteLocation": location}}
        answer = csms.result("GetLog", request)
        assert answer["status"] == "Accepted"
        statuses = _log_statuses(csms, start)
        assert statuses == [
            {"status": "Uploading", "requestId": 7},
            {"status": "Uploaded", "requestId": 7},
        ]
        text = (root / "logs" / answer["filename"]).read_text()
        assert "StartupOfTheDevice" in text
        assert any(c.startswith("STOR ") for c in ftp.commands)
    assert FTP_PASSWORD not in evsed.log()  # neither in frames logged nor in upload lines


def test_tc_079_get_security_log_holds_only_the_events_in_the_window(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    booted(start_evsed, csms)

    def rename(name: str) -> None:
        key = {"key": "CpoName", "value": name}
        assert csms.result("ChangeConfiguration", key)["status"] == "Accepted"

    rename("before-window")
    time.sleep(0.2)
    oldest = datetime.now(UTC)
    time.sleep(0.2)
    rename("inside-window")
    time.sleep(0.2)
    latest = datetime.now(UTC)
    time.sleep(0.2)
    rename("after-window")
    start = mark(csms)
    request = {
        "logType": "SecurityLog",
        "requestId": 42,
        "retries": 0,
        "log": {
            "remoteLocation": _location(csms),
            "oldestTimestamp": _iso(oldest),
            "latestTimestamp": _iso(latest),
        },
    }
    answer = csms.result("GetLog", request)
    assert answer["status"] == "Accepted" and answer["filename"].endswith(".log")
    assert [s["status"] for s in _log_statuses(csms, start)] == ["Uploading", "Uploaded"]
    lines = _uploaded(csms, answer["filename"]).decode().splitlines()
    assert len(lines) == 1, lines
    assert "ReconfigurationOfSecurityParameters" in lines[0] and "inside-window" in lines[0]


def test_get_log_diagnostics_log_uploads_the_archive(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    booted(start_evsed, csms)
    start = mark(csms)
    log = {"remoteLocation": _location(csms)}
    request = {"logType": "DiagnosticsLog", "requestId": 3, "log": log}
    answer = csms.result("GetLog", request)
    assert answer["status"] == "Accepted" and answer["filename"].endswith(".tar.gz")
    assert [s["status"] for s in _log_statuses(csms, start)] == ["Uploading", "Uploaded"]
    assert "config.json" in _members(_uploaded(csms, answer["filename"]))


def test_get_log_statuses_permission_denied_bad_message_and_accepted_canceled(
    csms: DevCsms, start_evsed: Callable[..., Evsed], tmp_path: Path
) -> None:
    booted(start_evsed, csms)

    def get_log(request_id: int, location: str, **extra: Any) -> dict[str, Any]:
        request = {
            "logType": "SecurityLog",
            "requestId": request_id,
            "log": {"remoteLocation": location},
            **extra,
        }
        return csms.result("GetLog", request)

    # HTTP 401: PermissionDenied, not retried.
    csms.api("/api/uploads/refuse", {"status": 401})
    start = mark(csms)
    assert get_log(1, _location(csms), retries=3, retryInterval=0)["status"] == "Accepted"
    assert _log_statuses(csms, start) == [
        {"status": "Uploading", "requestId": 1},
        {"status": "PermissionDenied", "requestId": 1},
    ]
    assert len(csms.api("/api/uploads")["attempts"]) == 1
    csms.api("/api/uploads/refuse", {"status": None})
    # GetDiagnostics has only UploadFailed for a refusal.
    csms.api("/api/uploads/refuse", {"status": 403, "times": 1})
    start = mark(csms)
    csms.result("GetDiagnostics", {"location": _location(csms)})
    assert _diagnostics_statuses(csms, start) == ["Uploading", "UploadFailed"]
    # FTP 530 (wrong password): PermissionDenied.
    root = tmp_path / "ftp"
    root.mkdir()
    with TestFtpServer(root, FTP_USER, FTP_PASSWORD) as ftp:
        start = mark(csms)
        get_log(2, ftp.url(FTP_USER, "wrong", "/"))
        assert [s["status"] for s in _log_statuses(csms, start)] == [
            "Uploading",
            "PermissionDenied",
        ]
    # Not a URL to upload to: BadMessage.
    start = mark(csms)
    get_log(3, "sftp://127.0.0.1/logs/")
    assert _log_statuses(csms, start) == [{"status": "BadMessage", "requestId": 3}]
    # A new GetLog while one waits to retry: AcceptedCanceled, and the old one says no more.
    start = mark(csms)
    assert get_log(4, _closed_port(), retries=5, retryInterval=60)["status"] == "Accepted"
    wait_for(lambda: _statuses(csms, _LSN, start), what="Uploading of request 4")
    assert get_log(5, _location(csms))["status"] == "AcceptedCanceled"
    statuses = _log_statuses(csms, start)
    assert statuses == [
        {"status": "Uploading", "requestId": 4},
        {"status": "Uploading", "requestId": 5},
        {"status": "Uploaded", "requestId": 5},
    ]


def test_extended_trigger_log_status_notification_says_idle_without_a_request_id(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    booted(start_evsed, csms)
    start = mark(csms)
    answer = csms.result("ExtendedTriggerMessage", {"requestedMessage": "LogStatusNotification"})
    assert answer == {"status": "Accepted"}
    sent = wait_for(lambda: _statuses(csms, _LSN, start), what="LogStatusNotification")
    assert [m["payload"] for m in sent] == [{"status": "Idle"}]
