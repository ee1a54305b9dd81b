"""StorageHealth against a real SQLite database that is made full: ``PRAGMA max_page_count``
caps the file at its current size, so commits fail with SQLITE_FULL exactly as on a full disk
(the daemon-level tests use a real full tmpfs)."""

import asyncio
from pathlib import Path

from evsed.store.db import Database
from evsed.store.health import StorageHealth
from evsed.store.transactions import TransactionStore


def _fill(db: Database) -> None:
    pages = db._conn.execute("PRAGMA page_count").fetchone()[0]
    db._conn.execute(f"PRAGMA max_page_count = {pages}")


def _unfill(db: Database) -> None:
    db._conn.execute("PRAGMA max_page_count = 1073741823")


def _payload() -> tuple[str, dict[str, object]]:
    return ("StartTransaction", {"blob": "x" * 20000})  # needs new pages


async def test_a_write_is_retried_until_it_commits_and_listeners_hear_both_changes(
    tmp_path: Path,
) -> None:
    db = Database(tmp_path)
    store = TransactionStore(db)
    health = StorageHealth(db)
    heard: list[bool] = []
    health.subscribe(heard.append)
    _fill(db)
    write = asyncio.create_task(
        health.write("StartTransaction", store.start, 1, "TAG", 0, "t", _payload())
    )
    await asyncio.wait_for(health.failing(), 2)
    assert not health.ok and "full" in health.error
    await asyncio.sleep(1.2)  # a few attempts, all failing
    assert not write.done() and store.open_transactions() == []
    _unfill(db)
    local_id = await asyncio.wait_for(write, 10)
    assert [r.id for r in store.open_transactions()] == [local_id]
    assert health.ok and health.error == ""
    assert heard == [False, True]
    await health.stop()
    db.close()


async def test_a_skippable_write_fails_once_and_the_probe_finds_recovery(tmp_path: Path) -> None:
    db = Database(tmp_path)
    store = TransactionStore(db)
    health = StorageHealth(db)
    _fill(db)
    assert not await health.try_write(
        "sample", store.enqueue, "MeterValues", {"b": "y" * 20000}, "t"
    )
    assert not health.ok
    _unfill(db)
    for _ in range(100):  # the probe retries every 0.5 s, then backs off
        if health.ok:
            break
        await asyncio.sleep(0.1)
    assert health.ok
    assert store.pending() == 0  # the skipped write is not committed later behind our back
    await health.stop()
    db.close()


async def test_hurry_makes_a_waiting_write_try_again_at_once(tmp_path: Path) -> None:
    db = Database(tmp_path)
    store = TransactionStore(db)
    health = StorageHealth(db)
    _fill(db)
    write = asyncio.create_task(
        health.write("StopTransaction", store.start, 1, "TAG", 0, "t", _payload())
    )
    await asyncio.sleep(2.0)  # backed off to a few seconds between attempts by now
    _unfill(db)
    loop = asyncio.get_running_loop()
    began = loop.time()
    health.hurry()
    await asyncio.wait_for(write, 5)
    assert loop.time() - began < 0.5
    await health.stop()
    db.close()


async def test_a_read_only_database_during_a_session_is_retried_until_it_takes_writes(
    tmp_path: Path,
) -> None:
    """A state directory that turns read-only while the daemon runs (an SD card or a file
    system that failed and was remounted read-only). Remounting a file system read-only while
    the daemon holds the database open for writing is refused (EBUSY), so SQLite itself is made
    to refuse writes: ``PRAGMA query_only`` gives the SQLITE_READONLY error a read-only file
    gives. The stop waits, retried, and is committed once writes are taken again."""
    db = Database(tmp_path)
    store = TransactionStore(db)
    health = StorageHealth(db)
    local_id = await health.write("StartTransaction", store.start, 1, "TAG", 0, "t", _payload())
    db._conn.execute("PRAGMA query_only = ON")
    stop = asyncio.create_task(
        health.write(
            "StopTransaction", store.stop, local_id, 25, "t2", "EVDisconnected", _payload()
        )
    )
    await asyncio.wait_for(health.failing(), 2)
    assert not health.ok and "readonly" in health.error
    await asyncio.sleep(1.2)
    assert not stop.done()
    assert [r.id for r in store.open_transactions()] == [local_id]  # not stopped yet
    db._conn.execute("PRAGMA query_only = OFF")
    await asyncio.wait_for(stop, 10)
    assert store.open_transactions() == []
    assert health.ok
    await health.stop()
    db.close()
