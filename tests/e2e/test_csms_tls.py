"""The connection to the CSMS over TLS (wss://) and credentials in the CSMS URL.

wss:// verifies the CSMS certificate against the system trust store, with the hostname checked
(the full OCPP security profiles build on this). The test CA is made here and given to the
daemon the way a system trust store is found (SSL_CERT_FILE). A password in the URL
(``wss://user:password@host/...``, HTTP Basic auth) is never shown: not by ``evsectl status``,
not in the log.
"""

from collections.abc import Callable
from pathlib import Path

from tls_support import TestCa

from evsed_devtools.harness import DevCsms, Evsed, wait_for


def _tls_csms(start_csms: Callable[..., DevCsms], tmp_path: Path, names: list[str]) -> tuple:
    ca = TestCa(tmp_path / "pki")
    server = ca.issue_server("csms", names)
    csms = start_csms("--tls-cert", str(server.cert), "--tls-key", str(server.key))
    assert csms.ws_url.startswith("wss://127.0.0.1:")
    return csms, ca


def test_wss_connects_with_the_system_trust_store_and_the_hostname_checked(
    tmp_path: Path, start_csms: Callable[..., DevCsms], start_evsed: Callable[..., Evsed]
) -> None:
    csms, ca = _tls_csms(start_csms, tmp_path, ["localhost"])
    url = csms.ws_url.replace("127.0.0.1", "localhost")
    evsed = start_evsed(url, env={"SSL_CERT_FILE": str(ca.cert)})
    evsed.wait_registered()
    assert evsed.status()["ocpp"]["connection"] == "connected"
    assert csms.result("ClearCache", {}) == {"status": "Accepted"}


def test_wss_refuses_a_certificate_for_another_host(
    tmp_path: Path, start_csms: Callable[..., DevCsms], start_evsed: Callable[..., Evsed]
) -> None:
    csms, ca = _tls_csms(start_csms, tmp_path, ["csms.example.net"])
    url = csms.ws_url.replace("127.0.0.1", "localhost")
    evsed = start_evsed(url, env={"SSL_CERT_FILE": str(ca.cert)})
    wait_for(lambda: evsed.status()["ocpp"]["last_error"], what="a failed connection")
    assert "certificate" in evsed.status()["ocpp"]["last_error"].lower()
    assert evsed.status()["ocpp"]["registration"] == ""
    assert not csms.calls("CP01")


def test_wss_refuses_a_certificate_no_trusted_ca_signed(
    tmp_path: Path, start_csms: Callable[..., DevCsms], start_evsed: Callable[..., Evsed]
) -> None:
    csms, _ = _tls_csms(start_csms, tmp_path, ["localhost"])
    other = TestCa(tmp_path / "other-pki", "another CA")
    url = csms.ws_url.replace("127.0.0.1", "localhost")
    evsed = start_evsed(url, env={"SSL_CERT_FILE": str(other.cert)})
    wait_for(lambda: evsed.status()["ocpp"]["last_error"], what="a failed connection")
    assert "certificate verify failed" in evsed.status()["ocpp"]["last_error"]
    assert not csms.calls("CP01")


def test_the_password_in_the_csms_url_is_never_shown(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    secret = "s3cr3t-Pa55"
    url = csms.ws_url.replace("ws://", f"ws://CP01:{secret}@")
    evsed = start_evsed(url)
    evsed.wait_registered()
    evsed.sim("network", "down")
    evsed.sim("network", "up")
    evsed.wait_registered()
    wait_for(lambda: evsed.status()["ocpp"]["connection"] == "connected", what="reconnected")
    shown = evsed.status()["ocpp"]["url"]
    assert secret not in shown
    assert shown.startswith("ws://CP01:***@127.0.0.1:") and shown.endswith("/ocpp/CP01")
    text = evsed.ctl("status").stdout
    assert "CP01:***@" in text and secret not in text
    assert "CP01:***@" in evsed.log()
    assert secret not in evsed.log()
