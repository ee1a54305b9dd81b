"""Authorization per OCPP 1.6 §3.5: cache, local list, offline rules, parent idTag groups.

Real SQLite in a temporary directory; the CSMS is a fake that answers Authorize.req from a
table and records every request.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from evsed.ocpp.v16.authorization import Authorizer, StaticAuthSettings
from evsed.store.auth import AuthEntry, AuthStore
from evsed.store.db import Database

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
PAST = "2025-03-01T11:59:59Z"
FUTURE = "2025-03-02T12:00:00.000+01:00"

ALL_ON = StaticAuthSettings(
    authorization_cache_enabled=True,
    local_authorize_offline=True,
    local_pre_authorize=False,
    allow_offline_tx_for_unknown_id=False,
    local_auth_list_enabled=True,
    local_auth_list_max_length=5,
    send_local_list_max_length=3,
)


class FakeCsms:
    """Answers Authorize.req from ``answers`` (missing tag = no answer) and records requests."""

    def __init__(self) -> None:
        self.answers: dict[str, dict[str, Any]] = {}
        self.asked: list[str] = []

    async def __call__(self, id_tag: str) -> dict[str, Any] | None:
        self.asked.append(id_tag)
        return self.answers.get(id_tag)


@dataclass
class Rig:
    db: Database
    store: AuthStore
    csms: FakeCsms = field(default_factory=FakeCsms)
    online: bool = True
    now: datetime = T0
    conflicts: list[str] = field(default_factory=list)

    def authorizer(
        self, settings: StaticAuthSettings = ALL_ON, *, cache_max: int = 1000
    ) -> Authorizer:
        return Authorizer(
            self.store,
            settings,
            ask_csms=self.csms,
            online=lambda: self.online,
            now=lambda: self.now,
            cache_max_entries=cache_max,
            on_local_list_conflict=self.conflicts.append,
        )

    def cache(
        self, id_tag: str, status: str, expiry: str | None = None, parent: str | None = None
    ) -> None:
        self.store.cache_put(
            AuthEntry(id_tag, status, expiry, parent),
            T0.isoformat(timespec="microseconds"),
            max_entries=1000,
            valid=lambda e: True,
        )

    def listed(self, *entries: AuthEntry) -> None:
        current = self.store.list_version()
        self.store.list_apply(entries, (), current + 1, max_entries=1000)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    db = Database(tmp_path)
    yield Rig(db, AuthStore(db))
    db.close()


def info(status: str, expiry: str | None = None, parent: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"status": status}
    if expiry is not None:
        data["expiryDate"] = expiry
    if parent is not None:
        data["parentIdTag"] = parent
    return data


# -- authorize(): online/offline x list/cache x settings ----------------------------------------


@dataclass(frozen=True)
class Case:
    settings: dict[str, Any] = field(default_factory=dict)
    online: bool = True
    listed: tuple[str, str | None] | None = None  # (status, expiryDate) of tag "T" in the list
    cached: tuple[str, str | None] | None = None  # ... in the cache
    answer: str | None = None  # CSMS status for "T"; None = no answer (timeout, CALLERROR)
    expect: tuple[bool, str, str] = (False, "Invalid", "offline-rejected")
    asks: bool = False


CASES = {
    "online: CSMS accepts": Case(answer="Accepted", expect=(True, "Accepted", "csms"), asks=True),
    "online: CSMS blocks": Case(answer="Blocked", expect=(False, "Blocked", "csms"), asks=True),
    "online: CSMS silent, unknown tag allowed offline": Case(
        settings={"allow_offline_tx_for_unknown_id": True},
        expect=(True, "Accepted", "offline-unknown"),
        asks=True,
    ),
    "online: CSMS silent, unknown tag rejected": Case(asks=True),
    "online: CSMS silent, cached tag accepted": Case(
        cached=("Accepted", None), expect=(True, "Accepted", "cache"), asks=True
    ),
    "online: list answers without the CSMS when LocalPreAuthorize": Case(
        settings={"local_pre_authorize": True},
        listed=("Accepted", FUTURE),
        answer="Blocked",
        expect=(True, "Accepted", "local-list"),
    ),
    "online: cache answers without the CSMS when LocalPreAuthorize": Case(
        settings={"local_pre_authorize": True},
        cached=("Accepted", None),
        answer="Blocked",
        expect=(True, "Accepted", "cache"),
    ),
    "online: without LocalPreAuthorize the CSMS decides": Case(
        listed=("Accepted", None), answer="Blocked", expect=(False, "Blocked", "csms"), asks=True
    ),
    "online: NOT-valid cache entry is rechecked (3.5.1)": Case(
        settings={"local_pre_authorize": True},
        cached=("Blocked", None),
        answer="Accepted",
        expect=(True, "Accepted", "csms"),
        asks=True,
    ),
    "online: expired cache entry is rechecked": Case(
        settings={"local_pre_authorize": True},
        cached=("Accepted", PAST),
        answer="Accepted",
        expect=(True, "Accepted", "csms"),
        asks=True,
    ),
    "online: disabled list is not consulted": Case(
        settings={"local_pre_authorize": True, "local_auth_list_enabled": False},
        listed=("Accepted", None),
        answer="Invalid",
        expect=(False, "Invalid", "csms"),
        asks=True,
    ),
    "online: disabled cache is not consulted": Case(
        settings={"local_pre_authorize": True, "authorization_cache_enabled": False},
        cached=("Accepted", None),
        answer="Expired",
        expect=(False, "Expired", "csms"),
        asks=True,
    ),
    "offline: list accepts": Case(
        online=False, listed=("Accepted", FUTURE), expect=(True, "Accepted", "local-list")
    ),
    "offline: cache accepts": Case(
        online=False, cached=("Accepted", None), expect=(True, "Accepted", "cache")
    ),
    "offline: blocked list entry rejects even with unknown ids allowed (3.5.4)": Case(
        settings={"allow_offline_tx_for_unknown_id": True},
        online=False,
        listed=("Blocked", None),
        expect=(False, "Blocked", "local-list"),
    ),
    "offline: invalid cache entry rejects even with unknown ids allowed": Case(
        settings={"allow_offline_tx_for_unknown_id": True},
        online=False,
        cached=("Invalid", None),
        expect=(False, "Invalid", "cache"),
    ),
    "offline: ConcurrentTx in the list does not start": Case(
        online=False, listed=("ConcurrentTx", None), expect=(False, "ConcurrentTx", "local-list")
    ),
    "offline: list has priority over the cache (3.5.3)": Case(
        online=False,
        listed=("Blocked", None),
        cached=("Accepted", None),
        expect=(False, "Blocked", "local-list"),
    ),
    "offline: expired list entry rejects": Case(
        online=False, listed=("Accepted", PAST), expect=(False, "Expired", "local-list")
    ),
    "offline: expired cache entry rejects even with unknown ids allowed (3.5.4)": Case(
        settings={"allow_offline_tx_for_unknown_id": True},
        online=False,
        cached=("Accepted", PAST),
        expect=(False, "Expired", "cache"),
    ),
    "offline: LocalAuthorizeOffline off rejects a cached tag": Case(
        settings={"local_authorize_offline": False}, online=False, cached=("Accepted", None)
    ),
    "offline: LocalAuthorizeOffline off, valid tag counts as unknown": Case(
        settings={"local_authorize_offline": False, "allow_offline_tx_for_unknown_id": True},
        online=False,
        listed=("Accepted", None),
        expect=(True, "Accepted", "offline-unknown"),
    ),
    "offline: unknown tag allowed": Case(
        settings={"allow_offline_tx_for_unknown_id": True},
        online=False,
        expect=(True, "Accepted", "offline-unknown"),
    ),
    "offline: unknown tag rejected": Case(online=False),
    "offline: disabled list does not authorize": Case(
        settings={"local_auth_list_enabled": False}, online=False, listed=("Accepted", None)
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
async def test_authorize(rig: Rig, case: Case) -> None:
    if case.listed is not None:
        rig.listed(AuthEntry("T", case.listed[0], case.listed[1]))
    if case.cached is not None:
        rig.cache("T", *case.cached)
    if case.answer is not None:
        rig.csms.answers["T"] = info(case.answer)
    rig.online = case.online

    decision = await rig.authorizer(replace(ALL_ON, **case.settings)).authorize("T")

    assert (decision.accepted, decision.status, decision.source) == case.expect
    assert rig.csms.asked == (["T"] if case.asks else [])


async def test_every_csms_answer_is_cached_and_used_offline(rig: Rig) -> None:
    auth = rig.authorizer(replace(ALL_ON, allow_offline_tx_for_unknown_id=True))
    rig.csms.answers["B"] = info("Blocked")
    rig.csms.answers["G"] = info("Accepted", FUTURE, "FAMILY")

    assert not (await auth.authorize("B")).accepted
    assert (await auth.authorize("G")).parent_id_tag == "FAMILY"
    assert rig.store.cache_get("B") == AuthEntry("B", "Blocked")
    assert rig.store.cache_get("G") == AuthEntry("G", "Accepted", FUTURE, "FAMILY")

    rig.online = False
    blocked, good = await auth.authorize("B"), await auth.authorize("G")
    assert (blocked.accepted, blocked.source) == (False, "cache")
    assert (good.accepted, good.source, good.parent_id_tag) == (True, "cache", "FAMILY")


async def test_csms_answer_in_library_snake_case_is_understood(rig: Rig) -> None:
    rig.csms.answers["T"] = {"status": "Accepted", "expiry_date": FUTURE, "parent_id_tag": "P"}
    decision = await rig.authorizer().authorize("T")
    assert (decision.accepted, decision.parent_id_tag) == (True, "P")
    assert rig.store.cache_get("T") == AuthEntry("T", "Accepted", FUTURE, "P")


async def test_malformed_answer_is_not_accepted_nor_cached(rig: Rig) -> None:
    rig.csms.answers["T"] = {"status": "Welcome"}
    decision = await rig.authorizer().authorize("T")
    assert (decision.accepted, decision.source) == (False, "csms")
    assert rig.store.cache_get("T") is None


async def test_listed_tag_is_never_cached_and_a_contradiction_is_reported(rig: Rig) -> None:
    rig.listed(AuthEntry("L", "Accepted"))
    rig.csms.answers["L"] = info("Blocked")
    auth = rig.authorizer()

    assert not (await auth.authorize("L")).accepted  # the CSMS's live answer decides
    await auth.remember("L", info("Blocked"))

    assert rig.store.cache_get("L") is None
    assert rig.conflicts == ["L", "L"]


async def test_agreeing_answer_for_a_listed_tag_is_no_conflict(rig: Rig) -> None:
    rig.listed(AuthEntry("L", "Accepted"))
    rig.csms.answers["L"] = info("Accepted")
    assert (await rig.authorizer().authorize("L")).accepted
    assert rig.conflicts == []


async def test_disabled_cache_stores_nothing(rig: Rig) -> None:
    rig.csms.answers["T"] = info("Accepted")
    auth = rig.authorizer(replace(ALL_ON, authorization_cache_enabled=False))
    await auth.authorize("T")
    await auth.remember("T", info("Accepted"))
    assert rig.store.cache_size() == 0


async def test_expired_cache_entry_is_changed_to_expired(rig: Rig) -> None:
    rig.cache("T", "Accepted", PAST, "P")
    rig.online = False
    await rig.authorizer().authorize("T")
    assert rig.store.cache_get("T") == AuthEntry("T", "Expired", PAST, "P")


async def test_expired_list_entry_is_left_as_sent(rig: Rig) -> None:
    rig.listed(AuthEntry("T", "Accepted", PAST))
    rig.online = False
    assert (await rig.authorizer().authorize("T")).status == "Expired"
    assert rig.store.list_get("T") == AuthEntry("T", "Accepted", PAST)


async def test_unreadable_expiry_counts_as_expired(rig: Rig) -> None:
    rig.cache("T", "Accepted", "next tuesday")
    rig.online = False
    assert (await rig.authorizer().authorize("T")).status == "Expired"


async def test_expiry_is_compared_as_time_not_text(rig: Rig) -> None:
    # 12:30+01:00 is 11:30Z: already past at T0 although the text sorts after "12:00".
    rig.cache("T", "Accepted", "2025-03-01T12:30:00+01:00")
    rig.online = False
    assert (await rig.authorizer().authorize("T")).status == "Expired"


async def test_id_tags_match_case_insensitively(rig: Rig) -> None:
    rig.listed(AuthEntry("04a1b2c3", "Accepted"))
    rig.online = False
    decision = await rig.authorizer().authorize("04A1B2C3")
    assert (decision.accepted, decision.source) == (True, "local-list")


# -- remember(): IdTagInfo from StartTransaction.conf / StopTransaction.conf --------------------


async def test_remember_updates_the_cache(rig: Rig) -> None:
    auth = rig.authorizer()
    rig.cache("T", "Accepted")
    await auth.remember("T", info("Invalid"))
    assert rig.store.cache_get("T") == AuthEntry("T", "Invalid")

    rig.online = False
    decision = await auth.authorize("T")
    assert (decision.accepted, decision.status, decision.source) == (False, "Invalid", "cache")


async def test_remember_replaces_an_entry_whatever_the_case_of_the_tag(rig: Rig) -> None:
    rig.cache("abc", "Accepted")
    await rig.authorizer().remember("ABC", info("Blocked"))
    assert rig.store.cache_size() == 1
    assert rig.store.cache_get("abc") == AuthEntry("ABC", "Blocked")


# -- cache eviction (3.5.1) ---------------------------------------------------------------------


async def test_full_cache_evicts_not_valid_entries_first_then_the_oldest_valid(rig: Rig) -> None:
    auth = rig.authorizer(cache_max=3)
    for minute, (tag, status) in enumerate(
        [("A", "Accepted"), ("B", "Blocked"), ("C", "Accepted")]
    ):
        rig.now = T0 + timedelta(minutes=minute)
        await auth.remember(tag, info(status))

    rig.now = T0 + timedelta(minutes=10)
    await auth.remember("D", info("Accepted"))
    assert {t for t in "ABCD" if rig.store.cache_get(t)} == {"A", "C", "D"}

    rig.now = T0 + timedelta(minutes=11)
    await auth.remember("E", info("Accepted"))
    assert {t for t in "ACDE" if rig.store.cache_get(t)} == {"C", "D", "E"}


async def test_expired_entries_count_as_not_valid_for_eviction(rig: Rig) -> None:
    auth = rig.authorizer(cache_max=2)
    await auth.remember("OLD", info("Accepted", FUTURE))
    rig.now = T0 + timedelta(minutes=1)
    await auth.remember("SHORT", info("Accepted", "2025-03-01T12:05:00Z"))

    rig.now = T0 + timedelta(minutes=10)  # SHORT has expired by now, OLD has not
    await auth.remember("NEW", info("Accepted"))
    assert rig.store.cache_get("OLD") is not None
    assert rig.store.cache_get("SHORT") is None


async def test_the_new_entry_is_never_evicted(rig: Rig) -> None:
    auth = rig.authorizer(cache_max=2)
    await auth.remember("A", info("Accepted"))
    await auth.remember("B", info("Accepted"))
    await auth.remember("X", info("Invalid"))
    assert rig.store.cache_get("X") == AuthEntry("X", "Invalid")
    assert rig.store.cache_size() == 2


async def test_updating_an_entry_refreshes_its_age(rig: Rig) -> None:
    auth = rig.authorizer(cache_max=2)
    await auth.remember("A", info("Accepted"))
    rig.now = T0 + timedelta(minutes=1)
    await auth.remember("B", info("Accepted"))
    rig.now = T0 + timedelta(minutes=2)
    await auth.remember("A", info("Accepted"))  # e.g. from a StopTransaction.conf
    rig.now = T0 + timedelta(minutes=3)
    await auth.remember("C", info("Accepted"))
    assert rig.store.cache_get("A") is not None
    assert rig.store.cache_get("B") is None


# -- ClearCache (5.4) ---------------------------------------------------------------------------


async def test_clear_cache(rig: Rig) -> None:
    rig.cache("T", "Accepted")
    rig.listed(AuthEntry("L", "Accepted"))
    assert await rig.authorizer().clear_cache() is True
    assert rig.store.cache_size() == 0
    assert rig.store.list_size() == 1  # the list is not the cache


async def test_clear_cache_is_rejected_while_the_cache_is_disabled(rig: Rig) -> None:
    rig.cache("T", "Accepted")
    auth = rig.authorizer(replace(ALL_ON, authorization_cache_enabled=False))
    assert await auth.clear_cache() is False
    assert rig.store.cache_size() == 1


# -- GetLocalListVersion (5.10) / SendLocalList (5.15) ------------------------------------------


def entry(id_tag: str, status: str | None = "Accepted", **extra: str) -> dict[str, Any]:
    item: dict[str, Any] = {"idTag": id_tag}
    if status is not None:
        item["idTagInfo"] = {"status": status, **extra}
    return item


async def test_list_version_is_0_before_any_list_and_minus_1_when_disabled(rig: Rig) -> None:
    assert await rig.authorizer().local_list_version() == 0
    disabled = rig.authorizer(replace(ALL_ON, local_auth_list_enabled=False))
    assert await disabled.local_list_version() == -1


async def test_full_update_replaces_the_list(rig: Rig) -> None:
    auth = rig.authorizer()
    assert await auth.send_local_list(3, "Full", [entry("A"), entry("B", "Blocked")]) == "Accepted"
    assert await auth.send_local_list(7, "Full", [entry("C", parentIdTag="P")]) == "Accepted"

    assert await auth.local_list_version() == 7
    assert rig.store.list_get("A") is None
    assert rig.store.list_get("C") == AuthEntry("C", "Accepted", None, "P")


async def test_empty_full_update_clears_the_list_and_reports_0(rig: Rig) -> None:
    auth = rig.authorizer()
    await auth.send_local_list(3, "Full", [entry("A")])
    assert await auth.send_local_list(4, "Full", []) == "Accepted"
    assert rig.store.list_size() == 0
    assert await auth.local_list_version() == 0


async def test_differential_update_adds_updates_and_deletes(rig: Rig) -> None:
    auth = rig.authorizer(replace(ALL_ON, send_local_list_max_length=4))
    await auth.send_local_list(1, "Full", [entry("A"), entry("B"), entry("C")])
    status = await auth.send_local_list(
        2,
        "Differential",
        [entry("A", "Blocked"), entry("B", None), entry("D", expiryDate=FUTURE), entry("Z", None)],
    )
    assert status == "Accepted"
    assert await auth.local_list_version() == 2
    assert rig.store.list_get("A") == AuthEntry("A", "Blocked")
    assert rig.store.list_get("B") is None
    assert rig.store.list_get("C") == AuthEntry("C", "Accepted")
    assert rig.store.list_get("D") == AuthEntry("D", "Accepted", FUTURE)


@pytest.mark.parametrize("version", [4, 5])
async def test_differential_with_an_old_version_is_a_mismatch(rig: Rig, version: int) -> None:
    auth = rig.authorizer()
    await auth.send_local_list(5, "Full", [entry("A")])
    assert await auth.send_local_list(version, "Differential", [entry("B")]) == "VersionMismatch"
    assert rig.store.list_get("B") is None
    assert await auth.local_list_version() == 5


async def test_too_many_entries_in_one_request_fail(rig: Rig) -> None:
    auth = rig.authorizer()  # SendLocalListMaxLength = 3
    entries = [entry(t) for t in "ABCD"]
    assert await auth.send_local_list(1, "Full", entries) == "Failed"
    assert await auth.send_local_list(1, "Differential", entries) == "Failed"
    assert rig.store.list_size() == 0


async def test_differential_beyond_the_list_capacity_fails_and_changes_nothing(rig: Rig) -> None:
    auth = rig.authorizer()  # LocalAuthListMaxLength = 5
    await auth.send_local_list(1, "Full", [entry("A"), entry("B"), entry("C")])
    await auth.send_local_list(2, "Differential", [entry("D")])
    status = await auth.send_local_list(
        3, "Differential", [entry("A", "Blocked"), entry("E"), entry("F")]
    )
    assert status == "Failed"
    assert rig.store.list_size() == 4
    assert rig.store.list_get("A") == AuthEntry("A", "Accepted")
    assert await auth.local_list_version() == 2
    # Deleting one first makes room: the result is what counts.
    status = await auth.send_local_list(
        3, "Differential", [entry("B", None), entry("E"), entry("F")]
    )
    assert status == "Accepted"
    assert rig.store.list_size() == 5


async def test_full_update_beyond_the_list_capacity_fails(rig: Rig) -> None:
    settings = replace(ALL_ON, send_local_list_max_length=10)
    auth = rig.authorizer(settings)  # LocalAuthListMaxLength = 5
    assert await auth.send_local_list(1, "Full", [entry(t) for t in "ABCDEF"]) == "Failed"
    assert await auth.local_list_version() == 0


@pytest.mark.parametrize(
    "entries",
    [
        [entry("A"), entry("a")],  # idTags MUST be unique (CiString: case-insensitive)
        [entry("A", None)],  # a Full list gives every entry its status
        [{"idTagInfo": {"status": "Accepted"}}],
        [entry("A", "Welcome")],
    ],
    ids=["duplicate", "full-without-info", "no-idtag", "bad-status"],
)
async def test_malformed_list_fails(rig: Rig, entries: list[dict[str, Any]]) -> None:
    assert await rig.authorizer().send_local_list(1, "Full", entries) == "Failed"
    assert rig.store.list_size() == 0


async def test_disabled_list_is_not_supported(rig: Rig) -> None:
    auth = rig.authorizer(replace(ALL_ON, local_auth_list_enabled=False))
    assert await auth.send_local_list(1, "Full", [entry("A")]) == "NotSupported"
    assert await auth.send_local_list(2, "Differential", [entry("A")]) == "NotSupported"
    assert rig.store.list_size() == 0


async def test_list_entries_in_library_snake_case_are_understood(rig: Rig) -> None:
    auth = rig.authorizer()
    items = [{"id_tag": "A", "id_tag_info": {"status": "Accepted", "parent_id_tag": "P"}}]
    assert await auth.send_local_list(1, "Full", items) == "Accepted"
    assert rig.store.list_get("A") == AuthEntry("A", "Accepted", None, "P")


async def test_tags_added_to_the_list_leave_the_cache(rig: Rig) -> None:
    rig.cache("A", "Blocked")
    rig.cache("B", "Accepted")
    await rig.authorizer().send_local_list(1, "Full", [entry("a")])
    assert rig.store.cache_get("A") is None
    assert rig.store.cache_get("B") is not None


async def test_cache_and_list_survive_a_restart(tmp_path: Path) -> None:
    db = Database(tmp_path)
    first = Rig(db, AuthStore(db))
    first.csms.answers["C"] = info("Accepted")
    await first.authorizer().authorize("C")
    await first.authorizer().send_local_list(9, "Full", [entry("L")])
    db.close()

    db = Database(tmp_path)
    try:
        again = Rig(db, AuthStore(db), online=False)
        auth = again.authorizer()
        assert (await auth.authorize("C")).source == "cache"
        assert (await auth.authorize("L")).source == "local-list"
        assert await auth.local_list_version() == 9
    finally:
        db.close()


# -- may_stop(): same tag, parent idTag groups (3.10, 4.1) --------------------------------------


async def test_the_starting_tag_stops_without_asking(rig: Rig) -> None:
    auth = rig.authorizer()
    assert await auth.may_stop("T", None, "T")
    assert await auth.may_stop("abc", "P", "ABC")
    rig.online = False
    assert await auth.may_stop("T", "P", "T")
    assert rig.csms.asked == []


async def test_another_tag_of_the_same_group_stops_after_authorize(rig: Rig) -> None:
    rig.csms.answers["T2"] = info("Accepted", parent="FAMILY")
    assert await rig.authorizer().may_stop("T1", "FAMILY", "T2")
    assert rig.csms.asked == ["T2"]
    assert rig.store.cache_get("T2") == AuthEntry("T2", "Accepted", None, "FAMILY")


async def test_a_tag_of_another_group_does_not_stop(rig: Rig) -> None:
    rig.csms.answers["T2"] = info("Accepted", parent="NEIGHBOURS")
    rig.csms.answers["T3"] = info("Accepted")
    auth = rig.authorizer()
    assert not await auth.may_stop("T1", "FAMILY", "T2")
    assert not await auth.may_stop("T1", "FAMILY", "T3")


async def test_a_blocked_tag_of_the_group_does_not_stop(rig: Rig) -> None:
    rig.csms.answers["T2"] = info("Blocked", parent="FAMILY")
    assert not await rig.authorizer().may_stop("T1", "FAMILY", "T2")


async def test_concurrent_tx_tag_of_the_group_stops(rig: Rig) -> None:
    rig.csms.answers["T2"] = info("ConcurrentTx", parent="FAMILY")
    assert await rig.authorizer().may_stop("T1", "FAMILY", "T2")


async def test_offline_the_parent_comes_from_the_cache(rig: Rig) -> None:
    rig.cache("T2", "Accepted", parent="FAMILY")
    rig.cache("T3", "Accepted", PAST, "FAMILY")
    rig.online = False
    auth = rig.authorizer()
    assert await auth.may_stop("T1", "FAMILY", "T2")
    assert not await auth.may_stop("T1", "FAMILY", "T3")  # expired
    assert not await auth.may_stop("T1", "FAMILY", "T4")  # unknown
    assert rig.csms.asked == []


async def test_a_known_group_member_stops_online_without_asking(rig: Rig) -> None:
    rig.listed(AuthEntry("T2", "Accepted", None, "family"))
    assert await rig.authorizer().may_stop("T1", "FAMILY", "T2")
    assert rig.csms.asked == []


async def test_a_stale_local_parent_is_rechecked_online(rig: Rig) -> None:
    rig.cache("T2", "Accepted", parent="OLD-GROUP")
    rig.csms.answers["T2"] = info("Accepted", parent="FAMILY")
    assert await rig.authorizer().may_stop("T1", "FAMILY", "T2")
    assert rig.csms.asked == ["T2"]


async def test_the_starting_tags_group_is_looked_up_when_not_given(rig: Rig) -> None:
    # e.g. a transaction started offline for an unknown tag; StartTransaction.conf told us more
    auth = rig.authorizer()
    await auth.remember("T1", info("Accepted", parent="FAMILY"))
    rig.cache("T2", "Accepted", parent="FAMILY")
    rig.online = False
    assert await auth.may_stop("T1", None, "T2")


async def test_without_a_group_only_the_starting_tag_stops(rig: Rig) -> None:
    rig.csms.answers["T2"] = info("Accepted", parent="FAMILY")
    assert not await rig.authorizer().may_stop("T1", None, "T2")
    assert rig.csms.asked == []
