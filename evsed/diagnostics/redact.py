"""Secrets out of what leaves the charger in a diagnostics archive or a log upload.

Removed: the password of any URL (``scheme://user:***@host``); in configuration, the value of
every field whose name says key, password, token or secret (``csms.authorization_key``, ...);
in OCPP frames and log lines, the value of a configuration key of that kind
(ChangeConfiguration of AuthorizationKey), any JSON field named for a password, token, secret
or authorization key, private key blocks (PEM), and HTTP Basic credentials.
"""

from __future__ import annotations

import re
from typing import Any

HIDDEN = "***"
_SECRET_NAME = re.compile(r"(?:^|_)(?:key|password|passwd|token|secret)(?:$|_)", re.IGNORECASE)
_URL_PASSWORD = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@\"']*):[^@\s/\"']*@")
_STRING = r'"(?:[^"\\]|\\.)*"'
# {"key": "AuthorizationKey", "value": "..."} in either order (ChangeConfiguration.req).
_KEY_VALUE = re.compile(
    rf'("key"\s*:\s*"[^"]*(?:key|password|passwd|token|secret)[^"]*"\s*,\s*"value"\s*:\s*)'
    rf"{_STRING}",
    re.IGNORECASE,
)
_VALUE_KEY = re.compile(
    rf'("value"\s*:\s*){_STRING}(\s*,\s*"key"\s*:\s*"[^"]*(?:key|password|passwd|token|secret)'
    r'[^"]*")',
    re.IGNORECASE,
)
_SECRET_FIELD = re.compile(
    rf'("[^"]*(?:password|passwd|token|secret|authorization_?key)[^"]*"\s*:\s*){_STRING}',
    re.IGNORECASE,
)
_PRIVATE_KEY = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.DOTALL
)
_BASIC = re.compile(r"(Basic\s+)[A-Za-z0-9+/=]{8,}")


def redact_text(text: str) -> str:
    """``text`` (a log line, an OCPP frame) without the secrets this module knows of."""
    text = _URL_PASSWORD.sub(rf"\1:{HIDDEN}@", text)
    text = _KEY_VALUE.sub(rf'\1"{HIDDEN}"', text)
    text = _VALUE_KEY.sub(rf'\1"{HIDDEN}"\2', text)
    text = _SECRET_FIELD.sub(rf'\1"{HIDDEN}"', text)
    text = _PRIVATE_KEY.sub(f"<private key {HIDDEN}>", text)
    return _BASIC.sub(rf"\1{HIDDEN}", text)


def redact_config(value: Any, name: str = "") -> Any:
    """A configuration as plain data (dicts, lists, scalars) with secret fields emptied to
    ``***`` and URL passwords removed."""
    if isinstance(value, dict):
        return {k: redact_config(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_config(v, name) for v in value]
    if isinstance(value, str):
        if value and _SECRET_NAME.search(name):
            return HIDDEN
        return redact_text(value)
    return value
