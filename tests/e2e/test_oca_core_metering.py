"""OCA OCPP 1.6 Core test cases: meter values (TC_070 sampled, TC_071 clock-aligned)."""

from collections.abc import Callable
from datetime import datetime
from itertools import pairwise
from typing import Any

from oca_support import booted, charging

from evsed_devtools.harness import DevCsms, Evsed, wait_for


def _configured(csms: DevCsms, key: str) -> list[str]:
    answer = csms.result("GetConfiguration", {"key": [key]})
    value: str = answer["configurationKey"][0]["value"]
    return value.split(",") if value else ["Energy.Active.Import.Register"]


def _times(messages: list[dict[str, Any]]) -> list[datetime]:
    return [datetime.fromisoformat(m["payload"]["meterValue"][0]["timestamp"]) for m in messages]


def _check_samples(
    messages: list[dict[str, Any]], measurands: list[str], context: str, transaction_id: int
) -> None:
    for message in messages:
        payload = message["payload"]
        assert payload["connectorId"] == 1
        assert payload["transactionId"] == transaction_id
        (meter_value,) = payload["meterValue"]
        sampled = meter_value["sampledValue"]
        assert {v["measurand"] for v in sampled} == set(measurands)
        for value in sampled:
            assert value["context"] == context
            assert value.get("location") != "EV"  # only SoC may come from the EV
            assert value.get("format", "Raw") == "Raw"
            float(value["value"])


def test_tc_070_sampled_meter_values(csms: DevCsms, start_evsed: Callable[..., Evsed]) -> None:
    evsed = booted(
        start_evsed,
        csms,
        keys={"MeterValueSampleInterval": "1", "ClockAlignedDataInterval": "0"},
    )
    measurands = _configured(csms, "MeterValuesSampledData")
    transaction_id = charging(evsed, csms)
    messages = csms.wait_for_calls("MeterValues", 3)[:3]

    _check_samples(messages, measurands, "Sample.Periodic", transaction_id)
    # Every MeterValueSampleInterval seconds from the start of the transaction.
    gaps = [(b - a).total_seconds() for a, b in pairwise(_times(messages))]
    assert all(0.6 <= gap <= 1.6 for gap in gaps), gaps


def test_tc_071_clock_aligned_meter_values(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = booted(
        start_evsed,
        csms,
        keys={"MeterValueSampleInterval": "0", "ClockAlignedDataInterval": "2"},
    )
    measurands = _configured(csms, "MeterValuesAlignedData")
    transaction_id = charging(evsed, csms)
    start = csms.calls("CP01", "StartTransaction")[0]["i"]

    def in_transaction() -> list[dict[str, Any]]:
        return [m for m in csms.calls("CP01", "MeterValues") if m["i"] > start]

    messages = wait_for(lambda: len(in_transaction()) >= 3 and in_transaction()[:3], what="3")

    _check_samples(messages, measurands, "Sample.Clock", transaction_id)
    times = _times(messages)
    # On the clock: every 2 s after midnight, exactly, and 2 s apart.
    assert all(t.second % 2 == 0 and t.microsecond == 0 for t in times), times
    assert [(b - a).total_seconds() for a, b in pairwise(times)] == [2.0, 2.0]
