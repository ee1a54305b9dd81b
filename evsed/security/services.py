"""The security parts the daemon builds once and hands to its CSMS client."""

from __future__ import annotations

from dataclasses import dataclass

from evsed.security.certificates import CertificateStore
from evsed.security.connection import ConnectionSecurity
from evsed.security.events import SecurityEvents
from evsed.store.db import Database


@dataclass(frozen=True, slots=True)
class SecurityServices:
    events: SecurityEvents
    connection: ConnectionSecurity
    manufacturer_roots: CertificateStore
    db: Database  # small persisted settings (CpoName)
