"""URLs as they may be shown: in logs, in ``evsectl status``, in a diagnostics archive.

A URL's userinfo may hold a password (``ftp://user:password@host/``, HTTP Basic auth for the
CSMS) and its query a signature (presigned links): both are replaced by ``***``.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def redact_url(url: str) -> str:
    """``url`` safe for logs: password and query string replaced by ``***``, no fragment."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid URL>"
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if at and ":" in userinfo:
        netloc = f"{userinfo.partition(':')[0]}:***@{hostport}"
    else:
        netloc = parts.netloc
    return urlunsplit((parts.scheme, netloc, parts.path, "***" if parts.query else "", ""))
