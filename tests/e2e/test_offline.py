"""Offline behaviour: the connection to the CSMS is cut (``evsectl sim network down``, or the
CSMS process stops) during or around a transaction, and the transaction messages queued in the
meantime reach the CSMS afterwards, in order, with the times they happened and the
transactionId the CSMS gave to the StartTransaction.

OCA test cases (OCPP 1.6 Compliancy Testing Tool, "Offline Behavior"): TC_036_CS Connection
Loss During Transaction, TC_037_1_CS Offline Start Transaction - Valid IdTag, TC_037_2_CS and
TC_037_3_CS Offline Start Transaction - Invalid IdTag - StopTransactionOnInvalidId = false /
true, TC_038_CS Offline Stop Transaction, TC_039_CS Offline Transaction. The configuration each case
names is set through ChangeConfiguration (and the valid tag through SendLocalList), as the
test tool does. AllowOfflineTxForUnknownId stays false where the tag is a valid one, so the
local list alone must be what authorizes it offline.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from outbox_support import (
    TAG,
    TX_ACTIONS,
    Csms,
    drained,
    energy_wh,
    registered,
    statuses,
    utc_now,
)
from websockets.asyncio.server import ServerConnection, serve
from websockets.typing import Subprotocol

from evsed_devtools.harness import Evsed, wait_for

UNKNOWN_TAG = "DEADBEEF"  # not in the CSMS's list: StartTransaction.conf says Invalid
SAMPLE_INTERVAL_S = 1


@pytest.fixture
def csms(tmp_path: Path) -> Iterator[Csms]:
    server = Csms(tmp_path)
    yield server
    server.stop()


def start_evsed(tmp_path: Path, csms: Csms) -> Evsed:
    evsed = Evsed.start(
        tmp_path, csms.ws_url, charging={"meter_values_interval_s": SAMPLE_INTERVAL_S}
    )
    registered(evsed)
    return evsed


def local_list(csms: Csms, *tags: str) -> None:
    entries = [{"idTag": tag, "idTagInfo": {"status": "Accepted"}} for tag in tags]
    answer = csms.call(
        "SendLocalList",
        {"listVersion": 1, "updateType": "Full", "localAuthorizationList": entries},
    )
    assert answer["status"] == "Accepted"


def network(evsed: Evsed, up: bool) -> None:
    evsed.sim("network", "up" if up else "down")
    if up:
        registered(evsed)
    else:
        wait_for(lambda: evsed.status()["ocpp"]["connection"] == "network-down", what="offline")


def start_charging(evsed: Evsed, tag: str) -> None:
    evsed.sim("plug")
    evsed.sim("swipe", tag)
    evsed.sim("ev-state", "C")
    wait_for(lambda: evsed.connector()["contactor_closed"], what="charging")


def stop_by_swipe(evsed: Evsed, tag: str) -> None:
    evsed.sim("swipe", tag)
    wait_for(lambda: evsed.connector()["pilot"] != "pwm", what="PWM off")
    evsed.sim("ev-state", "B")  # the car stops drawing when the PWM goes off
    wait_for(lambda: not evsed.connector()["transaction_active"], what="transaction ended")


def seconds(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


@pytest.mark.parametrize("cut", ["network", "csms-restart"])
def test_tc_036_connection_loss_during_a_transaction_delivers_every_queued_meter_value(
    tmp_path: Path, csms: Csms, cut: str
) -> None:
    evsed = start_evsed(tmp_path, csms)
    try:
        start_charging(evsed, TAG)
        wait_for(lambda: csms.calls("MeterValues"), what="a meter sample online")
        lost_at = utc_now()
        if cut == "network":
            network(evsed, up=False)
        else:
            csms.stop()
        wait_for(lambda: evsed.status()["ocpp"]["outbox_pending"] >= 4, what="queued samples")
        back_at = utc_now()
        if cut == "network":
            network(evsed, up=True)
        else:
            csms.start()
            registered(evsed)
        drained(evsed)
        delivered = len(csms.calls("MeterValues"))
        wait_for(lambda: len(csms.calls("MeterValues")) > delivered, what="a new sample")
        evsed.sim("unplug")
        wait_for(lambda: csms.calls("StopTransaction"), what="StopTransaction")
    finally:
        evsed.stop()

    (start,) = csms.calls("StartTransaction")
    samples = csms.calls("MeterValues")
    transaction_id = start["answer"]["transactionId"]
    stamps = [seconds(value["timestamp"]) for s in samples for value in s["payload"]["meterValue"]]
    # All of them, the queued ones before the new one, each MeterValueSampleInterval after the
    # one before (TC_036_CS: "in chronological order (also before sending any new meter
    # values)", "a number of seconds equal to the configured MeterValueSampleInterval").
    # Sample times carry the sampler's jitter (a 0.2 s tick, more on a busy machine), so no
    # gap may be near 0 (a copy) or near 2 intervals (a hole), and together they span exactly
    # one interval per gap.
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert all(0.2 * SAMPLE_INTERVAL_S < gap < 1.8 * SAMPLE_INTERVAL_S for gap in gaps), gaps
    assert round((stamps[-1] - stamps[0]) / SAMPLE_INTERVAL_S) == len(gaps), gaps
    queued = [s for s in samples if lost_at <= s["payload"]["meterValue"][0]["timestamp"] < back_at]
    assert len(queued) >= 3
    for sample in samples:
        payload = sample["payload"]
        assert payload["transactionId"] == transaction_id and payload["connectorId"] == 1
        for value in payload["meterValue"]:
            for sampled in value["sampledValue"]:
                assert sampled.get("context", "Sample.Periodic") == "Sample.Periodic"
                assert sampled.get("format", "Raw") == "Raw"
    wh = [w for s in samples for w in energy_wh(s["payload"])]
    assert wh == sorted(wh)


def test_tc_037_1_offline_start_transaction_with_a_valid_id_tag(tmp_path: Path, csms: Csms) -> None:
    evsed = start_evsed(tmp_path, csms)
    try:
        csms.change_configuration("LocalAuthorizeOffline", "true")
        csms.change_configuration("LocalAuthListEnabled", "true")
        csms.change_configuration("AllowOfflineTxForUnknownId", "false")
        local_list(csms, TAG)
        network(evsed, up=False)
        start_charging(evsed, TAG)
        started_offline = utc_now()
        time.sleep(1.5)
        reconnected = len(csms.calls())
        back_at = utc_now()
        network(evsed, up=True)
        wait_for(lambda: csms.calls("StartTransaction"), what="StartTransaction")
        drained(evsed)
        wait_for(lambda: statuses(csms.calls()[reconnected:], 1), what="status after reconnect")
        transaction_id = csms.calls("StartTransaction")[0]["answer"]["transactionId"]
        assert evsed.connector()["transaction_id"] == transaction_id
        evsed.sim("unplug")
        wait_for(lambda: csms.calls("StopTransaction"), what="StopTransaction")
    finally:
        evsed.stop()

    (start,) = csms.calls("StartTransaction")
    assert start["answer"]["idTagInfo"]["status"] == "Accepted"
    assert start["payload"]["idTag"] == TAG
    assert start["payload"]["timestamp"] <= started_offline < back_at  # when it happened
    assert not csms.calls("Authorize")  # the local list authorized it, offline
    after = csms.calls()[reconnected:]
    assert statuses(after, 1)[0] == "Charging"
    (stop,) = csms.calls("StopTransaction")
    assert stop["payload"]["transactionId"] == start["answer"]["transactionId"]
    for sample in csms.calls("MeterValues"):
        assert sample["payload"]["transactionId"] == start["answer"]["transactionId"]


@pytest.mark.parametrize("stop_on_invalid_id", [False, True], ids=["tc_037_2", "tc_037_3"])
def test_tc_037_2_and_3_offline_start_transaction_with_an_invalid_id_tag(
    tmp_path: Path, csms: Csms, stop_on_invalid_id: bool
) -> None:
    evsed = start_evsed(tmp_path, csms)
    try:
        csms.change_configuration("LocalAuthorizeOffline", "true")
        csms.change_configuration("AllowOfflineTxForUnknownId", "true")
        csms.change_configuration("StopTransactionOnInvalidId", str(stop_on_invalid_id).lower())
        network(evsed, up=False)
        start_charging(evsed, UNKNOWN_TAG)  # unknown here: accepted offline, by the key
        network(evsed, up=True)
        wait_for(lambda: csms.calls("StartTransaction"), what="StartTransaction")
        if stop_on_invalid_id:
            wait_for(lambda: csms.calls("StopTransaction"), what="StopTransaction")
            wait_for(lambda: not evsed.connector()["contactor_closed"], what="contactor open")
        else:
            # §4.8: only energy delivery stops; the transaction goes on until the car leaves.
            wait_for(lambda: not evsed.connector()["contactor_closed"], what="delivery stops")
            assert evsed.connector()["phase"] == "SuspendedEVSE"
            time.sleep(1.0)
            assert evsed.connector()["transaction_active"]
            assert not csms.calls("StopTransaction")
            evsed.sim("unplug")
            wait_for(lambda: csms.calls("StopTransaction"), what="StopTransaction")
        drained(evsed)
    finally:
        evsed.stop()

    (start,) = csms.calls("StartTransaction")
    (stop,) = csms.calls("StopTransaction")
    assert start["answer"]["idTagInfo"]["status"] == "Invalid"
    assert stop["payload"]["transactionId"] == start["answer"]["transactionId"]
    expected = "DeAuthorized" if stop_on_invalid_id else "EVDisconnected"
    assert stop["payload"]["reason"] == expected


def test_offline_start_with_an_unknown_tag_is_refused_without_allow_offline_tx_for_unknown_id(
    tmp_path: Path, csms: Csms
) -> None:
    evsed = start_evsed(tmp_path, csms)
    try:
        csms.change_configuration("AllowOfflineTxForUnknownId", "false")
        network(evsed, up=False)
        evsed.sim("plug")
        evsed.sim("swipe", UNKNOWN_TAG)
        evsed.sim("ev-state", "C")
        wait_for(lambda: evsed.connector()["cp_state"] == "C", what="car asks for power")
        time.sleep(1.0)
        connector = evsed.connector()
        assert not connector["transaction_active"] and not connector["contactor_closed"]
        assert evsed.status()["ocpp"]["outbox_pending"] == 0
        network(evsed, up=True)
        time.sleep(0.5)
    finally:
        evsed.stop()
    assert not csms.calls(*TX_ACTIONS)


def test_tc_038_offline_stop_transaction(tmp_path: Path, csms: Csms) -> None:
    evsed = start_evsed(tmp_path, csms)
    try:
        start_charging(evsed, TAG)
        wait_for(lambda: csms.calls("StartTransaction"), what="StartTransaction")
        network(evsed, up=False)
        stop_by_swipe(evsed, TAG)  # the same tag stops it: no CSMS needed (§4.1)
        stopped_at = utc_now()
        time.sleep(0.5)
        reconnected = len(csms.calls())
        network(evsed, up=True)
        wait_for(lambda: csms.calls("StopTransaction"), what="StopTransaction")
        drained(evsed)
        wait_for(lambda: statuses(csms.calls()[reconnected:], 1), what="status after reconnect")
    finally:
        evsed.stop()

    (start,) = csms.calls("StartTransaction")
    (stop,) = csms.calls("StopTransaction")
    assert stop["payload"]["reason"] == "Local"
    assert stop["payload"]["transactionId"] == start["answer"]["transactionId"]
    assert stop["payload"]["timestamp"] <= stopped_at  # when it happened, not when delivered
    assert "Finishing" in statuses(csms.calls()[reconnected:], 1)


def test_tc_039_offline_transaction(tmp_path: Path, csms: Csms) -> None:
    evsed = start_evsed(tmp_path, csms)
    try:
        csms.change_configuration("LocalAuthorizeOffline", "true")
        csms.change_configuration("AllowOfflineTxForUnknownId", "false")
        local_list(csms, TAG)
        network(evsed, up=False)
        start_charging(evsed, TAG)
        time.sleep(1.5)
        stop_by_swipe(evsed, TAG)
        evsed.sim("unplug")
        wait_for(lambda: evsed.status()["ocpp"]["outbox_pending"] >= 3, what="queued")
        back_at = utc_now()
        network(evsed, up=True)
        drained(evsed)
    finally:
        evsed.stop()

    sent = csms.calls(*TX_ACTIONS)
    actions = [c["action"] for c in sent]
    assert actions[0] == "StartTransaction" and actions[-1] == "StopTransaction"
    assert set(actions[1:-1]) <= {"MeterValues"}
    start, stop = sent[0], sent[-1]
    assert start["answer"]["idTagInfo"]["status"] == "Accepted"
    assert all(c["payload"]["transactionId"] == start["answer"]["transactionId"] for c in sent[1:])
    assert stop["payload"]["reason"] == "Local"
    assert start["payload"]["timestamp"] < stop["payload"]["timestamp"] < back_at
    assert stop["payload"]["meterStop"] > start["payload"]["meterStart"]


class AnswerThenHangUp:
    """A minimal CSMS that answers like the dev CSMS but closes the connection right after
    answering a transaction message: the answer arrives, then the connection drops."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.port = 0
        self._ready = threading.Event()
        self._stop: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()), daemon=True)
        self._thread.start()
        self._ready.wait(5)

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = self._loop.create_future()
        ocpp16 = [Subprotocol("ocpp1.6")]
        async with serve(self._handle, "127.0.0.1", 0, subprotocols=ocpp16) as server:
            self.port = server.sockets[0].getsockname()[1]
            self._ready.set()
            await self._stop

    async def _handle(self, ws: ServerConnection) -> None:
        now = utc_now()
        async for raw in ws:
            message = json.loads(raw)
            if message[0] != 2:
                continue
            _, unique_id, action, payload = message
            self.received.append((action, payload))
            answers: dict[str, dict[str, Any]] = {
                "BootNotification": {"currentTime": now, "interval": 60, "status": "Accepted"},
                "Heartbeat": {"currentTime": now},
                "StartTransaction": {
                    "transactionId": len(self.received),
                    "idTagInfo": {"status": "Accepted"},
                },
            }
            await ws.send(json.dumps([3, unique_id, answers.get(action, {})]))
            if action in TX_ACTIONS:
                await ws.close()
                return

    def close(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set_result, None)
        self._thread.join(5)


def test_an_answer_received_just_before_the_connection_drops_is_not_sent_again(
    tmp_path: Path,
) -> None:
    server = AnswerThenHangUp()
    evsed = Evsed.start(
        tmp_path,
        f"ws://127.0.0.1:{server.port}/ocpp",
        charging={"free_mode": True, "meter_values_interval_s": 0},
    )
    try:
        evsed.wait_registered()
        evsed.sim("plug")
        wait_for(lambda: any(a == "StartTransaction" for a, _ in server.received), what="start")
        time.sleep(2.0)  # time for several reconnections
        starts = [action for action, _ in server.received if action == "StartTransaction"]
        assert len(starts) == 1, f"StartTransaction sent {len(starts)} times"
        evsed.sim("unplug")
        wait_for(lambda: evsed.status()["ocpp"]["outbox_pending"] == 0, what="stop delivered")
        time.sleep(1.0)
    finally:
        evsed.stop()
        server.close()
    sent = [action for action, _ in server.received if action in TX_ACTIONS]
    assert sent == ["StartTransaction", "StopTransaction"]
