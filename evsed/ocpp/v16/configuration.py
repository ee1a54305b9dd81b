"""OCPP 1.6 configuration keys: GetConfiguration (§5.8), ChangeConfiguration (§5.3), §9 keys.

The key table, value grammar and which keys steer the daemon are in
:mod:`evsed.ocpp.v16.configuration_keys`. A value comes from, in rising precedence: the
built-in default, the daemon's ``defaults`` (derived from its TOML file), and the last value the
CSMS set through ChangeConfiguration, which is kept in the ``kv`` table as ``ocpp16.<Key>`` and
survives restarts and A/B updates.

Decisions where the spec leaves room:

- Key names are CiString50Type (case-insensitive): ``heartbeatinterval`` finds
  HeartbeatInterval; answers always use the spec spelling.
- GetConfigurationMaxKeys is advisory. §5.8 lets a Charge Point limit the number of keys in one
  request but defines no answer for a longer request, so every requested key is answered; the
  value (50) exceeds the number of keys we have, so a CSMS that splits its requests by it can
  still ask for everything at once. Repeated keys are answered once.
- A RebootRequired change is persisted at once and reported by GetConfiguration and ``get`` (the
  part of the daemon that uses it reads it only when it (re)starts); subscribers are not told.
- A stored value that this release finds invalid (written by a newer release, or before a
  *MaxLength key shrank) is ignored with a warning and the default applies.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Literal, TypedDict

from evsed.ocpp.v16.configuration_keys import (
    CORE,
    FEATURE_PROFILES,
    KEYS,
    MEASURANDS,
    NUMBER_OF_CONNECTORS,
    SUPPORTED_FEATURE_PROFILES,
    KeySpec,
    KeyType,
    normalise,
)
from evsed.store.db import Database

log = logging.getLogger(__name__)

KV_PREFIX = "ocpp16."

ChangeStatus = Literal["Accepted", "Rejected", "RebootRequired", "NotSupported"]
Subscriber = Callable[[str, str], None]


class KeyValue(TypedDict):
    """One configurationKey entry of GetConfiguration.conf, snake_case for the ``ocpp`` library."""

    key: str
    readonly: bool
    value: str


class ConfigurationKeys:
    """The Charge Point's OCPP 1.6 configuration keys (§9.1 Core, §9.2 Local Auth List).

    Methods are synchronous and thread-safe; on the event loop, call ``change`` through
    ``asyncio.to_thread`` (it commits to SQLite). Reads are served from memory.
    """

    def __init__(
        self,
        db: Database,
        *,
        defaults: Mapping[str, str],
        number_of_connectors: int,
        supported_profiles: Iterable[str],
        measurands: Iterable[str] = MEASURANDS,
        extra_keys: Iterable[KeySpec] = (),
    ) -> None:
        """``measurands``: what the meter can deliver (default: the whole 1.6 Measurand enum);
        the measurand lists accept only these (with or without a phase suffix)."""
        profiles = list(supported_profiles)
        _check_profiles(profiles)
        if number_of_connectors < 1:
            raise ValueError(f"number_of_connectors must be >= 1, got {number_of_connectors}")
        self._measurands = frozenset(measurands)
        if not self._measurands <= MEASURANDS:
            raise ValueError(f"not OCPP 1.6 measurands: {sorted(self._measurands - MEASURANDS)}")
        self._db = db
        self._connectors = number_of_connectors
        self._lock = threading.Lock()
        self._subscribers: list[Subscriber] = []
        # Keys of an unsupported profile do not exist (§9.2 keys need LocalAuthListManagement).
        self._specs = {spec.name: spec for spec in KEYS if spec.profile in profiles}
        # Keys of a vendor extension (the pricing whitepaper's), after the standard ones.
        self._specs |= {spec.name: spec for spec in extra_keys}
        self._by_folded = {name.casefold(): spec for name, spec in self._specs.items()}
        self._values: dict[str, str] = {}
        self._apply_defaults(defaults, profiles)
        self._load_persisted()

    # -- reading ------------------------------------------------------------------------------

    def get(self, key: str) -> str:
        """The current value of ``key`` as reported to the CSMS. KeyError if we lack the key."""
        return self._values[self._spec(key).name]

    def get_int(self, key: str) -> int:
        return int(self._typed(key, KeyType.INT))

    def get_bool(self, key: str) -> bool:
        return self._typed(key, KeyType.BOOL) == "true"

    def get_string(self, key: str) -> str:
        return self._typed(key, KeyType.STRING)

    def get_csl(self, key: str) -> list[str]:
        value = self._typed(key, KeyType.CSL)
        return value.split(",") if value else []

    def get_configuration(self, keys: list[str] | None) -> tuple[list[KeyValue], list[str]]:
        """GetConfiguration.conf content (§5.8): (configurationKey entries, unknownKey).

        No keys (None or empty) means every key we have, in spec order. Otherwise each
        requested key we know is answered once, in request order, and the rest are unknown.
        """
        if not keys:
            return [self._entry(spec) for spec in self._specs.values()], []
        known: list[KeyValue] = []
        unknown: list[str] = []
        seen: set[str] = set()
        for requested in keys:
            folded = requested.casefold()
            if folded in seen:
                continue
            seen.add(folded)
            spec = self._by_folded.get(folded)
            if spec is None:
                unknown.append(requested)
            else:
                known.append(self._entry(spec))
        return known, unknown

    # -- changing -----------------------------------------------------------------------------

    def change(self, key: str, value: str) -> ChangeStatus:
        """Apply ChangeConfiguration.req (§5.3) and return its status.

        NotSupported: we have no such key. Rejected: the key is read-only, or the value has
        the wrong type, is out of range, names an unknown list member (or a measurand the meter
        cannot deliver), repeats a member, or has more items than the key's *MaxLength.
        RebootRequired / Accepted: the new value is committed; only Accepted notifies
        subscribers. Raises ``sqlite3.Error`` if the value cannot be committed (nothing has
        changed then).
        """
        spec = self._by_folded.get(key.casefold())
        if spec is None:
            log.info("ChangeConfiguration %s: not supported", key)
            return "NotSupported"
        if spec.readonly:
            log.info("ChangeConfiguration %s: rejected, read-only", spec.name)
            return "Rejected"
        normalised = self._normalise(spec, value)
        if normalised is None:
            log.info("ChangeConfiguration %s: rejected, invalid value %r", spec.name, value)
            return "Rejected"
        with self._lock:
            with self._db.transaction() as cur:
                cur.execute(
                    "INSERT INTO kv (key, value) VALUES (?, ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (KV_PREFIX + spec.name, normalised),
                )
            self._values[spec.name] = normalised
        if spec.reboot_required:
            log.info("configuration %s = %s (takes effect after a reboot)", spec.name, normalised)
            return "RebootRequired"
        log.info("configuration %s = %s", spec.name, normalised)
        for callback in list(self._subscribers):
            try:
                callback(spec.name, normalised)
            except Exception:
                # The change is committed and answered Accepted; one broken listener must not
                # keep the others from hearing about it.
                log.exception("configuration listener failed for %s", spec.name)
        return "Accepted"

    def subscribe(self, callback: Subscriber) -> None:
        """Call ``callback(key, value)`` after every Accepted change, in the changing thread.

        Listeners on the event loop hop over with ``loop.call_soon_threadsafe`` when ``change``
        runs in a worker thread.
        """
        self._subscribers.append(callback)

    # -- internals ----------------------------------------------------------------------------

    def _spec(self, key: str) -> KeySpec:
        spec = self._by_folded.get(key.casefold())
        if spec is None:
            raise KeyError(key)
        return spec

    def _typed(self, key: str, kind: KeyType) -> str:
        spec = self._spec(key)
        if spec.type is not kind:
            raise TypeError(f"configuration key {spec.name} is {spec.type}, not {kind}")
        return self._values[spec.name]

    def _entry(self, spec: KeySpec) -> KeyValue:
        return {"key": spec.name, "readonly": spec.readonly, "value": self._values[spec.name]}

    def _normalise(self, spec: KeySpec, raw: str) -> str | None:
        # A CSL without a *MaxLength key (ChargingScheduleAllowedChargingRateUnit) is read-only
        # and short: its vocabulary bounds it.
        max_items = int(self._values[spec.max_items_key]) if spec.max_items_key else 8
        return normalise(
            spec,
            raw,
            connectors=self._connectors,
            max_items=max_items,
            measurands=self._measurands,
        )

    def _apply_defaults(self, defaults: Mapping[str, str], profiles: list[str]) -> None:
        n = self._connectors
        raw = {name: spec.default for name, spec in self._specs.items()}
        raw |= {
            NUMBER_OF_CONNECTORS: str(n),
            SUPPORTED_FEATURE_PROFILES: ",".join(profiles),
            "ConnectorPhaseRotation": ",".join(f"{i}.Unknown" for i in range(1, n + 1)),
            # Index 0 (grid connection to main meter) plus one entry per connector.
            "ConnectorPhaseRotationMaxLength": str(n + 1),
        }
        for name, value in defaults.items():
            if name in (NUMBER_OF_CONNECTORS, SUPPORTED_FEATURE_PROFILES):
                raise ValueError(f"{name} comes from its constructor argument, not defaults")
            if name not in self._specs:
                raise ValueError(f"no configuration key {name!r} to set a default for")
            raw[name] = value
        # Plain values first: a CSL is checked against its *MaxLength, which must be final.
        for spec in sorted(self._specs.values(), key=lambda s: s.type is KeyType.CSL):
            normalised = self._normalise(spec, raw[spec.name])
            if normalised is None:
                raise ValueError(f"invalid default for {spec.name}: {raw[spec.name]!r}")
            self._values[spec.name] = normalised

    def _load_persisted(self) -> None:
        rows = self._db.query("SELECT key, value FROM kv WHERE key LIKE ?", (KV_PREFIX + "%",))
        for row in rows:
            stored_key, stored_value = str(row["key"]), str(row["value"])
            name = stored_key[len(KV_PREFIX) :]
            spec = self._specs.get(name)
            if not stored_key.startswith(KV_PREFIX) or spec is None or spec.readonly:
                log.warning(
                    "ignoring stored configuration %s: no such writable key here", stored_key
                )
                continue
            normalised = self._normalise(spec, stored_value)
            if normalised is None:
                log.warning("ignoring stored configuration %s=%r: invalid", name, stored_value)
                continue
            self._values[name] = normalised


def _check_profiles(profiles: list[str]) -> None:
    unknown = [p for p in profiles if p not in FEATURE_PROFILES]
    if unknown:
        raise ValueError(f"unknown OCPP 1.6 feature profiles: {unknown}")
    if CORE not in profiles:
        raise ValueError("the Core profile is always supported")
    if len(set(profiles)) != len(profiles):
        raise ValueError(f"feature profiles listed twice: {profiles}")
