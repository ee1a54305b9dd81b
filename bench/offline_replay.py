"""Offline replay: ``--messages`` queued transaction messages delivered after the CSMS is back.

The charger was offline for a long time: its state database holds ``--transactions`` finished
transactions (alternating connectors 1 and 2), each a StartTransaction, periodic MeterValues and
a StopTransaction, ``--messages`` in all (default 10 000), written with the daemon's own store
(``evsed.store.transactions.TransactionStore``, the path the daemon queues them by) before the
daemon starts. ``csms.outbox_max_messages`` is raised above the count so that nothing is
dropped: the bound is the reliability suite's subject, not this one's. Then the development CSMS
(its own process on 127.0.0.1) and the daemon start; the drain is timed from the CSMS's receipt
of the BootNotification to its receipt of the last queued message (journal times, ms).

Checked: the CSMS received every queued message exactly once and in the queued order (the
timestamps and actions match the queue, none missing, none twice), and every MeterValues and
StopTransaction carries the id the CSMS gave its StartTransaction.

No target was set; the figures are messages per second and the time to drain. One message at a
time is the OCPP-J rule, so the rate is one round trip plus one SQLite commit (fsync) per
message.

Run: ``.venv/bin/python bench/offline_replay.py [--messages N] [--transactions N] [--json]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchlib import emit, machine

from evsed.clock import iso
from evsed.store.db import Database
from evsed.store.transactions import TransactionStore
from evsed_devtools.harness import DevCsms, Evsed, wait_for, write_config

CP = "bench-offline"
TX_ACTIONS = ("StartTransaction", "MeterValues", "StopTransaction")


def _meter_value(ts: str, wh: float) -> dict[str, Any]:
    return {
        "timestamp": ts,
        "sampled_value": [
            {
                "value": f"{wh:.1f}",
                "context": "Sample.Periodic",
                "measurand": "Energy.Active.Import.Register",
                "unit": "Wh",
            },
            {
                "value": "7360.0",
                "context": "Sample.Periodic",
                "measurand": "Power.Active.Import",
                "unit": "W",
            },
        ],
    }


def fill(state_dir: Path, messages: int, transactions: int) -> list[tuple[str, str]]:
    """Queue the messages; return (action, timestamp) in queue order."""
    store = TransactionStore(Database(state_dir), messages * 2)
    per_tx = messages // transactions
    t = datetime(2026, 1, 1, tzinfo=UTC)
    wh = 1000.0
    queued: list[tuple[str, str]] = []
    for n in range(transactions):
        count = per_tx if n < transactions - 1 else messages - per_tx * (transactions - 1)
        connector = 1 + n % 2
        ts = iso(t)
        start = {"connector_id": connector, "id_tag": "04E91C2A", "meter_start": int(wh)}
        local = store.start(
            connector, "04E91C2A", int(wh), ts, ("StartTransaction", start | {"timestamp": ts})
        )
        queued.append(("StartTransaction", ts))
        for _ in range(count - 2):
            t += timedelta(seconds=60)
            wh += 120.0
            ts = iso(t)
            body = {"connector_id": connector, "meter_value": [_meter_value(ts, wh)]}
            store.sample(local, int(wh), ts, ("MeterValues", body))
            queued.append(("MeterValues", ts))
        t += timedelta(seconds=60)
        ts = iso(t)
        stop = {
            "meter_stop": int(wh),
            "timestamp": ts,
            "reason": "EVDisconnected",
            "id_tag": "04E91C2A",
        }
        store.stop(local, int(wh), ts, "EVDisconnected", ("StopTransaction", stop))
        queued.append(("StopTransaction", ts))
        t += timedelta(seconds=600)
    return queued


def _ts_of(call: dict[str, Any]) -> str:
    payload = call["payload"]
    if call["action"] == "MeterValues":
        return str(payload["meterValue"][0]["timestamp"])
    return str(payload["timestamp"])


def measure(messages: int, transactions: int) -> dict[str, Any]:
    start = machine()
    with tempfile.TemporaryDirectory(prefix="evsed-bench-") as tmp:
        root = Path(tmp)
        queued = fill(root / "state", messages, transactions)
        csms = DevCsms.start(root)
        try:
            config = write_config(
                root,
                csms.ws_url,
                CP,
                connectors=2,
                csms={"outbox_max_messages": messages * 2},
                logging={"level": "INFO"},
            )
            evsed = Evsed.launch(config, root / "evsed.log")
            try:
                wait_for(
                    lambda: len(csms.calls(CP, "StopTransaction")) >= transactions,
                    timeout=max(60.0, messages / 20),
                    what="every queued StopTransaction",
                )
                frames = csms.messages(CP)
            finally:
                evsed.stop()
        finally:
            csms.stop()
    calls = [f for f in frames if f["type"] == 2 and f["dir"] == "in"]
    boot = next(f for f in calls if f["action"] == "BootNotification")
    tx = [f for f in calls if f["action"] in TX_ACTIONS]
    got = [(f["action"], _ts_of(f)) for f in tx]
    in_order = got == queued
    t0 = datetime.fromisoformat(boot["t"])
    t1 = datetime.fromisoformat(tx[-1]["t"])
    drain = (t1 - t0).total_seconds()
    ids_ok = _ids_consistent(frames, tx)
    return {
        "benchmark": "offline_replay",
        "queued": len(queued),
        "transactions": transactions,
        "delivered": len(tx),
        "in_order_exactly_once": in_order,
        "transaction_ids_consistent": ids_ok,
        "drain_s": round(drain, 2),
        "messages_per_s": round(len(tx) / drain, 1),
        "machine": start,
    }


def _ids_consistent(frames: list[dict[str, Any]], tx: list[dict[str, Any]]) -> bool:
    answers = {f["id"]: f for f in frames if f["type"] == 3 and f["dir"] == "out"}
    current = None
    for call in tx:
        if call["action"] == "StartTransaction":
            current = answers[call["id"]]["payload"]["transactionId"]
        elif call["payload"].get("transactionId") != current:
            return False
    return True


def print_text(r: dict[str, Any]) -> None:
    print("offline replay: queued transaction messages delivered after reconnecting")
    print(
        f"  {r['queued']} queued in {r['transactions']} transactions; the CSMS got "
        f"{r['delivered']}; in order, exactly once: {r['in_order_exactly_once']}; "
        f"transaction ids consistent: {r['transaction_ids_consistent']}"
    )
    print(
        f"  drained in {r['drain_s']:.1f} s from BootNotification: "
        f"{r['messages_per_s']:.0f} messages/s"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--transactions", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = measure(args.messages, args.transactions)
    emit(result, args.json, print_text)
    return 0 if result["in_order_exactly_once"] and result["transaction_ids_consistent"] else 1


if __name__ == "__main__":
    sys.exit(main())
