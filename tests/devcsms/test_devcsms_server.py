"""The development CSMS in-process: OCPP handlers, journal and admin API over real sockets."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import websockets
from ocpp.v16 import call
from ocpp.v16.enums import RegistrationStatus
from websockets.exceptions import InvalidStatus
from websockets.typing import Subprotocol

from evsed_devcsms import AdminApiError, AdminClient, DevCsms
from evsed_devcsms.journal import Journal, describe, parse_frame

#: The ``connect`` fixture: charge point id -> connected TestCharger (see conftest).
ChargerFactory = Callable[[str], Awaitable[Any]]


def _boot() -> Any:
    return call.BootNotification(charge_point_model="TestModel", charge_point_vendor="evsed")


async def _api(csms: DevCsms) -> AdminClient:
    # The admin API answers from its own thread but needs this loop: never block it.
    return AdminClient(csms.http_url, timeout=10)


async def test_boot_is_accepted_with_heartbeat_interval(
    csms: DevCsms, connect: ChargerFactory
) -> None:
    charger = await connect("CP01")
    answer = await charger.call(_boot(), suppress=False)
    assert answer.status == RegistrationStatus.accepted
    assert answer.interval == 60
    chargers = await asyncio.to_thread((await _api(csms)).chargers)
    assert chargers[0]["id"] == "CP01"
    assert chargers[0]["connected"] is True
    assert chargers[0]["registration"] == "Accepted"
    assert chargers[0]["boot"]["chargePointVendor"] == "evsed"


async def test_pending_boot_turns_accepted_through_admin_api(
    csms: DevCsms, connect: ChargerFactory
) -> None:
    csms.state.settings.boot_status = "Pending"
    charger = await connect("CP01")
    assert (await charger.call(_boot(), suppress=False)).status == RegistrationStatus.pending
    api = await _api(csms)
    assert await asyncio.to_thread(api.set_boot_status, "Accepted") == {"boot_status": "Accepted"}
    assert (await charger.call(_boot(), suppress=False)).status == RegistrationStatus.accepted
    with pytest.raises(AdminApiError) as refused:
        await asyncio.to_thread(api.set_boot_status, "Maybe")
    assert refused.value.status == 400


async def test_authorize_accepts_configured_tags_only(
    csms: DevCsms, connect: ChargerFactory
) -> None:
    charger = await connect("CP01")
    good = await charger.call(call.Authorize(id_tag="GOOD1"), suppress=False)
    bad = await charger.call(call.Authorize(id_tag="STRANGER"), suppress=False)
    assert good.id_tag_info["status"] == "Accepted"
    assert bad.id_tag_info["status"] == "Invalid"


async def test_authorize_accepts_every_tag_without_tag_list(
    csms: DevCsms, connect: ChargerFactory
) -> None:
    csms.state.settings.tags = None
    charger = await connect("CP01")
    answer = await charger.call(call.Authorize(id_tag="ANYONE"), suppress=False)
    assert answer.id_tag_info["status"] == "Accepted"


async def test_transaction_ids_increase_across_chargers(
    csms: DevCsms, connect: ChargerFactory
) -> None:
    first, second = await connect("CP01"), await connect("CP02")
    ids = []
    for charger, tag in ((first, "GOOD1"), (second, "GOOD2"), (first, "STRANGER")):
        start = call.StartTransaction(
            connector_id=1, id_tag=tag, meter_start=0, timestamp="2024-01-01T00:00:00Z"
        )
        answer = await charger.call(start, suppress=False)
        ids.append(answer.transaction_id)
    assert ids == [1, 2, 3]
    assert answer.id_tag_info["status"] == "Invalid"
    stop = call.StopTransaction(meter_stop=1500, timestamp="2024-01-01T01:00:00Z", transaction_id=1)
    await first.call(stop, suppress=False)
    transactions = await asyncio.to_thread((await _api(csms)).transactions)
    assert [t["transaction_id"] for t in transactions] == [1, 2, 3]
    assert transactions[0]["meter_stop"] == 1500
    assert transactions[1]["cp"] == "CP02"


async def test_journal_records_frames_in_order_with_actions(
    csms: DevCsms, connect: ChargerFactory
) -> None:
    charger = await connect("CP01")
    await charger.call(_boot(), suppress=False)
    status = call.StatusNotification(connector_id=1, error_code="NoError", status="Available")
    await charger.call(status, suppress=False)
    await charger.call(call.Heartbeat(), suppress=False)
    entries = await asyncio.to_thread((await _api(csms)).messages, cp="CP01")
    summary = [(e["dir"], e["type"], e["action"]) for e in entries]
    assert summary == [
        ("in", 2, "BootNotification"),
        ("out", 3, "BootNotification"),
        ("in", 2, "StatusNotification"),
        ("out", 3, "StatusNotification"),
        ("in", 2, "Heartbeat"),
        ("out", 3, "Heartbeat"),
    ]
    assert [e["i"] for e in entries] == list(range(6))
    assert entries[0]["id"] == entries[1]["id"]
    assert entries[1]["payload"]["status"] == "Accepted"
    newer = await asyncio.to_thread((await _api(csms)).messages, since=4, action="Heartbeat")
    assert [e["i"] for e in newer] == [4, 5]
    chargers = await asyncio.to_thread((await _api(csms)).chargers)
    assert chargers[0]["connectors"]["1"]["status"] == "Available"


async def test_api_call_delivers_remote_start_and_returns_result(
    csms: DevCsms, connect: ChargerFactory
) -> None:
    charger = await connect("CP01")
    api = await _api(csms)
    answer = await asyncio.to_thread(api.remote_start, "CP01", "GOOD1", 1)
    assert answer["result"] == {"status": "Accepted"}
    assert charger.remote_starts == [{"id_tag": "GOOD1", "connector_id": 1}]
    raw = await asyncio.to_thread(api.call, "CP01", "RemoteStartTransaction", {"idTag": "GOOD2"})
    assert raw["result"] == {"status": "Accepted"}
    entries = await asyncio.to_thread(api.messages, action="RemoteStartTransaction")
    assert [(e["dir"], e["type"]) for e in entries] == [("out", 2), ("in", 3)] * 2
    assert entries[-1]["id"] == raw["id"]
    stop = await asyncio.to_thread(api.remote_stop, "CP01", 7)
    assert (stop["result"], charger.remote_stops) == ({"status": "Accepted"}, [7])
    since = entries[-1]["i"] + 1
    answer_entry = await asyncio.to_thread(
        api.wait_for_message, "RemoteStopTransaction", direction="in", since=since
    )
    assert answer_entry["id"] == stop["id"]


async def test_api_call_reports_callerror_and_refusals(
    csms: DevCsms, connect: ChargerFactory
) -> None:
    await connect("CP01")
    api = await _api(csms)
    # The test charger has no ClearCache handler: the library answers NotImplemented.
    answer = await asyncio.to_thread(api.call, "CP01", "ClearCache", {})
    assert answer["error"]["code"] == "NotImplemented"
    for args, status in (
        (("CP99", "ClearCache", {}), 404),  # not connected
        (("CP01", "RemoteStartTransaction", {"idTag": 5}), 400),  # schema
        (("CP01", "NoSuchAction", {}), 400),
    ):
        with pytest.raises(AdminApiError) as refused:
            await asyncio.to_thread(api.call, *args)
        assert refused.value.status == status


async def test_api_call_times_out_then_late_answer_is_dropped(
    csms: DevCsms, connect: ChargerFactory
) -> None:
    await connect("CP01")
    api = await _api(csms)
    with pytest.raises(AdminApiError) as late:
        await asyncio.to_thread(api.call, "CP01", "Reset", {"type": "Soft"}, timeout=0.3)
    assert late.value.status == 504
    answer = await asyncio.to_thread(api.call, "CP01", "Reset", {"type": "Hard"}, timeout=3)
    assert answer["result"] == {"status": "Accepted"}
    resets = await asyncio.to_thread(api.messages, action="Reset")
    # The charger handles one CALL at a time: the second goes out before the late answer.
    assert [(e["dir"], e["type"]) for e in resets] == [("out", 2), ("out", 2), ("in", 3), ("in", 3)]
    assert [e["id"] for e in resets[2:]] == [resets[0]["id"], answer["id"]]


async def test_api_call_to_charger_that_hangs_up_is_bad_gateway(
    csms: DevCsms, connect: ChargerFactory
) -> None:
    await connect("CP01")
    with pytest.raises(AdminApiError) as gone:
        await asyncio.to_thread(
            (await _api(csms)).call, "CP01", "UnlockConnector", {"connectorId": 1}
        )
    assert gone.value.status == 502
    chargers = await asyncio.to_thread((await _api(csms)).chargers)
    assert chargers[0]["connected"] is False


async def test_malformed_frames_are_journaled_and_connection_survives(
    csms: DevCsms, connect: ChargerFactory
) -> None:
    charger = await connect("CP01")
    ws = charger._connection
    await ws.send("this is not json")
    await ws.send(json.dumps([2, "x1", "NoSuchAction", {}]))
    await ws.send(json.dumps([2, "x2", "Authorize", {}]))  # idTag missing
    answer = await charger.call(call.Heartbeat(), suppress=False)
    assert answer.current_time
    entries = await asyncio.to_thread((await _api(csms)).messages)
    malformed = entries[0]
    assert malformed["type"] is None
    assert malformed["raw"] == "this is not json"
    assert malformed["error"].startswith("FormatViolation")
    errors = {e["id"]: e for e in entries if e["type"] == 4}
    assert errors["x1"]["action"] == "NoSuchAction"
    assert errors["x1"]["payload"]["errorCode"] == "NotSupported"
    assert errors["x2"]["action"] == "Authorize"
    assert errors["x2"]["payload"]["errorCode"] == "ProtocolError"
    assert entries[-1]["action"] == "Heartbeat"
    assert entries[-1]["type"] == 3


@pytest.mark.parametrize(
    ("path", "subprotocols"),
    [("/ocpp/CP01", None), ("/ocpp/CP01", ["ocpp2.0.1"]), ("/other/CP01", ["ocpp1.6"])],
)
async def test_wrong_path_or_subprotocol_is_refused(
    csms: DevCsms, path: str, subprotocols: list[str] | None
) -> None:
    url = csms.ws_url.removesuffix("/ocpp") + path
    with pytest.raises(InvalidStatus) as refused:
        offered = [Subprotocol(name) for name in subprotocols] if subprotocols else None
        await websockets.connect(url, subprotocols=offered)
    assert refused.value.response.status_code in (400, 404)


def test_describe_renders_one_readable_line() -> None:
    journal = Journal()
    entry = journal.append("CP01", "in", parse_frame('[2,"7","Heartbeat",{}]'))
    assert describe(entry) == "CP01 <- CALL Heartbeat #7 {}"
    bad = journal.append("CP01", "in", parse_frame(b"\xff"))
    assert describe(bad).startswith("CP01 <- MALFORMED (FormatViolation")
