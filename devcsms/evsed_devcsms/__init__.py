"""Development CSMS: a small OCPP 1.6J central system for evsed developers and tests.

``python -m evsed_devcsms serve`` runs it; :class:`DevCsms` embeds it in a test.
"""

from evsed_devcsms.client import AdminApiError, AdminClient
from evsed_devcsms.journal import Journal
from evsed_devcsms.server import DevCsms
from evsed_devcsms.state import CsmsSettings

__all__ = ["AdminApiError", "AdminClient", "CsmsSettings", "DevCsms", "Journal"]
