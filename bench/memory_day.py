"""Memory over an accelerated day of sessions: RSS at the end and its growth per simulated hour.

The daemon runs as its own process, a twin-socket charger on simulated hardware, with TLS to
the CSMS (wss:// to a development CSMS process on 127.0.0.1 with a certificate from a local CA
that the daemon trusts through ``SSL_CERT_FILE``) and OTA enabled (no firmware update runs:
RAUC is not started here, so this covers the OTA code being loaded and its start-up checks).

A simulated hour is two sessions per connector, both connectors at once, each: plug, present a
card, charge (state C) for ``--charge-s`` seconds with MeterValues every second, state B,
unplug. So a day of 24 hours is 96 sessions and about 2 000 MeterValues: a busy public charger's
day, at the wall-clock cost of a few minutes. RSS (``VmRSS``) is sampled after every simulated
hour; the growth is the least-squares slope over the hours after the first two (the warm-up:
caches, first connections, lazily imported code).

Target: RSS <= 35 MiB at the end of the day, and no growth (we call a slope below 64 KiB per
simulated hour "none": the allocator's noise).

Run: ``.venv/bin/python bench/memory_day.py [--hours H] [--charge-s S] [--json]``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchlib import Ctl, emit, machine, rss_kib, slope_per_unit, verdict

from evsed_devtools.harness import PYTHON, DevCsms, Evsed, wait_for, write_config

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from tls_support import TestCa  # the tests' own local CA helper

TARGET_MIB = 35.0
NO_GROWTH_KIB_PER_H = 64.0
WARMUP_HOURS = 2


def _session_pair(ctl: Ctl, charge_s: float) -> None:
    for n in (1, 2):
        ctl.sim("plug", connector=n)
        ctl.sim("swipe", f"04E91C2{n}", connector=n)
        ctl.sim("ev-state", "C", connector=n)
    for n in (1, 2):
        wait_for(lambda n=n: ctl.connector(n)["contactor_closed"], 30, f"contactor {n} closed")
    time.sleep(charge_s)
    for n in (1, 2):
        ctl.sim("ev-state", "B", connector=n)
        ctl.sim("unplug", connector=n)
    for n in (1, 2):
        wait_for(
            lambda n=n: ctl.connector(n)["ocpp_status"] == "Available", 30, f"connector {n} free"
        )


IMPORT_STEPS = (
    "sys",
    "asyncio",
    "ssl",
    "sqlite3",
    "websockets",
    "jsonschema",
    "ocpp.v16",
    "cryptography.x509",
    "pymodbus.client",
    "gpiozero",
    "serial_asyncio_fast",
    "evsed.daemon",
)
FLOOR_SCRIPT = """
import importlib, sys
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
for name in sys.argv[1:]:
    importlib.import_module(name)
    print(name, rss())
"""


def _import_floor() -> dict[str, float]:
    """RSS of a bare interpreter after importing each dependency in turn (cumulative)."""
    out = subprocess.run(
        [PYTHON, "-c", FLOOR_SCRIPT, *IMPORT_STEPS], capture_output=True, text=True, check=True
    ).stdout
    return {
        name: round(int(kib) / 1024, 1) for name, kib in (row.split() for row in out.splitlines())
    }


def measure(hours: int, charge_s: float) -> dict[str, Any]:
    start = machine()
    with tempfile.TemporaryDirectory(prefix="evsed-bench-") as tmp:
        root = Path(tmp)
        ca = TestCa(root / "pki")
        server = ca.issue_server("csms", ["localhost"])
        csms = DevCsms.start(root, "--tls-cert", str(server.cert), "--tls-key", str(server.key))
        try:
            url = csms.ws_url.replace("127.0.0.1", "localhost")
            config = write_config(
                root,
                url,
                "bench-mem",
                connectors=2,
                charging={"meter_values_interval_s": 1, "c_debounce_s": 0.0},
                ota={"enabled": True},
                logging={"level": "INFO"},
            )
            evsed = Evsed.launch(config, root / "evsed.log", env={"SSL_CERT_FILE": str(ca.cert)})
            try:
                evsed.wait_registered(30)
                ctl = Ctl(root / "control.sock")
                pid = evsed.proc.pid
                samples = [(0, rss_kib(pid))]
                t0 = time.monotonic()
                for hour in range(1, hours + 1):
                    for _ in range(2):
                        _session_pair(ctl, charge_s)
                    samples.append((hour, rss_kib(pid)))
                wall = time.monotonic() - t0
                csms.wait_for_calls("StopTransaction", 4 * hours, cp="bench-mem", timeout=60)
                stops = len(csms.calls("bench-mem", "StopTransaction"))
                meter_values = len(csms.calls("bench-mem", "MeterValues"))
            finally:
                evsed.stop()
        finally:
            csms.stop()
    steady = [(h, kib) for h, kib in samples if h >= WARMUP_HOURS]
    slope = slope_per_unit([(float(h), float(k)) for h, k in steady])
    end_mib = samples[-1][1] / 1024
    return {
        "benchmark": "memory_day",
        "hours": hours,
        "sessions": 4 * hours,
        "stop_transactions_at_csms": stops,
        "meter_values_at_csms": meter_values,
        "rss_mib_by_hour": [[h, round(k / 1024, 2)] for h, k in samples],
        "rss_end_mib": round(end_mib, 2),
        "growth_kib_per_hour": round(slope, 1),
        "target_mib": TARGET_MIB,
        "target_met": end_mib <= TARGET_MIB and slope < NO_GROWTH_KIB_PER_H,
        "wall_s": round(wall, 1),
        "import_floor_mib": _import_floor(),
        "tls": True,
        "ota_enabled": True,
        "machine": start,
    }


def print_text(r: dict[str, Any]) -> None:
    print("evsed memory over an accelerated day (TLS to the CSMS, OTA enabled)")
    print(
        f"  {r['hours']} simulated hours, {r['sessions']} sessions, the CSMS got "
        f"{r['stop_transactions_at_csms']} StopTransactions and {r['meter_values_at_csms']} "
        f"MeterValues ({r['wall_s']:.0f} s wall)"
    )
    trace = "  ".join(f"h{h}:{m:.1f}" for h, m in r["rss_mib_by_hour"])
    print(f"  RSS (MiB):    {trace}")
    print(
        f"  end {r['rss_end_mib']:.1f} MiB, growth {r['growth_kib_per_hour']:+.1f} KiB per "
        f"simulated hour after hour {WARMUP_HOURS}"
    )
    print(
        f"  target:       <= {r['target_mib']:g} MiB and no growth "
        f"(< {NO_GROWTH_KIB_PER_H:g} KiB/h): {verdict(r['target_met'])}"
    )
    floor = ", ".join(f"+{k} {v:.1f}" for k, v in r["import_floor_mib"].items())
    print(f"  import floor (RSS MiB after importing, in turn): {floor}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=int, default=24, help="simulated hours (default 24)")
    parser.add_argument("--charge-s", type=float, default=3.0, help="charging time per session")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    emit(measure(args.hours, args.charge_s), args.json, print_text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
