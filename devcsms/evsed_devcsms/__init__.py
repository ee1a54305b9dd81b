"""Development CSMS: a small OCPP 1.6J central system for evsed developers and tests.

``python -m evsed.devcsms serve`` runs it; :class:`DevCsms` embeds it in a test.
"""

from evsed.devcsms.client import AdminApiError, AdminClient
from evsed.devcsms.journal import Journal
from evsed.devcsms.server import DevCsms
from evsed.devcsms.state import CsmsSettings

__all__ = ["AdminApiError", "AdminClient", "CsmsSettings", "DevCsms", "Journal"]
