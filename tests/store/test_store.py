"""The state database: migrations that only add, integrity check, the bounded outbox."""

import sqlite3
from pathlib import Path

import pytest

from evsed.store.db import DB_NAME, MIGRATIONS, Database, StoreError
from evsed.store.transactions import TransactionStore


def test_a_new_database_gets_every_migration(tmp_path: Path) -> None:
    db = Database(tmp_path)
    assert db.schema_version == len(MIGRATIONS)
    db.close()


def test_an_older_database_is_migrated_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / DB_NAME
    conn = sqlite3.connect(path)
    conn.executescript(MIGRATIONS[0] + "; PRAGMA user_version = 1;")
    conn.execute(
        "INSERT INTO transactions (connector_id, id_tag, meter_start_wh, started_at,"
        " last_meter_wh) VALUES (1, 'TAG', 10, 't', 10)"
    )
    conn.commit()
    conn.close()
    db = Database(tmp_path)
    assert db.schema_version == len(MIGRATIONS)
    record = TransactionStore(db).get(1)
    assert record is not None and record.id_tag == "TAG" and record.transaction_data == "[]"
    db.close()


def test_a_newer_database_still_opens_after_a_rollback(tmp_path: Path) -> None:
    """After a RAUC rollback the older release must open what the newer one wrote."""
    Database(tmp_path).close()
    conn = sqlite3.connect(tmp_path / DB_NAME)
    conn.executescript(
        "ALTER TABLE transactions ADD COLUMN added_later TEXT;"
        f"PRAGMA user_version = {len(MIGRATIONS) + 5};"
    )
    conn.close()
    db = Database(tmp_path)
    store = TransactionStore(db)
    local = store.start(1, "TAG", 5, "t", ("StartTransaction", {"connector_id": 1}))
    assert store.get(local) is not None
    db.close()


def test_a_damaged_file_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / DB_NAME).write_bytes(b"not a database at all" * 100)
    with pytest.raises(StoreError, match=r"cannot open state database|integrity check failed"):
        Database(tmp_path)


def test_outbox_drops_oldest_meter_values_first_and_never_starts_or_stops(tmp_path: Path) -> None:
    db = Database(tmp_path)
    store = TransactionStore(db, max_messages=100)
    local = store.start(1, "TAG", 0, "t0", ("StartTransaction", {"connector_id": 1}))
    for i in range(150):
        store.sample(local, i, f"t{i}", ("MeterValues", {"n": i}))
    store.stop(local, 200, "t9", "Local", ("StopTransaction", {"meter_stop": 200}))
    assert store.pending() == 100
    actions = []
    while (message := store.next_message()) is not None:
        actions.append((message.action, message.payload.get("n")))
        store.delivered(message.seq)
    assert actions[0] == ("StartTransaction", None)
    assert actions[-1] == ("StopTransaction", None)
    kept = [n for action, n in actions if action == "MeterValues"]
    assert kept == list(range(52, 150))  # the newest samples survive, in order
    db.close()


def test_a_stop_is_recorded_once(tmp_path: Path) -> None:
    db = Database(tmp_path)
    store = TransactionStore(db)
    local = store.start(1, "TAG", 0, "t0", ("StartTransaction", {}))
    assert store.stop(local, 5, "t1", "Local", ("StopTransaction", {}))
    assert not store.stop(local, 6, "t2", "Local", ("StopTransaction", {}))
    assert store.pending() == 2
    db.close()
