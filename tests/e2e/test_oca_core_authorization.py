"""OCA OCPP 1.6 Core test cases: authorization (TC_007, TC_023_1/2/3, TC_061).

TC_023_1/2/3 are the ids of the Central System document (Authorize invalid / expired /
blocked); the Charge Point document calls the invalid case TC_023. Each test checks that the
charger starts no transaction for the refused card.
"""

import time
from collections.abc import Callable

from oca_support import TAG, answer_to, answered, booted, labels, mark, since, wait_status

from evsed_devtools.harness import DevCsms, Evsed, wait_for


def test_tc_007_regular_start_charging_session_cached_id(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = booted(
        start_evsed,
        csms,
        keys={
            "AuthorizationCacheEnabled": "true",
            "LocalPreAuthorize": "true",
            "ConnectionTimeOut": "1",
        },
    )
    # Memory state IdTagCached: the tag was authorized once and the authorization lapsed.
    before = mark(csms)
    evsed.sim("swipe", TAG)
    wait_status(csms, "Preparing", before)
    wait_status(csms, "Available", before)
    assert csms.result("ChangeConfiguration", {"key": "ConnectionTimeOut", "value": "60"}) == {
        "status": "Accepted"
    }

    start = mark(csms)
    evsed.sim("swipe", TAG)
    wait_status(csms, "Preparing", start)
    evsed.sim("plug")
    evsed.sim("ev-state", "C")
    wait_status(csms, "Charging", start)

    calls = since(csms, start)
    # LocalPreAuthorize: the cached id starts at once, without Authorize.req.
    assert [x for x in labels(calls) if x != "Status:SuspendedEV"] == [
        "Status:Preparing",
        "StartTransaction",
        "Status:Charging",
    ]
    assert answer_to(csms, calls[1])["idTagInfo"]["status"] == "Accepted"


def _refused_card_starts_nothing(
    csms: DevCsms, start_evsed: Callable[..., Evsed], tag: str, status: str
) -> None:
    evsed = booted(start_evsed, csms, keys={"LocalPreAuthorize": "true"})
    start = mark(csms)
    evsed.sim("swipe", tag)
    authorize = csms.wait_for_calls("Authorize")[0]
    wait_for(lambda: answered(csms, authorize), what="Authorize.conf")
    evsed.sim("plug")
    wait_status(csms, "Preparing", start)
    time.sleep(0.5)  # what a transaction start would need, and more

    assert answer_to(csms, authorize)["idTagInfo"]["status"] == status
    assert labels(since(csms, start)) == ["Authorize", "Status:Preparing"]
    connector = evsed.connector()
    assert (connector["transaction_active"], connector["id_tag"]) == (False, None)
    assert connector["ocpp_status"] == "Preparing"


def test_tc_023_1_start_charging_session_authorize_invalid(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    _refused_card_starts_nothing(csms, start_evsed, "UNKNOWN1", "Invalid")


def test_tc_023_2_start_charging_session_authorize_expired(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    csms.set_id_tag("EXPIRED1", "Expired")
    _refused_card_starts_nothing(csms, start_evsed, "EXPIRED1", "Expired")


def test_tc_023_3_start_charging_session_authorize_blocked(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    csms.set_id_tag("BLOCKED1", "Blocked")
    _refused_card_starts_nothing(csms, start_evsed, "BLOCKED1", "Blocked")


def test_tc_061_clear_authorization_data_in_authorization_cache(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = booted(
        start_evsed,
        csms,
        keys={
            "AuthorizationCacheEnabled": "true",
            "LocalPreAuthorize": "true",
            "ConnectionTimeOut": "1",
        },
    )
    start = mark(csms)
    evsed.sim("swipe", TAG)  # reusable state Authorized: the tag is now in the cache
    wait_status(csms, "Preparing", start)
    wait_status(csms, "Available", start)  # the ConnectionTimeOut expired
    assert csms.result("ClearCache", {}) == {"status": "Accepted"}
    evsed.sim("swipe", TAG)
    again = csms.wait_for_calls("Authorize", 2)[1]
    wait_status(csms, "Available", again["i"])

    # With the cache cleared, LocalPreAuthorize has nothing to go on: Authorize.req again.
    assert labels(since(csms, start)) == [
        "Authorize",
        "Status:Preparing",
        "Status:Available",
        "Authorize",
        "Status:Preparing",
        "Status:Available",
    ]
