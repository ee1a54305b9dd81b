"""The fault history in the state database: raised, cleared, reported, bounded, closed at
start-up; read by the plain function the diagnostics archive uses."""

from pathlib import Path

from evsed.store.db import Database
from evsed.store.faults import FaultStore, fault_history


def test_a_fault_is_raised_reported_and_cleared(tmp_path: Path) -> None:
    db = Database(tmp_path)
    store = FaultStore(db)
    store.raised(2, "rcd-tripped", "EVSED-RCD", "residual current", "t1")
    store.reported(2, "EVSED-RCD", "GroundFailure")
    [row] = fault_history(db)
    assert (row["connector_id"], row["reported_error_code"], row["cleared_at"]) == (
        2,
        "GroundFailure",
        None,
    )
    store.cleared(2, "rcd-tripped", "t2")
    [row] = fault_history(db)
    assert (row["cleared_at"], row["ended"]) == ("t2", "cleared")
    db.close()


def test_the_history_is_bounded_oldest_cleared_first(tmp_path: Path) -> None:
    db = Database(tmp_path)
    store = FaultStore(db, max_rows=3)
    store.raised(1, "weld", "EVSED-WELDED", "welded", "t0")  # stays open: kept
    for i in range(5):
        store.raised(1, f"f{i}", "V", "i", f"t{i + 1}")
        store.cleared(1, f"f{i}", f"t{i + 1}")
    rows = fault_history(db)
    assert len(rows) == 3
    assert [r["fault"] for r in rows] == ["f4", "f3", "weld"]
    db.close()


def test_rows_open_at_a_restart_are_closed_and_filtered_by_connector(tmp_path: Path) -> None:
    db = Database(tmp_path)
    store = FaultStore(db)
    store.raised(1, "a", "V", "i", "t1")
    store.raised(2, "b", "V", "i", "t2")
    assert store.close_open("t3") == 2
    assert [r["ended"] for r in fault_history(db)] == ["restart", "restart"]
    assert [r["fault"] for r in fault_history(db, connector_id=2)] == ["b"]
    assert len(fault_history(db, limit=1)) == 1
    db.close()
