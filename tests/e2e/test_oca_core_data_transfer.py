"""OCA OCPP 1.6 Core test case: DataTransfer from the CSMS (TC_062).

TC_064 (DataTransfer from the Charge Point to the Central System) is not run: the daemon has no
vendor-specific data to send, so it never sends DataTransfer.req.
"""

from collections.abc import Callable

from oca_support import booted, labels, mark, since

from evsed_devtools.harness import DevCsms, Evsed


def test_tc_062_data_transfer_to_a_charge_point(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    booted(start_evsed, csms)
    start = mark(csms)
    request = {"vendorId": "org.openchargealliance.octt", "messageId": "Test", "data": "x"}
    answer = csms.result("DataTransfer", request)
    # Rejected, UnknownMessageId or UnknownVendorId: no vendor extension is accepted.
    assert answer["status"] == "UnknownVendorId"
    assert "data" not in answer
    assert labels(since(csms, start)) == []
