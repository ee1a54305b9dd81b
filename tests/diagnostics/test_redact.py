"""What the diagnostics archive removes (evsed/diagnostics/redact.py)."""

from evsed.diagnostics.redact import redact_config, redact_text
from evsed.upload import redact_url, target_url

KEY = "00112233445566778899AABBCCDDEEFF"


def test_an_authorization_key_in_a_change_configuration_frame_is_removed_in_either_order() -> None:
    for frame in (
        f'[2,"m1","ChangeConfiguration",{{"key":"AuthorizationKey","value":"{KEY}"}}]',
        f'[2,"m1","ChangeConfiguration",{{"value": "{KEY}", "key": "authorizationkey"}}]',
    ):
        redacted = redact_text(frame)
        assert KEY not in redacted and "***" in redacted, redacted
    other = '[2,"m2","ChangeConfiguration",{"key":"HeartbeatInterval","value":"60"}]'
    assert redact_text(other) == other


def test_url_passwords_secret_fields_and_private_keys_are_removed() -> None:
    text = (
        'GetLog to ftp://logs:pa55@127.0.0.1/x/ {"password": "hunter2", "token": "t0k"}'
        " -----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY----- Basic ZXZzZWQ6c2VjcmV0"
    )
    redacted = redact_text(text)
    for secret in ("pa55", "hunter2", "t0k", "MIIB", "ZXZzZWQ6c2VjcmV0"):
        assert secret not in redacted, secret
    assert "ftp://logs:***@127.0.0.1/x/" in redacted


def test_config_fields_named_for_secrets_are_hidden_and_others_kept() -> None:
    config = {
        "csms": {"url": "wss://cp:pw@csms/ocpp", "authorization_key": KEY, "ca_file": "/ca.pem"},
        "ota": {"keyring": "/etc/rauc/ca.cert.pem", "casync_store_url": "http://u:p@h/s"},
        "connectors": [{"id": 1, "client_key": "/k.pem"}],
    }
    redacted = redact_config(config)
    assert redacted["csms"] == {
        "url": "wss://cp:***@csms/ocpp",
        "authorization_key": "***",
        "ca_file": "/ca.pem",
    }
    assert redacted["ota"] == {
        "keyring": "/etc/rauc/ca.cert.pem",
        "casync_store_url": "http://u:***@h/s",
    }
    assert redacted["connectors"] == [{"id": 1, "client_key": "***"}]


def test_upload_urls_are_logged_without_password_and_name_the_file_in_the_directory() -> None:
    assert redact_url("ftp://u:secret@h:21/d/") == "ftp://u:***@h:21/d/"
    assert target_url("http://h/up", "a b.tar.gz") == "http://h/up/a%20b.tar.gz"
    assert target_url("ftp://h/up/", "x.log") == "ftp://h/up/x.log"
