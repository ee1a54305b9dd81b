"""A fleet: N daemons on simulated hardware against one CSMS; the CSMS is cut off for a while
and the reconnect wave is measured.

The development CSMS runs as its own process on 127.0.0.1; between it and the chargers this
script runs a TCP relay that counts every connection attempt (each TCP connection it accepts)
and, while the CSMS is "cut", closes every relayed connection and every new one at once (what a
charger sees when the CSMS or the network in front of it is down: the websocket handshake
fails). Each daemon is its own process (``python -m evsed``), one connector on simulated
hardware, free mode, meter polled every 1 s, MeterValues every 10 s, log level WARNING, and
the shipped reconnect backoff (``reconnect_min_s = 2``, ``reconnect_max_s = 300``: exponential
with full random jitter) unless ``--reconnect-min-s``/``--reconnect-max-s`` say otherwise. The
daemons start in batches of 10 and each starts a charging session; then the CSMS is cut for
``--cut-s`` seconds (default 60) while every car keeps charging, then restored.

Figures: connection attempts per second during the cut and after it (the peak second of the
wave, against N: without jitter every charger would come back within the same second or two),
the time until every charger is connected again, every session's StartTransaction, the
MeterValues it queued while cut off and its StopTransaction delivered exactly once (after the
wave the cars are unplugged), and each daemon's RSS.

There is no fixed target for the wave; the check is that the peak second holds well under N
attempts (jitter spread it) and that every transaction survived.

Run: ``.venv/bin/python bench/fleet.py [--n N] [--cut-s S] [--json]``. 100 daemons take about
4 GiB of memory and a core's worth of CPU on simulated hardware: on a shared 2-core machine use
a smaller ``--n`` and say so with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from benchlib import Ctl, emit, machine, rss_kib

from evsed_devtools.harness import PYTHON, DevCsms, wait_for, write_config

BATCH = 10


class Relay:
    """TCP relay to the CSMS that counts connection attempts and can cut every connection."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.accepts: list[float] = []
        self.cut = False
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.port = 0

    def start(self) -> None:
        self._thread.start()
        server = asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(10)
        self._server = server
        self.port = server.sockets[0].getsockname()[1]

    async def _serve(self) -> asyncio.Server:
        return await asyncio.start_server(self._handle, "127.0.0.1", 0, backlog=1024)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepts.append(time.monotonic())
        if self.cut:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            self._writers -= {writer, up_writer}
            for w in (writer, up_writer):
                w.transport.abort()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.transport.abort()

    def set_cut(self, cut: bool) -> None:
        def apply() -> None:
            self.cut = cut
            if cut:
                for w in list(self._writers):
                    w.transport.abort()

        self._loop.call_soon_threadsafe(apply)

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def _start_daemon(
    root: Path, n: int, url: str, args: argparse.Namespace
) -> tuple[subprocess.Popen[bytes], Ctl, str]:
    cp = f"fleet-{n:03d}"
    workdir = root / cp
    workdir.mkdir()
    config = write_config(
        workdir,
        url,
        cp,
        csms={"reconnect_min_s": args.reconnect_min_s, "reconnect_max_s": args.reconnect_max_s},
        charging={"free_mode": True, "meter_values_interval_s": 10, "c_debounce_s": 0.0},
        connector__meter={"poll_interval_s": 1.0},
        logging={"level": "WARNING"},
    )
    log = open(workdir / "evsed.log", "w")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [PYTHON, "-m", "evsed", "--config", str(config)], stdout=log, stderr=subprocess.STDOUT
    )
    return proc, Ctl(workdir / "control.sock"), cp


def _ctl_up(ctl: Ctl) -> bool:
    try:
        return ctl.status()["ocpp"]["registration"] == "Accepted"
    except (OSError, ValueError, RuntimeError):
        return False


def _per_second(stamps: list[float], t0: float, t1: float) -> list[int]:
    counts = Counter(int(t - t0) for t in stamps if t0 <= t < t1)
    return [counts.get(s, 0) for s in range(int(t1 - t0) + 1)]


def measure(args: argparse.Namespace) -> dict[str, Any]:
    start = machine()
    with tempfile.TemporaryDirectory(prefix="evsed-bench-") as tmp:
        root = Path(tmp)
        csms = DevCsms.start(root)
        relay = Relay(urlsplit(csms.ws_url).port or 0)
        relay.start()
        url = csms.ws_url.replace(f":{urlsplit(csms.ws_url).port}", f":{relay.port}")
        daemons: list[tuple[subprocess.Popen[bytes], Ctl, str]] = []
        try:
            for first in range(0, args.n, BATCH):
                batch = [
                    _start_daemon(root, k, url, args)
                    for k in range(first, min(args.n, first + BATCH))
                ]
                for _, ctl, cp in batch:
                    wait_for(lambda ctl=ctl: _ctl_up(ctl), 120, f"{cp} registered")
                daemons += batch
            for _, ctl, _ in daemons:
                ctl.sim("plug", connector=1)
                ctl.sim("ev-state", "C", connector=1)
            for _, ctl, cp in daemons:
                wait_for(lambda ctl=ctl: ctl.connector(1)["contactor_closed"], 60, f"{cp} charging")
            rss_before = [rss_kib(p.pid) for p, _, _ in daemons]
            time.sleep(2)
            cut_at = time.monotonic()
            relay.set_cut(True)
            time.sleep(args.cut_s)
            restored_at = time.monotonic()
            relay.set_cut(False)

            def all_back() -> bool:
                chargers = {c["id"]: c for c in csms.api("/api/chargers")}
                return all(chargers.get(cp, {}).get("connected") for _, _, cp in daemons)

            wait_for(all_back, args.reconnect_max_s + 120, "every charger connected again")
            all_back_at = time.monotonic()
            for _, ctl, _ in daemons:
                ctl.sim("ev-state", "B", connector=1)
                ctl.sim("unplug", connector=1)
            wait_for(
                lambda: len(csms.calls(action="StopTransaction")) >= args.n,
                120,
                "every StopTransaction",
            )
            time.sleep(2)  # anything sent twice would arrive now
            rss_after = [rss_kib(p.pid) for p, _, _ in daemons]
            calls = csms.calls()
        finally:
            for proc, _, _ in daemons:
                proc.terminate()
            for proc, _, _ in daemons:
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            relay.stop()
            csms.stop()
    per_cp: dict[str, Counter[str]] = {cp: Counter() for _, _, cp in daemons}
    for c in calls:
        if c["cp"] in per_cp:
            per_cp[c["cp"]][c["action"]] += 1
    survived = sum(
        1
        for counts in per_cp.values()
        if counts["StartTransaction"] == 1 and counts["StopTransaction"] == 1
    )
    during = _per_second(relay.accepts, cut_at, restored_at)
    wave = _per_second(relay.accepts, restored_at, all_back_at)
    return {
        "benchmark": "fleet",
        "n": args.n,
        "cut_s": args.cut_s,
        "reconnect_min_s": args.reconnect_min_s,
        "reconnect_max_s": args.reconnect_max_s,
        "attempts_during_cut": sum(during),
        "peak_attempts_per_s_during_cut": max(during, default=0),
        "attempts_in_wave": sum(wave),
        "peak_attempts_per_s_after_restore": max(wave, default=0),
        "wave_per_s": wave,
        "cut_per_s": during,
        "all_connected_after_s": round(all_back_at - restored_at, 1),
        "transactions_survived": survived,
        "meter_values_at_csms": sum(c["MeterValues"] for c in per_cp.values()),
        "rss_mib_per_daemon": {
            "mean_before_cut": round(statistics.fmean(rss_before) / 1024, 1),
            "mean_at_end": round(statistics.fmean(rss_after) / 1024, 1),
            "max_at_end": round(max(rss_after) / 1024, 1),
        },
        "machine": start,
    }


def print_text(r: dict[str, Any]) -> None:
    print(
        f"fleet of {r['n']} daemons, CSMS cut for {r['cut_s']:g} s (backoff "
        f"{r['reconnect_min_s']:g}..{r['reconnect_max_s']:g} s with full jitter)"
    )
    print(
        f"  during the cut: {r['attempts_during_cut']} attempts, peak "
        f"{r['peak_attempts_per_s_during_cut']}/s"
    )
    print(
        f"  after restore:  {r['attempts_in_wave']} attempts, peak "
        f"{r['peak_attempts_per_s_after_restore']}/s (of {r['n']} chargers); all connected "
        f"after {r['all_connected_after_s']:.1f} s"
    )
    print(f"  per second during the cut: {r['cut_per_s']}")
    print(f"  per second after restore:  {r['wave_per_s']}")
    print(
        f"  transactions survived: {r['transactions_survived']} of {r['n']} (one Start and one "
        f"Stop each at the CSMS); {r['meter_values_at_csms']} MeterValues delivered"
    )
    m = r["rss_mib_per_daemon"]
    print(
        f"  RSS per daemon: {m['mean_before_cut']:.1f} MiB mean before the cut, "
        f"{m['mean_at_end']:.1f} mean / {m['max_at_end']:.1f} max at the end"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="daemons (default 100)")
    parser.add_argument("--cut-s", type=float, default=60.0, help="CSMS cut (default 60 s)")
    parser.add_argument("--reconnect-min-s", type=float, default=2.0)
    parser.add_argument("--reconnect-max-s", type=float, default=300.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = measure(args)
    emit(result, args.json, print_text)
    return 0 if result["transactions_survived"] == args.n else 1


if __name__ == "__main__":
    sys.exit(main())
