"""OCA OCPP 1.6 Core test cases for DataTransfer (TC_062 from the CSMS, TC_064 to it) and the
vendor-extension registry: an unknown vendorId is UnknownVendorId, an unknown messageId of a
known vendor UnknownMessageId (§5.6)."""

from collections.abc import Callable

from oca_support import booted, labels, mark, since

from evsed_devtools.harness import DevCsms, Evsed

COSTMSG = "org.openchargealliance.costmsg"  # the one vendor extension built in (pricing)


def test_tc_062_data_transfer_to_a_charge_point(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    booted(start_evsed, csms)
    start = mark(csms)
    request = {"vendorId": "org.openchargealliance.octt", "messageId": "Test", "data": "x"}
    answer = csms.result("DataTransfer", request)
    assert answer["status"] == "UnknownVendorId"
    assert "data" not in answer
    assert labels(since(csms, start)) == []


def test_a_known_vendor_with_an_unknown_or_missing_message_id(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    booted(start_evsed, csms)
    unknown = {"vendorId": COSTMSG, "messageId": "NoSuchMessage", "data": "{}"}
    assert csms.result("DataTransfer", unknown)["status"] == "UnknownMessageId"
    assert csms.result("DataTransfer", {"vendorId": COSTMSG})["status"] == "UnknownMessageId"
    # vendorId and messageId are CiStrings: case does not matter.
    shouted = {"vendorId": COSTMSG.upper(), "messageId": "finalcost", "data": "not json"}
    assert csms.result("DataTransfer", shouted)["status"] == "Rejected"


def test_tc_064_data_transfer_to_the_central_system(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = booted(start_evsed, csms)
    sent = evsed.ctl("data-transfer", "com.example.evsed", "--message-id", "Hello", "--data", "42")
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.strip() == "Accepted"
    [call] = csms.calls("CP01", "DataTransfer")
    assert call["payload"] == {"vendorId": "com.example.evsed", "messageId": "Hello", "data": "42"}

    csms.answer("DataTransfer", "error", code="NotSupported", times=1)
    refused = evsed.ctl("data-transfer", "com.example.evsed")
    assert refused.returncode != 0 and "no answer from the CSMS" in refused.stderr
