"""Full bundle vs delta (casync) bundle: bytes a charger downloads and the wall time of an update.

For each share of changed blocks (default 1 %, 10 %, 50 %) the benchmark makes release 2.0.0
of a root file system image (``evsed_devtools.delta_images``: an ext4 image whose payload has
that share of its 4 KiB blocks rewritten, in runs of ``--run-blocks`` blocks, then rebuilt with
mkfs), its full bundle and its delta bundle (rauc/make-delta-bundle), and installs each into slot
B of a RAUC sandbox (real rauc and casync, private D-Bus, file-backed slots) whose booted slot A
holds release 1.0.0. Both go the daemon's way: the bundle is downloaded with
``evsed.ota.download.download`` from the development CSMS's file server on 127.0.0.1, then
``rauc install``; for the delta bundle RAUC's casync fetches the chunks slot A lacks through
``evsed.ota.chunks.ChunkRelay`` from the same server. Bytes are what the file server sent
(bundle plus chunks); after every install the slot's SHA-256 is compared with the image.

Wall time is download + install on loopback, so it shows the device-side cost (casync chunks
the seed slot and decompresses every chunk); the link is not modelled. ``at N Mbit/s`` adds the
time the bytes would take on a link of that rate (``--link-mbps``, default 2: a modest cellular
uplink to a charger), as arithmetic, not a measurement.

Run as root (rauc install loop-mounts the bundle), from the repository root after ``make venv``:
``.venv/bin/python bench/delta_update.py [--shares 1,10,50] [--image-mib 64] [--run-blocks 16]
[--chunk-size MIN:AVG:MAX] [--json]``. Exits 0 when every install completed with the right
content, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from evsed.ota.chunks import ChunkRelay
from evsed.ota.download import download
from evsed_devcsms import DevCsms
from evsed_devtools.delta_images import (
    BLOCK,
    bundle_image,
    change_blocks,
    make_delta,
    make_image,
    payload_size,
    random_payload,
)
from evsed_devtools.harness import free_port
from evsed_devtools.rauc_sandbox import RaucSandbox
from evsed_devtools.rauc_tools import MiB, make_dev_keys


@dataclass
class Row:
    changed_pct: int
    changed_blocks: int
    kind: str  # full / delta
    bundle_bytes: int
    store_bytes: int  # whole chunk store on the server (delta only)
    served_bytes: int  # what the charger downloaded
    served_pct_of_full: float
    chunks_fetched: int
    download_s: float
    install_s: float
    wall_s: float
    at_link_s: float
    content_ok: bool


def _sha256(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def _served(csms: DevCsms, prefix: str) -> int:
    with urllib.request.urlopen(f"{csms.http_url}/api/files/served?prefix={prefix}") as answer:
        return int(json.loads(answer.read())["bytes"])


async def _install(
    box: RaucSandbox, csms: DevCsms, relay: ChunkRelay, name: str, work: Path, *, delta: bool
) -> tuple[float, float, int]:
    """Download ``name`` from the CSMS and install it; (download s, install s, chunks)."""
    started = time.monotonic()
    local = await download(f"{csms.http_url}/files/{name}", work / "download" / name)
    downloaded = time.monotonic()
    if delta:
        store = f"{csms.http_url}/files/{name.removesuffix('.raucb')}.castr"
        async with relay.serve(store):
            result = await asyncio.to_thread(box.rauc, "install", str(local), timeout=1800)
        await relay.clear_cache()
    else:
        result = await asyncio.to_thread(box.rauc, "install", str(local), timeout=1800)
    if result.returncode != 0:
        raise RuntimeError(f"rauc install {name} failed:\n{result.stdout}{result.stderr}")
    local.unlink()
    chunks = relay.stats.fetched if delta else 0
    return downloaded - started, time.monotonic() - downloaded, chunks


async def run(args: argparse.Namespace) -> list[Row]:
    size = args.image_mib * MiB
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="evsed-delta-bench-") as tmp:
        work = Path(tmp)
        files = work / "files"
        files.mkdir()
        (work / "download").mkdir()
        keys = work / "keys"
        make_dev_keys(keys / "dev")
        first = random_payload(payload_size(size), seed=1)
        v1 = make_image(work / "v1.img", "1.0.0", first, size)
        port = free_port()
        box = RaucSandbox(work / "rauc", slot_size=size, casync_store=f"http://127.0.0.1:{port}/")
        shutil.copytree(keys, box.keys_dir)
        relay = ChunkRelay(port, work / "chunks")
        with box:
            box.create()
            box.flash("A", v1)
            box.start_service("A")
            async with DevCsms(files_dir=files) as csms:
                for pct in args.shares:
                    blocks = size // BLOCK * pct // 100
                    second, changed = change_blocks(
                        first, blocks, seed=100 + pct, run_blocks=args.run_blocks
                    )
                    v2 = make_image(work / f"v2-{pct}.img", "2.0.0", second, size)
                    full = bundle_image(v2, "2.0.0", files / f"full-{pct}.raucb", keys / "dev")
                    made = make_delta(
                        full, files / f"delta-{pct}.raucb", keys / "dev", chunk_size=args.chunk_size
                    )
                    expected = _sha256(v2)
                    for kind, name in (("full", full.name), ("delta", made.bundle.name)):
                        prefix = name.removesuffix(".raucb") + "."
                        before = await asyncio.to_thread(_served, csms, prefix)
                        dl_s, inst_s, chunks = await _install(
                            box, csms, relay, name, work, delta=kind == "delta"
                        )
                        served = await asyncio.to_thread(_served, csms, prefix) - before
                        rows.append(
                            Row(
                                changed_pct=pct,
                                changed_blocks=changed,
                                kind=kind,
                                bundle_bytes=(made.bundle if kind == "delta" else full)
                                .stat()
                                .st_size,
                                store_bytes=made.store_bytes if kind == "delta" else 0,
                                served_bytes=served,
                                served_pct_of_full=round(100 * served / full.stat().st_size, 2),
                                chunks_fetched=chunks,
                                download_s=round(dl_s, 3),
                                install_s=round(inst_s, 3),
                                wall_s=round(dl_s + inst_s, 3),
                                at_link_s=round(
                                    served * 8 / (args.link_mbps * 1e6) + dl_s + inst_s, 1
                                ),
                                content_ok=box.slot_sha256("B", size) == expected,
                            )
                        )
                    os.remove(v2)
    return rows


def _print(rows: list[Row], args: argparse.Namespace) -> None:
    print(
        f"image {args.image_mib} MiB, changes in runs of {args.run_blocks} x 4 KiB blocks,"
        f" casync chunks {args.chunk_size or 'default (avg 64 KiB)'};"
        " rauc + casync installing into a file-backed slot"
    )
    header = (
        f"{'changed':>8} {'kind':>5} {'downloaded':>12} {'% of full':>9} {'chunks':>6}"
        f" {'download s':>10} {'install s':>9} {'wall s':>7} {'at ' + str(args.link_mbps):>6}"
        " Mbit/s s  content"
    )
    print(header)
    for r in rows:
        print(
            f"{r.changed_pct:>7}% {r.kind:>5} {r.served_bytes:>12,} {r.served_pct_of_full:>8.1f}%"
            f" {r.chunks_fetched:>6} {r.download_s:>10.2f} {r.install_s:>9.2f} {r.wall_s:>7.2f}"
            f" {r.at_link_s:>13.1f}  {'ok' if r.content_ok else 'WRONG'}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shares", default="1,10,50", help="changed blocks, percent")
    parser.add_argument("--image-mib", type=int, default=64)
    parser.add_argument("--run-blocks", type=int, default=16, help="changed blocks per run")
    parser.add_argument("--link-mbps", type=float, default=2.0)
    parser.add_argument(
        "--chunk-size", default="", help="casync MIN:AVG:MAX bytes (default casync's 16K:64K:256K)"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    args.shares = [int(s) for s in args.shares.split(",")]
    if os.geteuid() != 0:
        print("needs root: rauc install loop-mounts the bundle", file=sys.stderr)
        return 1
    try:
        rows = asyncio.run(run(args))
    except Exception as exc:  # the benchmark's boundary: say why and fail
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"args": vars(args), "rows": [asdict(r) for r in rows]}, indent=2))
    else:
        _print(rows, args)
    return 0 if all(r.content_ok for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
