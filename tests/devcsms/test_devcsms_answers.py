"""What the development CSMS answers: per-tag IdTagInfo, and CALLs it drops, delays or refuses,
so end-to-end tests can drive a charger through the OCA test cases that need them."""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from ocpp.exceptions import InternalError, UnknownCallErrorCodeError
from ocpp.v16 import call

from evsed_devcsms import AdminApiError, AdminClient, DevCsms
from evsed_devcsms.cli import parse_id_tag
from evsed_devcsms.state import IdTagRecord
from evsed_devtools.harness import DevCsms as DevCsmsProcess

ChargerFactory = Callable[[str], Awaitable[Any]]
EXPIRY = "2030-01-01T00:00:00Z"


def _start(tag: str) -> Any:
    return call.StartTransaction(
        connector_id=1, id_tag=tag, meter_start=0, timestamp="2024-01-01T00:00:00Z"
    )


async def test_id_tag_records_answer_authorize_start_and_stop(
    csms: DevCsms, connect: ChargerFactory
) -> None:
    charger = await connect("CP01")
    api = AdminClient(csms.http_url, timeout=10)
    table = await asyncio.to_thread(
        api.set_id_tag, "CHILD1", "Accepted", parent_id_tag="PARENT", expiry_date=EXPIRY
    )
    assert table == {
        "CHILD1": {"status": "Accepted", "parentIdTag": "PARENT", "expiryDate": EXPIRY}
    }
    await asyncio.to_thread(api.set_id_tag, "GOOD1", "Blocked")

    child = await charger.call(call.Authorize(id_tag="child1"), suppress=False)
    assert child.id_tag_info == {
        "status": "Accepted",
        "parent_id_tag": "PARENT",
        "expiry_date": EXPIRY,
    }
    blocked = await charger.call(_start("GOOD1"), suppress=False)
    assert blocked.id_tag_info == {"status": "Blocked"}
    stop = call.StopTransaction(
        meter_stop=10, timestamp="2024-01-01T01:00:00Z", transaction_id=1, id_tag="CHILD1"
    )
    stopped = await charger.call(stop, suppress=False)
    assert stopped.id_tag_info["parent_id_tag"] == "PARENT"

    # Removing the record brings back the answer from the tag list.
    await asyncio.to_thread(api.set_id_tag, "good1", None)
    assert await asyncio.to_thread(api.id_tags) == {
        "CHILD1": {"status": "Accepted", "parentIdTag": "PARENT", "expiryDate": EXPIRY}
    }
    good = await charger.call(call.Authorize(id_tag="GOOD1"), suppress=False)
    assert good.id_tag_info == {"status": "Accepted"}
    with pytest.raises(AdminApiError) as refused:
        await asyncio.to_thread(api.set_id_tag, "X", "Maybe")
    assert refused.value.status == 400


async def test_answer_rules_drop_delay_and_refuse_calls(
    csms: DevCsms, connect: ChargerFactory
) -> None:
    charger = await connect("CP01")  # its CALL timeout is 5 s
    charger._response_timeout = 0.5
    api = AdminClient(csms.http_url, timeout=10)

    await asyncio.to_thread(api.set_answer_rule, "Heartbeat", "drop", times=1)
    with pytest.raises(asyncio.TimeoutError):
        await charger.call(call.Heartbeat(), suppress=False)
    # The rule was for one CALL only.
    assert (await charger.call(call.Heartbeat(), suppress=False)).current_time

    rules = await asyncio.to_thread(api.set_answer_rule, "Authorize", "delay", delay=0.3)
    assert rules == {"Authorize": {"mode": "delay", "delay": 0.3, "times": None}}
    began = time.monotonic()
    slow, remote = await asyncio.gather(
        charger.call(call.Authorize(id_tag="GOOD1"), suppress=False),
        # A delayed answer does not hold up the connection: CALLs still go both ways.
        asyncio.to_thread(api.remote_start, "CP01", "GOOD2"),
    )
    assert slow.id_tag_info["status"] == "Accepted"
    assert time.monotonic() - began >= 0.3
    assert remote["result"] == {"status": "Accepted"}
    entries = await asyncio.to_thread(api.messages)
    order = [(e["type"], e["action"]) for e in entries if e["action"] != "Heartbeat"]
    assert order.index((3, "RemoteStartTransaction")) < order.index((3, "Authorize"))

    await asyncio.to_thread(api.set_answer_rule, "StartTransaction", "error")
    with pytest.raises(InternalError):
        await charger.call(_start("GOOD1"), suppress=False)
    await asyncio.to_thread(api.set_answer_rule, "StartTransaction", "normal")
    assert await asyncio.to_thread(api.answer_rules) == {"Authorize": rules["Authorize"]}
    started = await charger.call(_start("GOOD1"), suppress=False)
    assert started.id_tag_info["status"] == "Accepted"

    entries = await asyncio.to_thread(api.messages, action="Heartbeat")
    # The dropped CALL is journaled; only the second one has an answer.
    assert [(e["dir"], e["type"]) for e in entries] == [("in", 2), ("in", 2), ("out", 3)]
    for body in ({"action": "X", "mode": "later"}, {"action": "X", "mode": "delay", "delay": -1}):
        with pytest.raises(AdminApiError) as refused:
            await asyncio.to_thread(api.request, "POST", "/api/answers", body)
        assert refused.value.status == 400


def test_id_tag_option_syntax() -> None:
    assert parse_id_tag("T1:Accepted") == ("T1", IdTagRecord("Accepted"))
    assert parse_id_tag("T2:Accepted:P1") == ("T2", IdTagRecord("Accepted", "P1"))
    assert parse_id_tag(f"T3:Expired::{EXPIRY}") == ("T3", IdTagRecord("Expired", None, EXPIRY))
    for bad in (":Accepted", "T4", "T5:Maybe"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_id_tag(bad)


def _cli(csms: DevCsmsProcess, *args: str) -> Any:
    done = subprocess.run(
        [sys.executable, "-m", "evsed_devcsms", args[0], "--http", csms.http_url, *args[1:]],
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    )
    return json.loads(done.stdout)


def test_process_takes_id_tags_and_restarts_on_the_same_ports(tmp_path: Path) -> None:
    csms = DevCsmsProcess.start(tmp_path, "--id-tag", "T1:Blocked:P1")
    try:
        assert csms.api("/api/id-tags") == {"T1": {"status": "Blocked", "parentIdTag": "P1"}}
        tags = _cli(csms, "id-tag", "--tag", "T2", "--status", "Expired", "--expiry", EXPIRY)
        assert tags["T2"] == {"status": "Expired", "expiryDate": EXPIRY}
        assert "T2" not in _cli(csms, "id-tag", "--tag", "T2", "--remove")
        rules = _cli(csms, "answer", "Heartbeat", "delay", "--delay", "1.5", "--times", "2")
        assert rules == {"Heartbeat": {"mode": "delay", "delay": 1.5, "times": 2}}
        csms.answer("Authorize", "drop")
        urls = (csms.ws_url, csms.http_url)
        csms.restart()
        assert (csms.ws_url, csms.http_url) == urls
        # Command-line settings come back; admin API settings do not.
        assert csms.api("/api/id-tags") == {"T1": {"status": "Blocked", "parentIdTag": "P1"}}
        assert csms.api("/api/answers") == {}
    finally:
        csms.stop()


async def test_refusals_carry_the_chosen_error_code_even_one_ocpp_does_not_define(
    csms: DevCsms, connect: ChargerFactory
) -> None:
    charger = await connect("CP01")
    api = AdminClient(csms.http_url, timeout=10)
    rules = await asyncio.to_thread(
        api.set_answer_rule, "Heartbeat", "error", code="NoSuchErrorCode", times=1
    )
    assert rules == {
        "Heartbeat": {"mode": "error", "delay": 0.0, "times": 1, "code": "NoSuchErrorCode"}
    }
    with pytest.raises(UnknownCallErrorCodeError, match="NoSuchErrorCode"):
        await charger.call(call.Heartbeat(), suppress=False)
    entries = await asyncio.to_thread(api.messages, action="Heartbeat")
    assert entries[-1]["type"] == 4
    assert entries[-1]["payload"]["errorCode"] == "NoSuchErrorCode"


async def test_raw_frames_go_out_as_typed_and_their_answer_comes_back(
    csms: DevCsms, connect: ChargerFactory
) -> None:
    charger = await connect("CP01")
    api = AdminClient(csms.http_url, timeout=10)
    # The test charger (the ocpp library) answers a CALL of an action it has no handler for.
    answer = await asyncio.to_thread(api.send_raw, "CP01", '[2,"r1","ClearCache",{}]', timeout=2)
    assert answer["id"] == "r1"
    assert answer["error"]["code"] == "NotImplemented"
    # No readable message id: nothing can answer, and the API says so at once.
    assert await asyncio.to_thread(api.send_raw, "CP01", "not json") == {"id": None}
    entries = await asyncio.to_thread(api.messages, cp="CP01")
    assert [e for e in entries if e["dir"] == "out" and e["type"] is None]
    assert charger.remote_starts == []
