"""Start-up: process start -> BootNotification sent, and what the imports cost.

A development CSMS runs as its own process on 127.0.0.1 (its start is not counted). Each run
starts ``python -m evsed`` on a fresh state directory (a twin-socket charger on simulated
hardware, the shipped log level INFO, OTA off: there is no RAUC service to ask here) and times
from just before ``Popen`` to the CSMS journal's receive time of the BootNotification CALL
(both wall clocks of this machine; the journal has millisecond resolution). The first run is a
warm-up (page cache, .pyc files) and is not counted.

Then one more start under ``python -X importtime``: the sum of every module's own import time,
and that sum split by top-level package. ``python -c pass`` is timed too: the interpreter's own
start, which no change to evsed can remove.

Target: <= 0.3 s from process start to BootNotification (the median over the runs).

Run: ``.venv/bin/python bench/startup.py [--runs N] [--json]``.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

from benchlib import emit, machine, percentiles, verdict

from evsed_devtools.harness import PYTHON, DevCsms, wait_for, write_config

TARGET_S = 0.3
IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)")


def _config(workdir: Path, csms: DevCsms, cp: str) -> Path:
    return write_config(
        workdir, csms.ws_url, cp, connectors=2, logging={"level": "INFO"}, ota={"enabled": False}
    )


def _boot_time(csms: DevCsms, cp: str) -> float:
    calls = csms.wait_for_calls("BootNotification", cp=cp, timeout=30)
    return datetime.fromisoformat(calls[0]["t"]).timestamp()


def _one_start(csms: DevCsms, workdir: Path, cp: str, extra: tuple[str, ...] = ()) -> float:
    config = _config(workdir, csms, cp)
    err = open(workdir / "stderr.log", "w")  # noqa: SIM115 - closed below
    t0 = time.time()
    proc = subprocess.Popen(
        [PYTHON, *extra, "-m", "evsed", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=err,
    )
    try:
        return _boot_time(csms, cp) - t0
    finally:
        proc.terminate()
        proc.wait(20)
        err.close()


def _importtime(csms: DevCsms, workdir: Path) -> dict[str, Any]:
    _one_start(csms, workdir, "bench-imports", ("-X", "importtime"))
    self_us = 0
    top: dict[str, int] = defaultdict(int)
    for line in (workdir / "stderr.log").read_text().splitlines():
        match = IMPORT_LINE.match(line)
        if not match:
            continue
        own, _cumulative, _indent, name = match.groups()
        self_us += int(own)
        top[name.split(".")[0]] += int(own)  # each module's own time, by top-level package
    largest = sorted(top.items(), key=lambda kv: -kv[1])[:12]
    return {
        "total_s": round(self_us / 1e6, 3),
        "own_time_by_package_ms": {name: round(us / 1e3, 1) for name, us in largest},
    }


def _bare_python() -> float:
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        subprocess.run([PYTHON, "-c", "pass"], check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(runs: int) -> dict[str, Any]:
    start = machine()
    with tempfile.TemporaryDirectory(prefix="evsed-bench-") as tmp:
        root = Path(tmp)
        csms = DevCsms.start(root)
        try:
            wait_for(lambda: csms.api("/api/chargers") is not None, what="CSMS admin API")
            boots = []
            for n in range(runs + 1):
                workdir = root / f"run{n}"
                workdir.mkdir()
                boot = _one_start(csms, workdir, f"bench-{n:02d}")
                if n:  # the first is the warm-up
                    boots.append(boot)
            imports_dir = root / "imports"
            imports_dir.mkdir()
            imports = _importtime(csms, imports_dir)
        finally:
            csms.stop()
    stats = percentiles(boots)
    return {
        "benchmark": "startup",
        "boot_notification_s": stats,
        "target_s": TARGET_S,
        "target_met": stats["p50"] <= TARGET_S,
        "imports": imports,
        "python_c_pass_s": round(_bare_python(), 3),
        "machine": start,
    }


def print_text(r: dict[str, Any]) -> None:
    b = r["boot_notification_s"]
    print("evsed start-up: process start -> BootNotification at the CSMS")
    print(
        f"  start -> boot (s): median {b['p50']:.3f}  min {b['min']:.3f}  max {b['max']:.3f}  "
        f"({b['n']} runs after a warm-up)"
    )
    print(f"  target:       median <= {r['target_s']:g} s: {verdict(r['target_met'])}")
    print(f"  imports:      {r['imports']['total_s']:.3f} s in all (python -X importtime)")
    largest = ", ".join(f"{k} {v:.0f}" for k, v in r["imports"]["own_time_by_package_ms"].items())
    print(f"  by package (ms, own import time): {largest}")
    print(f"  python -c pass: {r['python_c_pass_s']:.3f} s (the interpreter alone)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="counted starts (default 5)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    emit(measure(args.runs), args.json, print_text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
