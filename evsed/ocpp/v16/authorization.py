"""Who may charge: Authorize, the Authorization Cache and the Local Authorization List.

OCPP 1.6 §3.5 (local authorization and offline behaviour), §4.1 (Authorize), §5.4 (ClearCache),
§5.10 (GetLocalListVersion), §5.15 (SendLocalList) and §3.10 (parent idTag groups). The
configuration keys arrive through :class:`AuthSettings`; the CSMS through ``ask_csms``, which
sends Authorize.req and returns the IdTagInfo, or None when there is no answer.

Rules this module decides (each with its reason):

- A start needs status Accepted and, for local data, an expiryDate not passed. ConcurrentTx
  does not start a transaction (§7.2: identifier already in another transaction; §3.5.4: list
  entries other than Accepted MUST be rejected offline). A live Authorize.conf decides by its
  status alone: it is the CSMS's current word.
- Local data: the list first (if enabled), then the cache (if enabled); a tag found in the list
  is decided by the list, never by the cache (§3.5.3). Passed expiry dates read as Expired; in
  the cache the entry is changed to Expired (§3.5.1), the list is never changed except by
  SendLocalList (§3.5.2).
- Online: LocalPreAuthorize and a locally valid tag start at once, with no Authorize.req
  (§3.5, §9.1.13); anything else asks the CSMS (§4.1; a NOT-valid cache entry SHOULD be
  rechecked online, §3.5.1). Every IdTagInfo received updates the cache, whatever its status
  (§3.5.1), except for tags in the list (§3.5.3); a status that contradicts the list is reported
  through ``on_local_list_conflict`` (§3.5.2, LocalListConflict).
- Offline (or no answer): a known NOT-valid entry rejects, whatever the other keys say
  (§3.5.4 MUST). A valid entry accepts if LocalAuthorizeOffline (§9.1.12). A tag that the list
  and cache cannot explicitly authorize (unknown, or LocalAuthorizeOffline off) is accepted only
  with AllowOfflineTxForUnknownId (§3.5.4); the StartTransaction.conf sorts it out later.
- Stopping (§3.10, §4.1): the starting tag stops without an Authorize.req; another tag stops
  if its parentIdTag equals the transaction's and it is a valid identifier (Accepted or
  ConcurrentTx, §3.5.2; ConcurrentTx only concerns starts, §7.2). Its parentIdTag comes from
  the list or cache when they have it, else from an Authorize.req. LocalPreAuthorize and
  LocalAuthorizeOffline are defined for *starting* transactions (§9.1.12/13), so they do not
  limit this lookup.
- ClearCache is Rejected while the cache is disabled (§5.4: the answer says whether the cache
  was cleared; a disabled cache is not operated, §9.1.2).
- GetLocalListVersion: -1 while the list is disabled or unsupported, 0 while it is empty
  (§5.10).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from evsed.clock import parse_iso
from evsed.store.auth import AuthEntry, AuthStore

log = logging.getLogger(__name__)

STATUSES = frozenset({"Accepted", "Blocked", "Expired", "Invalid", "ConcurrentTx"})
# §3.5.2: "valid" list entries are Accepted or ConcurrentTx; only Accepted starts a transaction.
_VALID_IDENTIFIER = frozenset({"Accepted", "ConcurrentTx"})

Source = Literal["csms", "local-list", "cache", "offline-unknown", "offline-rejected"]
UpdateStatus = Literal["Accepted", "Failed", "NotSupported", "VersionMismatch"]


class AuthSettings(Protocol):
    """The configuration keys this module reads (OCPP 1.6 §9.1, §9.2), read on every use."""

    @property
    def authorization_cache_enabled(self) -> bool: ...  # AuthorizationCacheEnabled

    @property
    def local_authorize_offline(self) -> bool: ...  # LocalAuthorizeOffline

    @property
    def local_pre_authorize(self) -> bool: ...  # LocalPreAuthorize

    @property
    def allow_offline_tx_for_unknown_id(self) -> bool: ...  # AllowOfflineTxForUnknownId

    @property
    def local_auth_list_enabled(self) -> bool: ...  # LocalAuthListEnabled

    @property
    def local_auth_list_max_length(self) -> int: ...  # LocalAuthListMaxLength

    @property
    def send_local_list_max_length(self) -> int: ...  # SendLocalListMaxLength


@dataclass(frozen=True, slots=True)
class StaticAuthSettings:
    """Fixed values for :class:`AuthSettings` (tests; a charger without ChangeConfiguration)."""

    authorization_cache_enabled: bool = True
    local_authorize_offline: bool = True
    local_pre_authorize: bool = False
    allow_offline_tx_for_unknown_id: bool = False
    local_auth_list_enabled: bool = True
    local_auth_list_max_length: int = 1000
    send_local_list_max_length: int = 100


@dataclass(frozen=True, slots=True)
class AuthDecision:
    """The outcome for one presented tag; ``status`` is an AuthorizationStatus (§7.2)."""

    accepted: bool
    status: str
    parent_id_tag: str | None
    source: Source


@dataclass(frozen=True, slots=True)
class _Local:
    source: Literal["local-list", "cache"]
    entry: AuthEntry  # status already reads Expired when the expiry date has passed


class Authorizer:
    """Authorization decisions and the cache/list operations the CSMS can request."""

    def __init__(
        self,
        store: AuthStore,
        settings: AuthSettings,
        *,
        ask_csms: Callable[[str], Awaitable[dict[str, Any] | None]],
        online: Callable[[], bool],
        now: Callable[[], datetime],
        cache_max_entries: int = 1000,
        on_local_list_conflict: Callable[[str], None] | None = None,
    ) -> None:
        self._store = store
        self._settings = settings
        self._ask_csms = ask_csms
        self._online = online
        self._now = now
        self._cache_max = cache_max_entries
        self._on_conflict = on_local_list_conflict

    # -- decisions ----------------------------------------------------------------------------

    async def authorize(self, id_tag: str) -> AuthDecision:
        """May ``id_tag`` start a transaction? (§3.5, §4.1)"""
        local = await asyncio.to_thread(self._lookup, id_tag)
        if self._online():
            if self._settings.local_pre_authorize and local is not None and _starts(local.entry):
                return self._decided(id_tag, _local_decision(local))
            info = await self._ask_csms(id_tag)
            if info is not None:
                entry = await asyncio.to_thread(self._received, id_tag, info)
                decision = AuthDecision(
                    accepted=entry.status == "Accepted",
                    status=entry.status,
                    parent_id_tag=entry.parent_id_tag,
                    source="csms",
                )
                return self._decided(id_tag, decision)
        return self._decided(id_tag, self._offline(local))

    def _offline(self, local: _Local | None) -> AuthDecision:
        settings = self._settings
        if local is not None and not _starts(local.entry):
            return _local_decision(local)
        if local is not None and settings.local_authorize_offline:
            return _local_decision(local)
        if settings.allow_offline_tx_for_unknown_id:
            return AuthDecision(True, "Accepted", None, "offline-unknown")
        return AuthDecision(False, "Invalid", None, "offline-rejected")

    async def may_stop(
        self, started_tag: str, started_parent: str | None, presented_tag: str
    ) -> bool:
        """May ``presented_tag`` stop the transaction ``started_tag`` started? (§3.10, §4.1)"""
        if _same(presented_tag, started_tag):
            return True  # §4.1: no Authorize.req when the stopping tag is the starting one
        group = started_parent
        if group is None:
            started = await asyncio.to_thread(self._lookup, started_tag)
            group = started.entry.parent_id_tag if started is not None else None
        if group is None:
            log.info("stop refused: the transaction's id tag has no known parentIdTag")
            return False
        local = await asyncio.to_thread(self._lookup, presented_tag)
        if local is not None and _stops(local.entry, group):
            return True
        if self._online():
            info = await self._ask_csms(presented_tag)
            if info is not None:
                entry = await asyncio.to_thread(self._received, presented_tag, info)
                return _stops(entry, group)
        return False

    async def remember(self, id_tag: str, id_tag_info: Mapping[str, Any]) -> None:
        """Update the cache from a StartTransaction.conf / StopTransaction.conf IdTagInfo
        (§3.5.1: the cache is updated with every IdTagInfo received)."""
        await asyncio.to_thread(self._received, id_tag, id_tag_info)

    # -- CSMS-initiated operations ------------------------------------------------------------

    async def clear_cache(self) -> bool:
        """ClearCache (§5.4): True = Accepted. Rejected while the cache is disabled."""
        if not self._settings.authorization_cache_enabled:
            return False
        await asyncio.to_thread(self._store.cache_clear)
        log.info("authorization cache cleared")
        return True

    async def local_list_version(self) -> int:
        """GetLocalListVersion (§5.10): -1 when disabled, 0 when empty, else the version."""
        if not self._settings.local_auth_list_enabled:
            return -1
        return await asyncio.to_thread(self._reported_version)

    async def send_local_list(
        self, list_version: int, update_type: str, entries: Sequence[Mapping[str, Any]]
    ) -> UpdateStatus:
        """SendLocalList (§5.15, §7.1 AuthorizationData). ``entries`` as received:
        ``{"idTag": ..., "idTagInfo": {...}}`` (snake_case keys are accepted too)."""
        settings = self._settings
        if not settings.local_auth_list_enabled:
            return "NotSupported"
        if update_type not in ("Full", "Differential"):
            log.warning("SendLocalList: unknown updateType %r", update_type)
            return "Failed"
        if len(entries) > settings.send_local_list_max_length:
            log.warning(
                "SendLocalList: %d entries, SendLocalListMaxLength is %d",
                len(entries),
                settings.send_local_list_max_length,
            )
            return "Failed"
        parsed = _parse_list(entries, full=update_type == "Full")
        if parsed is None:
            return "Failed"
        upserts, deletes = parsed
        max_length = settings.local_auth_list_max_length
        if update_type == "Full":
            if len(upserts) > max_length:
                log.warning("SendLocalList: %d entries exceed LocalAuthListMaxLength", len(upserts))
                return "Failed"
            await asyncio.to_thread(self._store.list_replace, upserts, list_version)
        else:
            current = await asyncio.to_thread(self._reported_version)
            if list_version <= current:
                log.warning("SendLocalList: differential version %d <= %d", list_version, current)
                return "VersionMismatch"
            applied = await asyncio.to_thread(
                self._store.list_apply, upserts, deletes, list_version, max_entries=max_length
            )
            if not applied:
                log.warning("SendLocalList: the list would exceed LocalAuthListMaxLength")
                return "Failed"
        log.info("local authorization list: %s update to version %d", update_type, list_version)
        return "Accepted"

    # -- blocking helpers (run in a worker thread) --------------------------------------------

    def _lookup(self, id_tag: str) -> _Local | None:
        """The entry that decides ``id_tag`` locally: list before cache (§3.5.3)."""
        settings = self._settings
        now = self._utc_now()
        if settings.local_auth_list_enabled:
            entry = self._store.list_get(id_tag)
            if entry is not None:
                # §3.5.2: the list changes only through SendLocalList; expiry is applied on read.
                return _Local("local-list", _as_of(entry, now))
        if settings.authorization_cache_enabled:
            entry = self._store.cache_get(id_tag)
            if entry is not None:
                current = _as_of(entry, now)
                if current.status != entry.status:
                    self._store.cache_set_status(entry.id_tag, current.status)  # §3.5.1
                return _Local("cache", current)
        return None

    def _received(self, id_tag: str, info: Mapping[str, Any]) -> AuthEntry:
        """Apply one IdTagInfo from the CSMS (§3.5.1, §3.5.2, §3.5.3); returns it as an entry."""
        entry = _entry_from_info(id_tag, info)
        if entry is None:
            return AuthEntry(id_tag, "Invalid")
        if self._settings.local_auth_list_enabled:
            listed = self._store.list_get(id_tag)
            if listed is not None:
                if listed.status != entry.status:
                    log.warning(
                        "CSMS answered %s for a tag the local list has as %s",
                        entry.status,
                        listed.status,
                    )
                    if self._on_conflict is not None:
                        self._on_conflict(id_tag)
                return entry
        if self._settings.authorization_cache_enabled:
            now = self._utc_now()
            evicted = self._store.cache_put(
                entry,
                now.isoformat(timespec="microseconds"),
                max_entries=self._cache_max,
                valid=lambda e: _starts(_as_of(e, now)),
            )
            if evicted:
                log.info("authorization cache full: evicted %d entries", len(evicted))
        return entry

    def _reported_version(self) -> int:
        return self._store.list_version() if self._store.list_size() else 0

    def _utc_now(self) -> datetime:
        return _utc(self._now())

    def _decided(self, id_tag: str, decision: AuthDecision) -> AuthDecision:
        log.info("authorization: %s (%s)", decision.status, decision.source)
        log.debug("authorization of %s: %s", id_tag, decision)
        return decision


def _local_decision(local: _Local) -> AuthDecision:
    entry = local.entry
    return AuthDecision(_starts(entry), entry.status, entry.parent_id_tag, local.source)


def _starts(entry: AuthEntry) -> bool:
    """May this (already expiry-checked) entry start a transaction?"""
    return entry.status == "Accepted"


def _stops(entry: AuthEntry, group: str) -> bool:
    return (
        entry.status in _VALID_IDENTIFIER
        and entry.parent_id_tag is not None
        and _same(entry.parent_id_tag, group)
    )


def _same(a: str, b: str) -> bool:
    """IdToken values are CiString20 (§7.15): compared case-insensitively."""
    return a.casefold() == b.casefold()


def _as_of(entry: AuthEntry, now: datetime) -> AuthEntry:
    """The entry with status Expired once its expiryDate has passed (§3.5.1, §3.5.4)."""
    if entry.expiry_date is None or entry.status not in _VALID_IDENTIFIER:
        return entry
    expiry = _parse_time(entry.expiry_date)
    if expiry is None:
        log.warning("unreadable expiryDate %r: the entry counts as expired", entry.expiry_date)
    elif expiry > now:
        return entry
    return AuthEntry(entry.id_tag, "Expired", entry.expiry_date, entry.parent_id_tag)


def _parse_time(text: str) -> datetime | None:
    """ISO 8601 (§3.15); a time without offset is taken as UTC (§3.14)."""
    try:
        return parse_iso(text)
    except ValueError:
        return None


def _utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def _field(data: Mapping[str, Any], camel: str, snake: str) -> Any:
    """A field as on the wire (camelCase) or as the ``ocpp`` library hands it (snake_case)."""
    return data[camel] if camel in data else data.get(snake)


def _entry_from_info(id_tag: str, info: Mapping[str, Any]) -> AuthEntry | None:
    """An IdTagInfo (§6.2, §7) as an entry; None (and a warning) when it is malformed."""
    status = info.get("status")
    expiry = _field(info, "expiryDate", "expiry_date")
    parent = _field(info, "parentIdTag", "parent_id_tag")
    if (
        status not in STATUSES
        or not (expiry is None or isinstance(expiry, str))
        or not (parent is None or isinstance(parent, str))
    ):
        log.warning("malformed idTagInfo ignored: %r", dict(info))
        return None
    return AuthEntry(id_tag, status, expiry, parent)


def _parse_list(
    entries: Sequence[Mapping[str, Any]], *, full: bool
) -> tuple[list[AuthEntry], list[str]] | None:
    """AuthorizationData (§7.1) into upserts and deletions; None when the request is unusable:
    a missing idTag, a malformed idTagInfo, a duplicate idTag (§5.15: idTags MUST be unique),
    or, in a Full update, an entry without idTagInfo (§7.1: required when updateType is Full)."""
    upserts: list[AuthEntry] = []
    deletes: list[str] = []
    seen: set[str] = set()
    for item in entries:
        id_tag = _field(item, "idTag", "id_tag")
        info = _field(item, "idTagInfo", "id_tag_info")
        if not isinstance(id_tag, str) or not id_tag:
            log.warning("SendLocalList: entry without idTag")
            return None
        if id_tag.casefold() in seen:
            log.warning("SendLocalList: duplicate idTag")
            return None
        seen.add(id_tag.casefold())
        if info is None:
            if full:
                log.warning("SendLocalList: Full update entry without idTagInfo")
                return None
            deletes.append(id_tag)
            continue
        entry = _entry_from_info(id_tag, info) if isinstance(info, Mapping) else None
        if entry is None:
            return None
        upserts.append(entry)
    return upserts, deletes
