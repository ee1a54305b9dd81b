"""A transaction whose idTag the CSMS refuses in StartTransaction.conf (OCPP 1.6 §4.8, §9.1
StopTransactionOnInvalidId and MaxEnergyOnInvalidId).

StopTransactionOnInvalidId true: the transaction ends with reason DeAuthorized. False: energy
delivery stops (SuspendedEVSE, PWM off, contactor open) and the transaction goes on until the
car leaves. MaxEnergyOnInvalidId > 0: up to that much energy is delivered in the transaction
first. The tag is refused because the ``csms`` fixture does not know it; a remote start with
AuthorizeRemoteTxRequests false sends no Authorize first.
"""

import time
from collections.abc import Callable

from oca_support import booted, wait_status

from evsed_devtools.harness import DevCsms, Evsed, wait_for

REFUSED = "BADCARD1"


def _start_refused(evsed: Evsed, csms: DevCsms) -> dict[str, object]:
    evsed.sim("plug")
    assert csms.result("RemoteStartTransaction", {"idTag": REFUSED, "connectorId": 1}) == {
        "status": "Accepted"
    }
    evsed.sim("ev-state", "C")
    (start,) = csms.wait_for_calls("StartTransaction")
    return start


def _energy(evsed: Evsed) -> float:
    return float(evsed.connector()["energy_wh"] or 0.0)


def test_invalid_id_without_stop_suspends_energy_delivery_and_keeps_the_transaction(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = booted(start_evsed, csms, keys={"StopTransactionOnInvalidId": "false"})
    start = _start_refused(evsed, csms)
    wait_status(csms, "SuspendedEVSE", start["i"])
    connector = evsed.connector()
    assert not connector["contactor_closed"]
    assert connector["pwm_current_a"] is None and connector["pilot"] == "off"
    assert connector["transaction_active"]
    # The simulated car sees no PWM on the pilot and draws nothing.
    wait_for(
        lambda: evsed.status()["sim"]["connectors"][0]["drawn_current_a"] == 0,
        what="the car stops drawing",
    )
    before = _energy(evsed)
    time.sleep(1.5)
    assert _energy(evsed) == before  # no more energy flows
    assert not csms.calls("CP01", "StopTransaction")
    evsed.sim("ev-state", "B")
    evsed.sim("unplug")
    (stop,) = csms.wait_for_calls("StopTransaction")
    assert stop["payload"]["reason"] == "EVDisconnected"


def test_invalid_id_with_max_energy_charges_that_much_then_suspends(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = booted(
        start_evsed,
        csms,
        keys={"StopTransactionOnInvalidId": "false", "MaxEnergyOnInvalidId": "6"},
    )
    start = _start_refused(evsed, csms)
    meter_start = start["payload"]["meterStart"]
    assert isinstance(meter_start, int)
    wait_for(lambda: evsed.connector()["contactor_closed"], what="charging on")
    wait_status(csms, "SuspendedEVSE", start["i"])
    delivered = _energy(evsed) - meter_start
    assert 6 <= delivered <= 12, delivered
    assert evsed.connector()["transaction_active"]
    assert not csms.calls("CP01", "StopTransaction")


def test_invalid_id_with_stop_and_max_energy_charges_that_much_then_stops(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = booted(start_evsed, csms, keys={"MaxEnergyOnInvalidId": "6"})
    start = _start_refused(evsed, csms)
    meter_start = start["payload"]["meterStart"]
    assert isinstance(meter_start, int)
    wait_for(lambda: evsed.connector()["contactor_closed"], what="charging on")
    (stop,) = csms.wait_for_calls("StopTransaction", timeout=20)
    assert stop["payload"]["reason"] == "DeAuthorized"
    assert 6 <= stop["payload"]["meterStop"] - meter_start <= 12
