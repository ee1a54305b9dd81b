"""Views of the OCPP 1.6 configuration keys for the services that read them."""

from __future__ import annotations

import math

from evsed.config import Config
from evsed.ocpp.v16.configuration import ConfigurationKeys


class KeyAuthSettings:
    """:class:`evsed.ocpp.v16.authorization.AuthSettings` read live from the keys."""

    def __init__(self, keys: ConfigurationKeys) -> None:
        self._keys = keys

    @property
    def authorization_cache_enabled(self) -> bool:
        return self._keys.get_bool("AuthorizationCacheEnabled")

    @property
    def local_authorize_offline(self) -> bool:
        return self._keys.get_bool("LocalAuthorizeOffline")

    @property
    def local_pre_authorize(self) -> bool:
        return self._keys.get_bool("LocalPreAuthorize")

    @property
    def allow_offline_tx_for_unknown_id(self) -> bool:
        return self._keys.get_bool("AllowOfflineTxForUnknownId")

    @property
    def local_auth_list_enabled(self) -> bool:
        return self._keys.get_bool("LocalAuthListEnabled")

    @property
    def local_auth_list_max_length(self) -> int:
        return self._keys.get_int("LocalAuthListMaxLength")

    @property
    def send_local_list_max_length(self) -> int:
        return self._keys.get_int("SendLocalListMaxLength")


def key_defaults(config: Config) -> dict[str, str]:
    """Keys whose starting value comes from the TOML config (a CSMS change overrides it)."""
    return {
        "HeartbeatInterval": str(config.csms.heartbeat_interval_s),
        "ConnectionTimeOut": str(max(1, round(config.charging.connection_timeout_s))),
        "MeterValueSampleInterval": str(math.ceil(config.charging.meter_values_interval_s)),
        "StopTransactionOnEVSideDisconnect": str(config.charging.stop_on_ev_disconnect).lower(),
        "WebSocketPingInterval": str(math.ceil(config.csms.ping_interval_s)),
        "ReserveConnectorZeroSupported": str(config.reservations.connector_zero).lower(),
    }
