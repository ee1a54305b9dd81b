"""What the transport shows of a CSMS URL: the password of its userinfo, never."""

import pytest

from evsed.urls import redact_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("ws://127.0.0.1:9000/ocpp/CP01", "ws://127.0.0.1:9000/ocpp/CP01"),
        (
            "wss://CP01:secret@csms.example.net/ocpp/CP01",
            "wss://CP01:***@csms.example.net/ocpp/CP01",
        ),
        ("wss://CP01:p%40ss@[::1]:443/ocpp/CP01", "wss://CP01:***@[::1]:443/ocpp/CP01"),
        ("wss://:secret@host/ocpp/CP01", "wss://:***@host/ocpp/CP01"),
        ("ws://CP01@host/ocpp/CP01", "ws://CP01@host/ocpp/CP01"),  # no password to hide
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown
