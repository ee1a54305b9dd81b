"""CPU while charging: the daemon's own CPU time with 0, 1 and 2 connectors charging, and a
profile of what it is spent on.

The daemon runs as its own process (``python -m evsed``), a twin-socket charger on simulated
hardware, free mode (no card), the meters polled every 1 s, MeterValues every 10 s, heartbeat
300 s, log level INFO, against a development CSMS process on 127.0.0.1. CPU time is
utime + stime from ``/proc/<pid>/stat`` over each phase, divided by the phase's wall time.

The simulators run inside the daemon's process in sim mode (the simulated MCU sends a STATUS
frame every 100 ms per connector and reads the daemon's control frames, the Modbus server
answers the meter polls), so the figure includes work that a real charger does not do on its
CPU; the profile says how much of it that is (``hal/sim`` and the pymodbus server).

Profile: one more run of the same two-connector phase under cProfile with a CPU-time timer
(``bench/profiled_evsed.py``; the main thread, where the event loop runs); functions' own time
(tottime) summed by where the code lives: schema validation (jsonschema, referencing),
Modbus client and server (pymodbus), logging, websockets + ocpp, SQLite, the event loop
(asyncio, selectors), the simulators (hal/sim), the drivers (hal), evsed, the rest.

Target: <= 0.5 % of one core per charging connector.

Run: ``.venv/bin/python bench/cpu_charging.py [--seconds S] [--json]``.
"""

from __future__ import annotations

import argparse
import pstats
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from benchlib import cpu_seconds, emit, machine, verdict

from evsed_devtools.harness import PYTHON, DevCsms, Evsed, wait_for, write_config

TARGET_PCT_PER_CONNECTOR = 0.5
BUCKETS = (  # first match wins; matched against "path:function"
    ("schema validation", ("jsonschema", "referencing", "rpds", "/ocpp/messages.py")),
    ("Modbus (pymodbus)", ("pymodbus",)),
    ("logging", ("/logging/", "evsed/logs.py")),
    ("simulators (hal/sim)", ("/hal/sim/",)),
    ("drivers (hal)", ("/hal/",)),
    ("websockets + ocpp", ("websockets", "/ocpp/")),
    ("SQLite", ("sqlite3", "evsed/store/")),
    ("event loop", ("asyncio", "selectors", "select.epoll", "<method 'poll'")),
    ("json", ("/json/", "json.")),
    ("evsed", ("/evsed/",)),
)

LOOP_FILES = ("asyncio/", "selectors.py", "threading.py", "contextvars", "bench/")


def _config(workdir: Path, csms: DevCsms) -> Path:
    return write_config(
        workdir,
        csms.ws_url,
        "bench-cpu",
        connectors=2,
        csms={"reconnect_min_s": 0.2, "reconnect_max_s": 1.0},
        charging={"free_mode": True, "meter_values_interval_s": 10, "c_debounce_s": 0.0},
        connector__meter={"poll_interval_s": 1.0},
        logging={"level": "INFO"},
    )


def _charge(evsed: Evsed, connector: int) -> None:
    evsed.sim("plug", connector=connector)
    evsed.sim("ev-state", "C", connector=connector)
    wait_for(
        lambda: evsed.connector(connector)["contactor_closed"],
        30,
        f"contactor {connector} closed",
    )


def _phase(pid: int, seconds: float) -> float:
    """Percent of one core used by ``pid`` over ``seconds``."""
    c0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return 100.0 * (cpu_seconds(pid) - c0) / (time.monotonic() - t0)


def _measure_cpu(root: Path, csms: DevCsms, seconds: float) -> dict[str, float]:
    workdir = root / "cpu"
    workdir.mkdir()
    evsed = Evsed.launch(_config(workdir, csms), workdir / "evsed.log")
    try:
        evsed.wait_registered(30)
        time.sleep(2)  # let start-up work settle
        pid = evsed.proc.pid
        idle = _phase(pid, seconds)
        _charge(evsed, 1)
        time.sleep(2)
        one = _phase(pid, seconds)
        _charge(evsed, 2)
        time.sleep(2)
        two = _phase(pid, seconds)
    finally:
        evsed.stop()
    return {"idle": round(idle, 3), "one": round(one, 3), "two": round(two, 3)}


def _bucket(path: str, func: str) -> str:
    where = f"{path}:{func}"
    for name, needles in BUCKETS:
        if any(n in where for n in needles):
            return name
    return "other (enum, dataclasses, builtins: called from all of the above)"


def _profile(root: Path, csms: DevCsms, seconds: float) -> dict[str, Any]:
    workdir = root / "profile"
    workdir.mkdir()
    config = _config(workdir, csms)
    out = workdir / "evsed.prof"
    log = open(workdir / "evsed.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [
            PYTHON,
            str(Path(__file__).with_name("profiled_evsed.py")),
            str(out),
            "--config",
            str(config),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    evsed = Evsed(proc, config, workdir / "evsed.log")
    try:
        wait_for(evsed._ready, 30, "evsed control socket")
        evsed.wait_registered(30)
        _charge(evsed, 1)
        _charge(evsed, 2)
        time.sleep(2)
        c0 = cpu_seconds(proc.pid)
        proc.send_signal(signal.SIGUSR1)
        time.sleep(seconds)
        proc.send_signal(signal.SIGUSR2)
        profiled_cpu = cpu_seconds(proc.pid) - c0
        wait_for(out.exists, 10, "the profile")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        log.close()
    stats = pstats.Stats(str(out))
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    buckets: dict[str, float] = defaultdict(float)
    rows, inclusive = [], []
    for (path, _line, func), (_cc, _nc, tottime, cumtime, _callers) in raw.items():
        buckets[_bucket(path, func)] += tottime
        name = f"{Path(path).parent.name}/{Path(path).name}:{func}" if path != "~" else func
        rows.append((tottime, name))
        if path != "~" and not any(n in path for n in LOOP_FILES):
            inclusive.append((cumtime, name))
    total = sum(buckets.values())
    rows.sort(reverse=True)
    inclusive.sort(reverse=True)
    return {
        "note": "main thread CPU time under cProfile during the phase; shares of own time",
        "profiled_phase_cpu_s": round(profiled_cpu, 2),
        "share_pct": {
            k: round(100 * v / total, 1) for k, v in sorted(buckets.items(), key=lambda kv: -kv[1])
        },
        "profiled_main_thread_cpu_s": round(total, 3),
        "top_functions_s": [[name, round(t, 3)] for t, name in rows[:12]],
        "top_inclusive_s": [[name, round(t, 3)] for t, name in inclusive[:15]],
    }


def measure(seconds: float, profile: bool) -> dict[str, Any]:
    start = machine()
    with tempfile.TemporaryDirectory(prefix="evsed-bench-") as tmp:
        root = Path(tmp)
        csms = DevCsms.start(root)
        try:
            cpu = _measure_cpu(root, csms, seconds)
            prof = _profile(root, csms, seconds) if profile else None
        finally:
            csms.stop()
    per_connector = (cpu["two"] - cpu["idle"]) / 2
    return {
        "benchmark": "cpu_charging",
        "seconds_per_phase": seconds,
        "cpu_pct_of_one_core": cpu,
        "per_charging_connector_pct": round(per_connector, 3),
        "per_connector_of_total_pct": round(cpu["two"] / 2, 3),
        "target_pct": TARGET_PCT_PER_CONNECTOR,
        "target_met": cpu["two"] / 2 <= TARGET_PCT_PER_CONNECTOR,
        "profile": prof,
        "machine": start,
    }


def print_text(r: dict[str, Any]) -> None:
    c = r["cpu_pct_of_one_core"]
    print("evsed CPU while charging (1 s meter poll, 10 s MeterValues), % of one core")
    print(
        f"  idle {c['idle']:.2f} %   one charging {c['one']:.2f} %   two charging "
        f"{c['two']:.2f} %   ({r['seconds_per_phase']:g} s each)"
    )
    print(
        f"  per connector: {r['per_connector_of_total_pct']:.2f} % (two-connector total / 2); "
        f"{r['per_charging_connector_pct']:.2f} % above idle"
    )
    print(
        f"  target:        <= {r['target_pct']:g} % per connector (total / 2): "
        f"{verdict(r['target_met'])}"
    )
    if r["profile"]:
        p = r["profile"]
        shares = ", ".join(f"{k} {v:.1f} %" for k, v in p["share_pct"].items())
        print(f"  profile:       {shares}")
        print(
            f"  profiled:      {p['profiled_main_thread_cpu_s']:.3f} s of main-thread CPU; "
            f"the process used {p['profiled_phase_cpu_s']:.2f} s in all"
        )
        print("  top functions (own time, s):")
        for name, t in p["top_functions_s"]:
            print(f"    {t:8.3f}  {name}")
        print("  top functions outside the event loop (inclusive time, s):")
        for name, t in p["top_inclusive_s"]:
            print(f"    {t:8.3f}  {name}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="per phase (default 30)")
    parser.add_argument("--no-profile", action="store_true", help="skip the cProfile run")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    emit(measure(args.seconds, not args.no_profile), args.json, print_text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
