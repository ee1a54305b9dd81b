"""The development CSMS's side of the OCPP 1.6 security profiles: HTTP Basic auth checked per
charge point, and a record of every connection attempt (who, with what credentials, over
which TLS), so that tests can see what the charger presented.

The expected AuthorizationKey of a charge point is the hexadecimal string the CSMS would set
with ChangeConfiguration; the password the charger must send is its bytes. The record keeps
whether the credentials matched, never the password.
"""

from __future__ import annotations

import base64
import binascii
import logging
from http import HTTPStatus
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID
from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

_LOG = logging.getLogger(__name__)
MAX_RECORDS = 500


class ConnectionChecks:
    def __init__(self, auth_keys: dict[str, str] | None = None) -> None:
        self.auth_keys: dict[str, str] = dict(auth_keys or {})  # cp id -> hex key
        self.records: list[dict[str, Any]] = []

    def set_key(self, cp_id: str, key: str | None) -> dict[str, Any]:
        if key is None:
            self.auth_keys.pop(cp_id, None)
        else:
            bytes.fromhex(key)  # ValueError for a key that is not hexadecimal
            self.auth_keys[cp_id] = key
        return {"cp": cp_id, "basic_auth": key is not None}

    def check(
        self, connection: ServerConnection, request: Request, cp_id: str, now: str
    ) -> Response | None:
        """Record the attempt; a 401 answer when Basic auth is expected and does not match."""
        auth = _basic_auth(request.headers.get("Authorization"), cp_id, self.auth_keys.get(cp_id))
        record: dict[str, Any] = {"cp": cp_id, "t": now, "basic_auth": auth}
        record.update(_tls(connection))
        self.records.append(record)
        del self.records[:-MAX_RECORDS]
        if cp_id in self.auth_keys and auth != "ok":
            _LOG.warning("%s refused: Basic auth %s", cp_id, auth)
            return connection.respond(HTTPStatus.UNAUTHORIZED, "Basic auth required\n")
        return None


def _basic_auth(header: str | None, cp_id: str, key: str | None) -> str:
    """ "none" (no header), "ok", "wrong" (bad user, password or encoding)."""
    if header is None:
        return "none"
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic":
        return "wrong"
    try:
        decoded = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return "wrong"
    user, _, password = decoded.partition(b":")
    if key is None:
        return "ok" if user == cp_id.encode() else "wrong"
    return "ok" if user == cp_id.encode() and password == bytes.fromhex(key) else "wrong"


def _tls(connection: ServerConnection) -> dict[str, Any]:
    ssl_object = connection.transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return {"tls": None, "client_cert": None}
    cipher = ssl_object.cipher()
    details: dict[str, Any] = {
        "tls": {"version": ssl_object.version(), "cipher": cipher[0] if cipher else None}
    }
    der = ssl_object.getpeercert(binary_form=True)
    if der is None:
        details["client_cert"] = None
        return details
    cert = x509.load_der_x509_certificate(der)

    def names(oid: x509.ObjectIdentifier) -> list[str]:
        return [str(a.value) for a in cert.subject.get_attributes_for_oid(oid)]

    details["client_cert"] = {
        "cn": names(NameOID.COMMON_NAME),
        "o": names(NameOID.ORGANIZATION_NAME),
        "serial": format(cert.serial_number, "x"),
        "not_after": cert.not_valid_after_utc.isoformat(),
    }
    return details
