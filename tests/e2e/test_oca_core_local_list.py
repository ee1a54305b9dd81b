"""OCA OCPP 1.6 test cases of the Local Auth List Management profile (TC_008, TC_042_1,
TC_042_2, TC_043, TC_043_1, TC_043_2, TC_043_3).

A charger that supports the profile but has ``LocalAuthListEnabled = false`` answers like one
without it (GetLocalListVersion -1, SendLocalList NotSupported), which is how TC_042_1 and
TC_043_1 are run here.
"""

from collections.abc import Callable
from typing import Any

from oca_support import TAG, answer_to, booted, labels, mark, since, wait_status

from evsed_devtools.harness import DevCsms, Evsed


def _version(csms: DevCsms) -> int:
    version: int = csms.result("GetLocalListVersion", {})["listVersion"]
    return version


def _send(csms: DevCsms, version: int, update: str, entries: list[dict[str, Any]] | None) -> str:
    payload: dict[str, Any] = {"listVersion": version, "updateType": update}
    if entries is not None:
        payload["localAuthorizationList"] = entries
    status: str = csms.result("SendLocalList", payload)["status"]
    return status


def _entry(tag: str, status: str = "Accepted") -> dict[str, Any]:
    return {"idTag": tag, "idTagInfo": {"status": status}}


def test_tc_008_regular_start_charging_session_id_in_local_authorization_list(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = booted(
        start_evsed,
        csms,
        keys={
            "LocalPreAuthorize": "true",
            "AuthorizationCacheEnabled": "false",
            "LocalAuthListEnabled": "true",
        },
    )
    assert _version(csms) == 0
    assert _send(csms, 1, "Full", [_entry(TAG)]) == "Accepted"
    start = mark(csms)
    evsed.sim("swipe", TAG)
    wait_status(csms, "Preparing", start)
    evsed.sim("plug")
    evsed.sim("ev-state", "C")
    wait_status(csms, "Charging", start)

    calls = since(csms, start)
    # Authorized from the list: no Authorize.req.
    assert [x for x in labels(calls) if x != "Status:SuspendedEV"] == [
        "Status:Preparing",
        "StartTransaction",
        "Status:Charging",
    ]
    assert answer_to(csms, calls[1])["idTagInfo"]["status"] == "Accepted"


def test_tc_042_1_get_local_list_version_not_supported(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    booted(start_evsed, csms, keys={"LocalAuthListEnabled": "false"})
    assert _version(csms) == -1


def test_tc_042_2_get_local_list_version_empty(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    booted(start_evsed, csms, keys={"LocalAuthListEnabled": "true"})
    assert _send(csms, 1, "Full", None) == "Accepted"
    assert _version(csms) == 0  # an empty list reports 0, whatever its version


def test_tc_043_send_local_authorization_list(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = booted(
        start_evsed, csms, keys={"LocalAuthListEnabled": "true", "LocalPreAuthorize": "true"}
    )
    assert _send(csms, 1, "Full", [_entry("LISTED01")]) == "Accepted"
    assert _send(csms, 2, "Differential", [_entry(TAG)]) == "Accepted"
    assert _version(csms) == 2
    # The charger authorizes EV drivers whose idTag is on the list, locally.
    start = mark(csms)
    evsed.sim("swipe", TAG)
    wait_status(csms, "Preparing", start)
    assert labels(since(csms, start)) == ["Status:Preparing"]


def test_tc_043_1_send_local_authorization_list_not_supported(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    booted(start_evsed, csms, keys={"LocalAuthListEnabled": "false"})
    assert _send(csms, 1, "Full", [_entry(TAG)]) == "NotSupported"


def test_tc_043_2_send_local_authorization_list_version_mismatch(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    booted(start_evsed, csms, keys={"LocalAuthListEnabled": "true"})
    assert _send(csms, 2, "Full", [_entry("LISTED01")]) == "Accepted"
    assert _version(csms) == 2
    assert _send(csms, 5, "Differential", [_entry("LISTED02")]) == "Accepted"
    assert _version(csms) == 5
    assert _send(csms, 4, "Differential", [_entry("LISTED03")]) == "VersionMismatch"
    assert _version(csms) == 5


def test_tc_043_3_send_local_authorization_list_failed(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    booted(start_evsed, csms, keys={"LocalAuthListEnabled": "true"})
    assert _send(csms, 1, "Full", [_entry("LISTED01")]) == "Accepted"
    # A Full update whose entry lacks idTagInfo cannot be applied (§7.1): Failed, and the
    # list the charger had stays.
    assert _send(csms, 2, "Full", [{"idTag": "LISTED02"}]) == "Failed"
    assert _version(csms) == 1
