"""The OCPP 1.6 Security Whitepaper (edition 3), one test per OCA security test case
(TC_073 to TC_087), the daemon as a process against the dev CSMS on 127.0.0.1.

TC_080, TC_081 and TC_082 (signed firmware updates) need the RAUC sandbox and live in
tests/ota/test_ota_e2e.py; TC_079 (GetLog) lives with the upload tests. Every CSMS here checks
what the charger presented: Basic auth, the TLS version and suite, the client certificate.
"""

from __future__ import annotations

import datetime
import json
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from security_support import (
    CPO,
    KEY,
    SERIAL,
    Pki,
    connection_mark,
    connections,
    hash_data,
    new_connection,
    profile_csms,
    profile_evsed,
    security_events,
)
from tls_support import TestCa

from evsed_devtools.harness import PYTHON, DevCsms, Evsed, wait_for, write_config

KEY2 = "00112233445566778899AABBCCDDEEFF00112233"  # 20 bytes
KEY3 = "A1B2C3D4E5F60718293A4B5C6D7E8F90"  # 16 bytes


def _change(csms: DevCsms, key: str, value: str) -> str:
    status: str = csms.result("ChangeConfiguration", {"key": key, "value": value})["status"]
    return status


def _install(csms: DevCsms, kind: str, pem: str) -> str:
    payload = {"certificateType": kind, "certificate": pem}
    status: str = csms.result("InstallCertificate", payload)["status"]
    return status


def _profile(csms: DevCsms) -> str:
    answer = csms.result("GetConfiguration", {"key": ["SecurityProfile"]})
    value: str = answer["configurationKey"][0]["value"]
    return value


def _charger(
    start_csms: Callable[..., DevCsms],
    start_evsed: Callable[..., Evsed],
    profile: int,
    pki: Pki | None,
) -> tuple[DevCsms, Evsed]:
    """A CSMS for ``profile`` and a charger provisioned for it, registered."""
    csms = profile_csms(start_csms, profile, pki)
    evsed = profile_evsed(start_evsed, csms, profile, pki)
    evsed.wait_registered()
    return csms, evsed


def _requested_csr(csms: DevCsms) -> str:
    """ExtendedTriggerMessage SignChargePointCertificate, and the CSR that follows."""
    payload = {"requestedMessage": "SignChargePointCertificate"}
    assert csms.result("ExtendedTriggerMessage", payload) == {"status": "Accepted"}
    csr: str = csms.wait_for_calls("SignCertificate")[-1]["payload"]["csr"]
    return csr


def _serial(pem: str | bytes) -> str:
    data = pem.encode("ascii") if isinstance(pem, str) else pem
    return format(x509.load_pem_x509_certificate(data).serial_number, "x")


def _secret_nowhere(evsed: Evsed, csms: DevCsms, *secrets: str) -> None:
    """No frame the charger sent, no log line, no ``evsectl status`` holds a secret."""
    sent = json.dumps([m for m in csms.messages("CP01") if m["dir"] == "in"]).upper()
    shown = (evsed.ctl("status").stdout + evsed.ctl("status", "--json").stdout).upper()
    logged = evsed.log().upper()
    for secret in secrets:
        assert secret.upper() not in sent
        assert secret.upper() not in shown
        assert secret.upper() not in logged


def test_tc_085_basic_authentication_and_the_key_is_never_shown(
    start_csms: Callable[..., DevCsms], start_evsed: Callable[..., Evsed]
) -> None:
    csms, evsed = _charger(start_csms, start_evsed, 1, None)
    attempt = connections(csms)[-1]
    assert attempt["basic_auth"] == "ok" and attempt["tls"] is None
    # Write-only: not listed, and unknown when asked for by name.
    listed = csms.result("GetConfiguration", {})["configurationKey"]
    assert "AuthorizationKey" not in {k["key"] for k in listed}
    assert {"SecurityProfile", "CpoName"} <= {k["key"] for k in listed}
    asked = csms.result("GetConfiguration", {"key": ["AuthorizationKey"]})
    assert asked.get("configurationKey", []) == [] and asked["unknownKey"] == ["AuthorizationKey"]
    assert evsed.status()["ocpp"]["security_profile"] == 1
    _secret_nowhere(evsed, csms, KEY)


def test_tc_073_update_charge_point_password_for_basic_authentication(
    start_csms: Callable[..., DevCsms], start_evsed: Callable[..., Evsed]
) -> None:
    csms, evsed = _charger(start_csms, start_evsed, 1, None)
    for new_key in (KEY2, KEY3):
        before = connection_mark(csms)
        csms.api("/api/auth-keys", {"cp": "CP01", "key": new_key})
        assert _change(csms, "AuthorizationKey", new_key) == "Accepted"
        # It disconnects and comes back with the new password.
        assert new_connection(csms, before, "reconnected with the new key")["basic_auth"] == "ok"
        wait_for(lambda: evsed.status()["ocpp"]["connection"] == "connected", what="online")
    # Not 16 to 20 bytes in hex: Rejected, and the connection stays as it is.
    before = len(connections(csms))
    for bad in ("1234", KEY2 + "00", "not hexadecimal at all, no"):
        assert _change(csms, "AuthorizationKey", bad) == "Rejected"
    time.sleep(1.0)
    assert len(connections(csms)) == before
    assert evsed.status()["ocpp"]["connection"] == "connected"
    assert "ReconfigurationOfSecurityParameters" in [
        e["type"] for e in json.loads(evsed.ctl("security-log", "--json").stdout)
    ]
    # The CSMS sent the keys; the charger never repeats one, logs one or shows one.
    _secret_nowhere(evsed, csms, KEY2, KEY3)
    # The key it keeps is stored for the daemon alone.
    security = Path(evsed.config).parent / "state" / "security"
    assert stat.S_IMODE(security.stat().st_mode) == 0o700
    files = [p for p in security.iterdir() if p.is_file()]
    assert files and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in files)


def test_tc_086_tls_with_a_valid_server_certificate(
    tmp_path: Path, start_csms: Callable[..., DevCsms], start_evsed: Callable[..., Evsed]
) -> None:
    pki = Pki.make(tmp_path / "pki")
    csms, evsed = _charger(start_csms, start_evsed, 2, pki)
    attempt = connections(csms)[-1]
    assert attempt["basic_auth"] == "ok"
    assert attempt["tls"]["version"] in ("TLSv1.2", "TLSv1.3")
    assert attempt["client_cert"] is None
    assert evsed.status()["ocpp"]["url"].startswith("wss://localhost:")
    _secret_nowhere(evsed, csms, KEY)


def test_tc_087_tls_with_a_valid_client_certificate(
    tmp_path: Path, start_csms: Callable[..., DevCsms], start_evsed: Callable[..., Evsed]
) -> None:
    pki = Pki.make(tmp_path / "pki")
    csms, _ = _charger(start_csms, start_evsed, 3, pki)
    attempt = connections(csms)[-1]
    assert attempt["client_cert"]["cn"] == [SERIAL] and attempt["client_cert"]["o"] == [CPO]
    assert attempt["tls"]["version"] in ("TLSv1.2", "TLSv1.3")
    assert _profile(csms) == "3"


def test_tc_074_update_charge_point_certificate_by_request_of_the_csms(
    tmp_path: Path, start_csms: Callable[..., DevCsms], start_evsed: Callable[..., Evsed]
) -> None:
    pki = Pki.make(tmp_path / "pki")
    csms, evsed = _charger(start_csms, start_evsed, 3, pki)
    csr_pem = _requested_csr(csms)
    request = x509.load_pem_x509_csr(csr_pem.encode("ascii"))
    assert request.is_signature_valid
    subject = request.subject
    assert [a.value for a in subject.get_attributes_for_oid(NameOID.COMMON_NAME)] == [SERIAL]
    assert [a.value for a in subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == [CPO]
    # The private key stays in the state directory: no frame carries one.
    assert "PRIVATE KEY" not in json.dumps(csms.messages("CP01"))
    signed = pki.ca.sign_csr(csr_pem, days=90)
    before = connection_mark(csms)
    assert csms.result("CertificateSigned", {"certificateChain": signed}) == {"status": "Accepted"}
    # It reconnects with the new certificate.
    serial = _serial(signed)
    attempt = new_connection(csms, before, "reconnected with the new certificate")
    assert attempt["client_cert"]["serial"] == serial
    wait_for(lambda: evsed.status()["ocpp"]["connection"] == "connected", what="online")
    # And keeps using it after a restart.
    evsed.stop()
    before = connection_mark(csms)
    evsed = Evsed.launch(evsed.config, evsed.log_path)
    try:
        assert new_connection(csms, before)["client_cert"]["serial"] == serial
    finally:
        assert evsed.stop() == 0


def test_a_client_certificate_near_its_expiry_is_renewed_ahead_of_it(
    tmp_path: Path, start_csms: Callable[..., DevCsms], start_evsed: Callable[..., Evsed]
) -> None:
    pki = Pki.make(tmp_path / "pki")
    pki.client = pki.ca.issue_client("soon", SERIAL, CPO, days=10)  # inside the 30-day margin
    csms, _ = _charger(start_csms, start_evsed, 3, pki)
    # Nobody asked: the charger requests a new certificate itself.
    csr_pem = csms.wait_for_calls("SignCertificate")[-1]["payload"]["csr"]
    signed = pki.ca.sign_csr(csr_pem, days=90)
    before = connection_mark(csms)
    answer = csms.result("CertificateSigned", {"certificateChain": signed})
    assert answer == {"status": "Accepted"}
    serial = _serial(signed)
    assert new_connection(csms, before)["client_cert"]["serial"] == serial
    time.sleep(3.0)
    assert len(csms.calls("CP01", "SignCertificate")) == 1


def test_tc_077_invalid_charge_point_certificate_security_event(
    tmp_path: Path, start_csms: Callable[..., DevCsms], start_evsed: Callable[..., Evsed]
) -> None:
    pki = Pki.make(tmp_path / "pki")
    csms, evsed = _charger(start_csms, start_evsed, 3, pki)
    csr_pem = _requested_csr(csms)
    other = TestCa(tmp_path / "other", "a CA the charger does not trust")
    for chain in (other.sign_csr(csr_pem), "-----BEGIN CERTIFICATE-----\nnot one\n"):
        answer = csms.result("CertificateSigned", {"certificateChain": chain})
        assert answer == {"status": "Rejected"}
    wait_for(
        lambda: security_events(csms).count("InvalidChargePointCertificate") == 2,
        what="two InvalidChargePointCertificate events",
    )
    # The certificate in use is unchanged: a reconnect still presents the first one.
    before = connection_mark(csms)
    evsed.sim("network", "down")
    evsed.sim("network", "up")
    first = _serial(pki.client.cert.read_bytes())
    assert new_connection(csms, before)["client_cert"]["serial"] == first


def test_tc_075_1_install_a_manufacturer_root_certificate(
    tmp_path: Path, csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = start_evsed(csms.ws_url, ota={"enabled": False})
    evsed.wait_registered()
    root = TestCa(tmp_path / "maker", "charger maker root")
    assert _install(csms, "ManufacturerRootCertificate", root.pem) == "Accepted"
    answer = csms.result(
        "GetInstalledCertificateIds", {"certificateType": "ManufacturerRootCertificate"}
    )
    assert answer["status"] == "Accepted"
    assert hash_data(root.pem) in answer["certificateHashData"]
    # The other kind is a separate store.
    other = csms.result(
        "GetInstalledCertificateIds", {"certificateType": "CentralSystemRootCertificate"}
    )
    assert other["status"] == "NotFound"


def test_tc_075_2_install_a_central_system_root_certificate(
    tmp_path: Path, csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = start_evsed(csms.ws_url)
    evsed.wait_registered()
    root = TestCa(tmp_path / "csms-root", "CSMS root")
    assert _install(csms, "CentralSystemRootCertificate", root.pem) == "Accepted"
    answer = csms.result(
        "GetInstalledCertificateIds", {"certificateType": "CentralSystemRootCertificate"}
    )
    assert answer["status"] == "Accepted"
    assert answer["certificateHashData"] == [hash_data(root.pem)]
    # Kept across a restart.
    assert evsed.stop() == 0
    evsed = Evsed.launch(evsed.config, evsed.log_path)
    try:
        evsed.wait_registered()
        again = csms.result(
            "GetInstalledCertificateIds", {"certificateType": "CentralSystemRootCertificate"}
        )
        assert again["certificateHashData"] == [hash_data(root.pem)]
    finally:
        assert evsed.stop() == 0


def test_tc_076_delete_a_specific_certificate(
    tmp_path: Path, start_csms: Callable[..., DevCsms], start_evsed: Callable[..., Evsed]
) -> None:
    pki = Pki.make(tmp_path / "pki")
    csms, evsed = _charger(start_csms, start_evsed, 2, pki)
    spare = TestCa(tmp_path / "spare", "a second CSMS root")
    assert _install(csms, "CentralSystemRootCertificate", spare.pem) == "Accepted"
    listed = csms.result(
        "GetInstalledCertificateIds", {"certificateType": "CentralSystemRootCertificate"}
    )["certificateHashData"]
    assert hash_data(spare.pem) in listed and hash_data(pki.ca.pem) in listed
    # Named with another hash algorithm than the one it was listed with.
    spare_384 = hash_data(spare.pem, "SHA384")
    answer = csms.result("DeleteCertificate", {"certificateHashData": spare_384})
    assert answer == {"status": "Accepted"}
    assert csms.result("DeleteCertificate", {"certificateHashData": spare_384}) == {
        "status": "NotFound"
    }
    # The root the connection stands on cannot be deleted.
    in_use = csms.result("DeleteCertificate", {"certificateHashData": hash_data(pki.ca.pem)})
    assert in_use == {"status": "Failed"}
    left = csms.result(
        "GetInstalledCertificateIds", {"certificateType": "CentralSystemRootCertificate"}
    )["certificateHashData"]
    assert left == [hash_data(pki.ca.pem)]
    assert evsed.status()["ocpp"]["connection"] == "connected"


def test_tc_078_invalid_central_system_certificate_security_event(
    tmp_path: Path, csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = start_evsed(csms.ws_url)
    evsed.wait_registered()
    past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)
    expired = TestCa(tmp_path / "expired", "an expired root", not_after=past)
    not_a_ca = TestCa(tmp_path / "leaf", "not a CA", ca=False)
    for pem in (expired.pem, not_a_ca.pem, "-----BEGIN CERTIFICATE-----\ngarbage\n"):
        assert _install(csms, "CentralSystemRootCertificate", pem) == "Rejected"
    wait_for(
        lambda: security_events(csms).count("InvalidCentralSystemCertificate") == 3,
        what="three InvalidCentralSystemCertificate events",
    )
    answer = csms.result(
        "GetInstalledCertificateIds", {"certificateType": "CentralSystemRootCertificate"}
    )
    assert answer["status"] == "NotFound"
    assert evsed.status()["ocpp"]["connection"] == "connected"


def test_tc_083_upgrade_security_profile_from_1_to_2(
    tmp_path: Path, start_csms: Callable[..., DevCsms], start_evsed: Callable[..., Evsed]
) -> None:
    pki = Pki.make(tmp_path / "pki")
    csms = profile_csms(start_csms, 1, None)
    plain = csms.args
    # Slow retries: the CSMS restarts with TLS before the charger gives the new profile up.
    evsed = profile_evsed(start_evsed, csms, 1, None, reconnect_min_s=2.0, reconnect_max_s=3.0)
    evsed.wait_registered()
    assert _install(csms, "CentralSystemRootCertificate", pki.ca.pem) == "Accepted"
    assert _change(csms, "SecurityProfile", "2") == "Accepted"
    csms.restart(args=(*plain, *pki.tls_args()))
    attempt = new_connection(csms, (0, 0), "a connection over TLS")
    assert attempt["tls"] is not None and attempt["basic_auth"] == "ok"
    wait_for(lambda: evsed.status()["ocpp"]["connection"] == "connected", what="online")
    assert _profile(csms) == "2"
    assert evsed.status()["ocpp"]["url"].startswith("wss://localhost:")
    # Profile 2 has connected: the charger never goes back to profile 1 (A05.FR.09).
    csms.restart(args=plain)
    time.sleep(8.0)
    assert connections(csms) == []
    assert evsed.status()["ocpp"]["connection"] != "connected"
    csms.restart(args=(*plain, *pki.tls_args()))
    assert new_connection(csms, (0, 0), "back over TLS")["tls"] is not None


def test_a_new_profile_that_cannot_connect_falls_back_to_the_last_working_one(
    tmp_path: Path, start_csms: Callable[..., DevCsms], start_evsed: Callable[..., Evsed]
) -> None:
    pki = Pki.make(tmp_path / "pki")
    csms, evsed = _charger(start_csms, start_evsed, 1, None)
    assert _install(csms, "CentralSystemRootCertificate", pki.ca.pem) == "Accepted"
    before = connection_mark(csms)
    # The CSMS never offers TLS: profile 2 cannot connect.
    assert _change(csms, "SecurityProfile", "2") == "Accepted"
    attempt = new_connection(csms, before, "back on profile 1")
    assert attempt["tls"] is None and attempt["basic_auth"] == "ok"
    wait_for(lambda: evsed.status()["ocpp"]["connection"] == "connected", what="online")
    assert _profile(csms) == "1"
    logged = [e["type"] for e in json.loads(evsed.ctl("security-log", "--json").stdout)]
    assert "SecurityProfileFallback" in logged


def test_tc_084_downgrade_security_profile_is_rejected(
    tmp_path: Path, start_csms: Callable[..., DevCsms], start_evsed: Callable[..., Evsed]
) -> None:
    pki = Pki.make(tmp_path / "pki")
    csms, _ = _charger(start_csms, start_evsed, 2, pki)
    before = len(connections(csms))
    for value in ("1", "0", "2", "-1", "two"):
        assert _change(csms, "SecurityProfile", value) == "Rejected"
    # 3 needs a charge point certificate, which this charger does not have (A05.FR.04).
    assert _change(csms, "SecurityProfile", "3") == "Rejected"
    time.sleep(1.0)
    assert len(connections(csms)) == before
    assert _profile(csms) == "2"


def test_profile_prerequisites_are_checked_before_a_change_is_accepted(
    start_csms: Callable[..., DevCsms], start_evsed: Callable[..., Evsed]
) -> None:
    csms, _ = _charger(start_csms, start_evsed, 1, None)
    # No CentralSystemRootCertificate installed (A05.FR.03), no client certificate (A05.FR.04).
    assert _change(csms, "SecurityProfile", "2") == "Rejected"
    assert _change(csms, "SecurityProfile", "3") == "Rejected"
    assert _profile(csms) == "1"
    # Without a CpoName no certificate request can be made: Rejected.
    assert _change(csms, "CpoName", "") == "Rejected"
    assert _change(csms, "CpoName", "Another CPO") == "Accepted"
    values = csms.result("GetConfiguration", {"key": ["CpoName"]})["configurationKey"]
    assert values == [{"key": "CpoName", "readonly": False, "value": "Another CPO"}]


def test_a_wrong_server_certificate_blocks_the_connection_and_is_reported_once_online(
    tmp_path: Path, start_csms: Callable[..., DevCsms], start_evsed: Callable[..., Evsed]
) -> None:
    pki = Pki.make(tmp_path / "pki")
    past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1)
    expired = pki.ca.issue_server(
        "expired", ["localhost"], not_before=past - datetime.timedelta(days=2), not_after=past
    )
    args = ("--auth-key", f"CP01={KEY}", "--tls-cert", str(expired.cert))
    csms = start_csms(*args, "--tls-key", str(expired.key))
    evsed = profile_evsed(start_evsed, csms, 2, pki)
    wait_for(lambda: evsed.status()["ocpp"]["last_error"], what="a refused certificate")
    time.sleep(2.0)
    assert connections(csms) == [] and csms.calls("CP01") == []
    csms.restart(args=("--auth-key", f"CP01={KEY}", *pki.tls_args()))
    evsed.wait_registered(timeout=30)
    wait_for(lambda: "InvalidCentralSystemCertificate" in security_events(csms), what="event")
    time.sleep(1.0)
    # Once, though the charger tried many times (rate-limited).
    assert security_events(csms).count("InvalidCentralSystemCertificate") == 1


@pytest.mark.parametrize(
    ("offer", "event"),
    [
        (("--tls-max-version", "1.1"), "InvalidTLSVersion"),
        (
            ("--tls-max-version", "1.2", "--tls-ciphers", "ECDHE-ECDSA-AES128-SHA"),
            "InvalidTLSCipherSuite",
        ),
    ],
    ids=["only-tls-1.1", "only-weak-suites"],
)
def test_a_csms_with_old_tls_is_refused_and_reported(
    tmp_path: Path,
    start_csms: Callable[..., DevCsms],
    start_evsed: Callable[..., Evsed],
    offer: tuple[str, ...],
    event: str,
) -> None:
    pki = Pki.make(tmp_path / "pki")
    csms = profile_csms(start_csms, 2, pki, *offer)
    evsed = profile_evsed(start_evsed, csms, 2, pki)
    wait_for(lambda: evsed.status()["ocpp"]["last_error"], what="a refused handshake")
    assert connections(csms) == []
    csms.restart(args=("--auth-key", f"CP01={KEY}", *pki.tls_args()))
    evsed.wait_registered(timeout=30)
    wait_for(lambda: event in security_events(csms), what=event)


def test_a_wrong_key_is_reported_as_failed_to_authenticate(
    start_csms: Callable[..., DevCsms], start_evsed: Callable[..., Evsed]
) -> None:
    csms = profile_csms(start_csms, 1, None)
    csms.api("/api/auth-keys", {"cp": "CP01", "key": KEY2})
    evsed = profile_evsed(start_evsed, csms, 1, None)
    wait_for(lambda: connections(csms), what="an attempt")
    assert connections(csms)[0]["basic_auth"] == "wrong"
    time.sleep(1.0)
    assert csms.calls("CP01") == []
    csms.api("/api/auth-keys", {"cp": "CP01", "key": KEY})
    evsed.wait_registered(timeout=30)
    wait_for(lambda: "FailedToAuthenticateAtCentralSystem" in security_events(csms), what="event")


def test_oversized_malformed_and_replayed_frames_are_refused_and_counted(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = start_evsed(csms.ws_url, csms={"max_message_bytes": 4096})
    evsed.wait_registered()
    big = json.dumps([2, "big-1", "DataTransfer", {"vendorId": "x", "data": "y" * 8000}])
    answer = csms.send_raw(big)
    assert answer["error"]["code"] == "FormationViolation", answer
    for garbage in ('[2, "g-1", "Reset", {"type": 7}]', '[2, "g-2", "NoSuchAction", {}]'):
        assert "error" in csms.send_raw(garbage)
    wait_for(lambda: "InvalidMessages" in security_events(csms), what="InvalidMessages")
    # The same message id again, with a different payload: a replay.
    first = '[2, "r-1", "GetConfiguration", {"key": ["HeartbeatInterval"]}]'
    assert "result" in csms.send_raw(first)
    replay = csms.send_raw('[2, "r-1", "GetConfiguration", {"key": ["SecurityProfile"]}]')
    assert "error" in replay
    wait_for(lambda: "AttemptedReplayAttacks" in security_events(csms), what="replay event")
    time.sleep(0.5)
    for _ in range(5):
        csms.send_raw(big)
    time.sleep(1.0)
    # Rate-limited: one event for many bad frames.
    assert security_events(csms).count("InvalidMessages") == 1
    assert evsed.status()["ocpp"]["connection"] == "connected"
    assert csms.result("ClearCache", {}) == {"status": "Accepted"}


def test_evsectl_security_log_lists_and_clears(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = start_evsed(csms.ws_url)
    evsed.wait_registered()
    listed = json.loads(evsed.ctl("security-log", "--json").stdout)
    assert "StartupOfTheDevice" in [e["type"] for e in listed]
    assert "StartupOfTheDevice" in evsed.ctl("security-log").stdout
    cleared = evsed.ctl("security-log", "--clear")
    assert cleared.returncode == 0 and "cleared" in cleared.stdout
    after = json.loads(evsed.ctl("security-log", "--json").stdout)
    assert [e["type"] for e in after] == ["SecurityLogWasCleared"]
    wait_for(lambda: "SecurityLogWasCleared" in security_events(csms), what="event")


def _exit_of(workdir: Path, url: str, **csms_keys: object) -> tuple[int, str]:
    workdir.mkdir()
    config = write_config(workdir, url, "CP01", csms=dict(csms_keys))
    done = subprocess.run(
        [PYTHON, "-m", "evsed", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return done.returncode, done.stderr


def test_security_settings_that_cannot_work_are_configuration_errors(tmp_path: Path) -> None:
    plain, secure = "ws://localhost:9/ocpp", "wss://localhost:9/ocpp"
    root = str(TestCa(tmp_path / "pki").cert)
    cases = [
        (plain, {"security_profile": 2, "authorization_key": KEY, "ca_file": "x"}, "csms.url"),
        (plain, {"security_profile": 1, "authorization_key": KEY}, "allow_unencrypted"),
        (secure, {"security_profile": 1}, "csms.authorization_key"),
        (secure, {"security_profile": 2, "authorization_key": KEY}, "csms.ca_file"),
        (secure, {"security_profile": 3, "ca_file": root}, "csms.client_cert"),
        (secure, {"security_profile": 1, "authorization_key": "12"}, "csms.authorization_key"),
    ]
    for number, (url, keys, named) in enumerate(cases):
        code, stderr = _exit_of(tmp_path / str(number), url, **keys)
        assert code == 78, (keys, stderr)
        assert named in stderr, (keys, stderr)
        assert KEY not in stderr


def test_opening_the_enclosure_is_a_tamper_event(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = start_evsed(csms.ws_url, charger={"tamper_pin": 26})
    evsed.wait_registered()
    assert "TamperDetectionActivated" not in security_events(csms)
    assert evsed.sim("tamper", "open") == "enclosure open"
    wait_for(lambda: "TamperDetectionActivated" in security_events(csms), what="tamper event")
    evsed.sim("tamper", "closed")
    evsed.sim("tamper", "open")
    wait_for(lambda: security_events(csms).count("TamperDetectionActivated") == 2, what="second")
    assert evsed.status()["ocpp"]["connection"] == "connected"


def test_a_charger_without_a_tamper_switch_refuses_the_sim_verb(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = start_evsed(csms.ws_url)
    refused = evsed.ctl("sim", "tamper", "open")
    assert refused.returncode == 1 and "charger.tamper_pin" in refused.stderr


def test_a_factory_can_provision_the_key_and_certificate_as_files_in_the_state_directory(
    tmp_path: Path, start_csms: Callable[..., DevCsms], start_evsed: Callable[..., Evsed]
) -> None:
    pki = Pki.make(tmp_path / "pki")
    csms = profile_csms(start_csms, 3, pki)
    security = tmp_path / "state" / "security"
    security.mkdir(parents=True, mode=0o700)
    for name, source in (("client.pem", pki.client.cert), ("client.key", pki.client.key)):
        (security / name).write_bytes(source.read_bytes())
        (security / name).chmod(0o600)
    evsed = profile_evsed(start_evsed, csms, 3, pki, client_cert="", client_key="")
    evsed.wait_registered()
    assert connections(csms)[-1]["client_cert"]["cn"] == [SERIAL]


def test_the_authorization_key_can_be_provisioned_as_a_file(
    tmp_path: Path, start_csms: Callable[..., DevCsms], start_evsed: Callable[..., Evsed]
) -> None:
    csms = profile_csms(start_csms, 1, None)
    security = tmp_path / "state" / "security"
    security.mkdir(parents=True, mode=0o700)
    (security / "authorization-key").write_text(KEY + "\n")
    (security / "authorization-key").chmod(0o600)
    evsed = profile_evsed(start_evsed, csms, 1, None, authorization_key="")
    evsed.wait_registered()
    assert connections(csms)[-1]["basic_auth"] == "ok"
    _secret_nowhere(evsed, csms, KEY)


def test_frames_are_read_and_measured_at_the_production_log_level(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    """The tests run the daemon at DEBUG; a charger runs at INFO, where no frame is logged."""
    evsed = start_evsed(csms.ws_url, logging={"level": "INFO"}, csms={"max_message_bytes": 4096})
    evsed.wait_registered()
    assert csms.result("ClearCache", {}) == {"status": "Accepted"}
    big = json.dumps([2, "big-info", "DataTransfer", {"vendorId": "x", "data": "y" * 8000}])
    assert csms.send_raw(big)["error"]["code"] == "FormationViolation"
    assert evsed.status()["ocpp"]["connection"] == "connected"
    assert "<- [" not in evsed.log()
