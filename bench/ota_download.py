"""Firmware download: evsed's downloader against ``curl`` on the same loopback server, and the
downloader's memory while it fetches a large bundle.

The server is the development CSMS's file server (``GET /files/<name>``, Python's
``ThreadingHTTPServer``, its own process) on 127.0.0.1, serving a ``--mib`` MiB file of random
bytes (default 200, the size of a full RAUC bundle). The two clients take turns, after one
warm-up each (page cache): ``curl -s -o FILE URL`` and a Python process running
``evsed.ota.download.download(URL, FILE)`` (a worker thread, 64 KiB chunks, a free-space check
per chunk, fsync and rename at the end), each writing into the same temporary directory. The
time is the client process's own measure of the transfer (curl's ``time_total``; for evsed the
``download()`` call). Memory: the downloader process's peak RSS (``VmHWM``) minus its RSS just
before the call; the downloaded file's SHA-256 is checked against the source.

evsed's time includes the fsync and rename that make the bundle durable before the download
is reported complete; curl does neither, so ``sync FILE`` after each curl run is timed too and
a second ratio, against curl plus that fsync, is printed beside the first (the target is held
against plain curl).

Targets: evsed's throughput >= 80 % of curl's (median of the runs), memory growth < 5 MB.

Run: ``.venv/bin/python bench/ota_download.py [--mib N] [--runs N] [--json]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchlib import emit, machine, verdict

from evsed_devtools.harness import PYTHON, DevCsms

TARGET_RATIO = 0.8
TARGET_GROWTH_MB = 5.0
CHILD = """
import asyncio, hashlib, json, sys, time
from pathlib import Path
from evsed.ota.download import download

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1])

url, dest = sys.argv[1], Path(sys.argv[2])
before = status("VmRSS:")
t0 = time.perf_counter()
asyncio.run(download(url, dest))
elapsed = time.perf_counter() - t0
digest = hashlib.sha256()
with open(dest, "rb") as f:
    while chunk := f.read(1 << 20):
        digest.update(chunk)
print(json.dumps({"s": elapsed, "rss_before_kib": before, "hwm_kib": status("VmHWM:"),
                  "sha256": digest.hexdigest()}))
"""


def _make_file(path: Path, mib: int) -> str:
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        for _ in range(mib):
            block = os.urandom(1 << 20)
            digest.update(block)
            f.write(block)
    return digest.hexdigest()


def _curl(url: str, dest: Path) -> tuple[float, float]:
    """curl's transfer time, and the time of ``sync FILE`` after it (fsync of the file)."""
    out = subprocess.run(
        ["curl", "-s", "-f", "-o", str(dest), "-w", "%{time_total}", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    t0 = time.perf_counter()
    subprocess.run(["sync", str(dest)], check=True)
    synced = time.perf_counter() - t0
    dest.unlink()
    return float(out), synced


def _evsed(url: str, dest: Path, sha256: str) -> dict[str, Any]:
    out = subprocess.run(
        [PYTHON, "-c", CHILD, url, str(dest)], capture_output=True, text=True, check=True
    ).stdout
    result: dict[str, Any] = json.loads(out)
    dest.unlink()
    if result["sha256"] != sha256:
        raise RuntimeError("the downloaded file differs from the source")
    return result


def measure(mib: int, runs: int) -> dict[str, Any]:
    start = machine()
    with tempfile.TemporaryDirectory(prefix="evsed-bench-") as tmp:
        root = Path(tmp)
        files = root / "files"
        files.mkdir()
        sha256 = _make_file(files / "bundle.raucb", mib)
        csms = DevCsms.start(root, "--files", str(files))
        try:
            url = f"{csms.http_url}/files/bundle.raucb"
            dest = root / "dest.raucb"
            _curl(url, dest)
            _evsed(url, dest, sha256)
            curl_s, sync_s, evsed_s, growth_kib = [], [], [], []
            for _ in range(runs):
                transfer, synced = _curl(url, dest)
                curl_s.append(transfer)
                sync_s.append(synced)
                one = _evsed(url, dest, sha256)
                evsed_s.append(one["s"])
                growth_kib.append(one["hwm_kib"] - one["rss_before_kib"])
        finally:
            csms.stop()
    size_mb = mib * (1 << 20) / 1e6
    curl_mbps = size_mb / statistics.median(curl_s)
    evsed_mbps = size_mb / statistics.median(evsed_s)
    ratios = [c / e for c, e in zip(curl_s, evsed_s, strict=True)]
    synced_ratios = [(c + y) / e for c, y, e in zip(curl_s, sync_s, evsed_s, strict=True)]
    growth_mb = max(growth_kib) * 1024 / 1e6
    return {
        "benchmark": "ota_download",
        "size_mib": mib,
        "runs": runs,
        "curl_s": [round(v, 3) for v in curl_s],
        "evsed_s": [round(v, 3) for v in evsed_s],
        "curl_mb_per_s": round(curl_mbps, 1),
        "evsed_mb_per_s": round(evsed_mbps, 1),
        "ratio_median": round(statistics.median(ratios), 3),
        "curl_fsync_s": [round(v, 3) for v in sync_s],
        "ratio_vs_curl_plus_fsync_median": round(statistics.median(synced_ratios), 3),
        "memory_growth_mb_max": round(growth_mb, 2),
        "target_ratio": TARGET_RATIO,
        "target_growth_mb": TARGET_GROWTH_MB,
        "throughput_target_met": statistics.median(ratios) >= TARGET_RATIO,
        "memory_target_met": growth_mb < TARGET_GROWTH_MB,
        "machine": start,
    }


def print_text(r: dict[str, Any]) -> None:
    print(f"firmware download of {r['size_mib']} MiB over 127.0.0.1: evsed vs curl")
    print(f"  curl:   {r['curl_mb_per_s']:.0f} MB/s (median of {r['runs']}: {r['curl_s']} s)")
    print(f"  evsed:  {r['evsed_mb_per_s']:.0f} MB/s (median of {r['runs']}: {r['evsed_s']} s)")
    print(
        f"  evsed/curl throughput: {r['ratio_median']:.2f} (median of pairs); target >= "
        f"{r['target_ratio']:g}: {verdict(r['throughput_target_met'])}"
    )
    print(
        f"  against curl + fsync of its file (sync FILE: {r['curl_fsync_s']} s; evsed fsyncs "
        f"before it returns): {r['ratio_vs_curl_plus_fsync_median']:.2f}"
    )
    print(
        f"  memory growth while downloading: {r['memory_growth_mb_max']:.2f} MB (peak RSS - "
        f"RSS before, worst run); target < {r['target_growth_mb']:g} MB: "
        f"{verdict(r['memory_target_met'])}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=200, help="bundle size (default 200 MiB)")
    parser.add_argument("--runs", type=int, default=3, help="counted runs of each (default 3)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    emit(measure(args.mib, args.runs), args.json, print_text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
