"""What the benchmarks share: the machine line, process figures from /proc, percentiles.

Imported by the scripts beside it (``bench/`` is on ``sys.path`` when one of them runs).
Linux only: RSS and CPU time come from ``/proc/<pid>``.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

CLK_TCK = os.sysconf("SC_CLK_TCK")


def load_avg() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def machine() -> dict[str, Any]:
    """What the figures were measured on; the load is taken again at the end of each run."""
    model = ""
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_at_start": load_avg(),
    }


def rss_kib(pid: int) -> int:
    """Resident set size of ``pid`` (VmRSS), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def nearest_rank(sorted_values: list[float], fraction: float) -> float:
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def percentiles(values: list[float], digits: int = 3) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "min": round(ordered[0], digits),
        "p50": round(statistics.median(ordered), digits),
        "p99": round(nearest_rank(ordered, 0.99), digits),
        "max": round(ordered[-1], digits),
    }


def slope_per_unit(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (x, y) points (0 with fewer than two distinct x)."""
    if len(points) < 2:
        return 0.0
    xs = [x for x, _ in points]
    ys = [y for _, y in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    if den == 0:
        return 0.0
    return sum((x - mx) * (y - my) for x, y in points) / den


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def emit(result: dict[str, Any], as_json: bool, text: Callable[[dict[str, Any]], None]) -> None:
    """Print the result (text or one JSON object), with the load at the end of the run."""
    result.setdefault("machine", machine())
    result["machine"]["load_at_end"] = load_avg()
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        text(result)
        m = result["machine"]
        print(
            f"  machine:      {m['cpu']}, {m['cores']} cores, Linux {m['kernel']}, "
            f"Python {m['python']}; load {m['load_at_start']} at start, "
            f"{m['load_at_end']} at end"
        )
    sys.stdout.flush()


def quiet_logs() -> None:
    import logging

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    for noisy in ("ocpp", "websockets", "pymodbus", "evsed", "hal", "evsed_devcsms"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)


class Ctl:
    """The daemon's control socket, spoken to directly (no ``evsectl`` process per call)."""

    def __init__(self, socket_path: Path) -> None:
        self.path = socket_path

    def _ask(self, message: dict[str, Any]) -> dict[str, Any]:
        from evsed.control.cli import request

        reply = request(self.path, message)
        if not reply.get("ok"):
            raise RuntimeError(f"control request {message} failed: {reply}")
        return reply

    def sim(self, *words: str, connector: int | None = None) -> None:
        message: dict[str, Any] = {"cmd": "sim", "args": list(words)}
        if connector is not None:
            message["connector"] = connector
        self._ask(message)

    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = self._ask({"cmd": "status"})["status"]
        return status

    def connector(self, connector: int) -> dict[str, Any]:
        found: dict[str, Any] = next(c for c in self.status()["connectors"] if c["id"] == connector)
        return found
