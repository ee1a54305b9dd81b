"""Local load management without a CSMS in the loop: the site meter (a simulated Modbus meter
on the connectors' meter line, under its own device id) measures the site's other loads and
the cars; the charger offers at most what the site fuse leaves. The daemon runs as a process
against the development CSMS; what the car is offered is read from the duty cycle the
simulated MCU received.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from oca_support import TAG, mark, since, wait_status
from tests_support import wait_offered

from evsed_devtools.harness import DevCsms, Evsed, wait_for

OTHER = "PARENT01"
FUSE_A = 25.0
SITE = {"poll_interval_s": 0.3, "timeout_s": 0.5}  # the line's timeout, as the connectors' meters


def _site_charger(
    start_evsed: Callable[..., Evsed], csms: DevCsms, *, fallback_a: float = 8.0, **sections: Any
) -> Evsed:
    evsed = start_evsed(
        csms.ws_url,
        charging={"site_fuse_a": FUSE_A, "site_fallback_current_a": fallback_a},
        site_meter=SITE,
        **sections,
    )
    evsed.wait_registered()
    wait_for(lambda: evsed.status()["site"]["meter_ok"], what="a first site reading")
    return evsed


def _connector0_errors(csms: DevCsms, start: int = 0) -> list[str]:
    return [
        m["payload"]["errorCode"]
        for m in since(csms, start)
        if m["action"] == "StatusNotification" and m["payload"]["connectorId"] == 0
    ]


def test_a_household_spike_lowers_the_offer_and_a_quiet_house_gives_it_back(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = _site_charger(start_evsed, csms)
    evsed.charge(TAG)
    wait_offered(evsed, 16.0)  # the installation limit: the fuse leaves 25 A
    # The car's own current is not another load (once both meters have read it: while the car
    # ramps up, the site meter may see it a reading before the connector's meter does).
    wait_for(
        lambda: evsed.status()["site"]["other_loads_a"] == [0.0, 0.0, 0.0],
        what="no other loads",
    )

    # An oven on L2: 25 - 15 leaves 10 A, on every phase a connector may use.
    evsed.sim("site-load", "2", "15", "2")
    wait_offered(evsed, 10.0, timeout=3.0)
    limit = evsed.connector()["limit"]
    assert limit == {"amps": 10.0, "source": "site"}
    site = evsed.status()["site"]
    assert site["allowance_a"] == 10.0 and site["other_loads_a"][1] == 15.0
    # The car follows the lowered PWM: the site stays under its fuse.
    wait_for(
        lambda: max(evsed.status()["sim"]["site"]["measured_a"]) <= FUSE_A,
        what="site current under the fuse",
    )

    # Less than 6 A left: no PWM, the transaction is suspended by the charger.
    start = mark(csms)
    evsed.sim("site-load", "21")
    wait_offered(evsed, 0.0, timeout=3.0)
    wait_status(csms, "SuspendedEVSE", start)
    assert evsed.connector()["transaction_active"] is True  # suspended, not ended

    start = mark(csms)
    evsed.sim("site-load", "0")
    wait_offered(evsed, 16.0)
    wait_status(csms, "Charging", start)
    assert len(csms.calls("CP01", "StopTransaction")) == 0


def test_the_allowance_is_shared_among_the_connectors(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = _site_charger(start_evsed, csms, connectors=2)
    evsed.sim("site-load", "5")
    wait_for(lambda: evsed.status()["site"]["allowance_a"] == 20.0, what="allowance 20 A")
    evsed.charge(TAG, connector=1)
    wait_offered(evsed, 16.0, 1)
    evsed.charge(OTHER, connector=2)
    # 25 A fuse - 5 A of other loads: 20 A for two cars, 10 A each.
    wait_offered(evsed, 10.0, 1)
    wait_offered(evsed, 10.0, 2)
    assert {c["limit"]["source"] for c in evsed.status()["connectors"]} == {"site"}


def test_a_lost_site_meter_falls_back_to_the_safe_current_and_is_reported(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = _site_charger(start_evsed, csms, fallback_a=8.0)
    evsed.charge(TAG)
    wait_offered(evsed, 16.0)
    start = mark(csms)

    evsed.sim("site-meter", "offline")
    wait_offered(evsed, 8.0, timeout=5.0)
    site = evsed.status()["site"]
    assert site["meter_ok"] is False and site["error"]
    assert evsed.connector()["limit"] == {"amps": 8.0, "source": "site meter lost: fallback"}
    wait_for(lambda: "PowerMeterFailure" in _connector0_errors(csms, start), what="report")
    assert "site meter lost" in evsed.log()
    text = evsed.ctl("status").stdout
    assert "meter LOST" in text and "fallback" in text

    evsed.sim("site-meter", "online")
    wait_for(lambda: _connector0_errors(csms, start)[-1:] == ["NoError"], what="NoError again")
    wait_offered(evsed, 16.0)
    assert len(csms.calls("CP01", "StopTransaction")) == 0


def test_a_fallback_of_zero_suspends_charging_until_the_meter_answers(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = _site_charger(start_evsed, csms, fallback_a=0.0)
    evsed.charge(TAG)
    wait_offered(evsed, 16.0)
    start = mark(csms)
    evsed.sim("site-meter", "offline")
    wait_offered(evsed, 0.0, timeout=5.0)
    wait_status(csms, "SuspendedEVSE", start)
    evsed.sim("site-meter", "online")
    wait_offered(evsed, 16.0)


def test_site_commands_without_load_management_are_refused(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = start_evsed(csms.ws_url)
    evsed.wait_registered()
    assert evsed.status()["site"] is None
    refused = evsed.ctl("sim", "site-load", "10")
    assert refused.returncode != 0 and "no site meter" in refused.stderr


def test_malformed_site_commands_are_refused(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = _site_charger(start_evsed, csms)
    for words in (
        ("site-load",),
        ("site-load", "1", "2"),
        ("site-load", "-3"),
        ("site-load", "nan"),
        ("site-meter", "broken"),
    ):
        refused = evsed.ctl("sim", *words)
        assert refused.returncode != 0 and refused.stderr, words
    with_connector = evsed.ctl("sim", "--connector", "1", "site-load", "3")
    assert with_connector.returncode != 0 and "charger-wide" in with_connector.stderr
    assert evsed.status()["sim"]["site"]["other_loads_a"] == [0.0, 0.0, 0.0]
