"""Installing a casync bundle (a delta update): where its chunks come from, and the retries.

The bundle itself is downloaded and verified as any other (OCPP signature, ``rauc info``
against the keyring, compatible), so a bundle that would be refused costs no chunk. Its chunk
store is the configured ``[ota] casync_store_url``, else the bundle's location with ``.raucb``
replaced by ``.castr`` (as RAUC would look for it); it must be HTTP or HTTPS: FTP locations keep
the full-bundle path. ``rauc install`` then fetches the chunks the running slot lacks through
the :class:`~evsed.ota.chunks.ChunkRelay`. A failed or partial chunk fetch makes the install
fail with the target slot marked bad and the running slot untouched; it is tried again after
``retryInterval``, up to ``retries`` times (OCPP 1.6 §6.55), fetching only the chunks that had
not arrived.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from evsed.ota.chunks import STORE_SCHEMES, ChunkRelay, store_url_for
from evsed.ota.rauc import Rauc, RaucError
from evsed.urls import redact_url

log = logging.getLogger(__name__)


def chunk_store(location: str, configured: str, relay: ChunkRelay | None) -> tuple[str, str]:
    """``(store URL, "")`` for a casync bundle from ``location``, or ``("", why not)``."""
    if relay is None:
        return "", "a delta (casync) bundle, but [ota] casync_relay_port = 0 turns them off"
    store = store_url_for(location, configured)
    scheme = urlsplit(store).scheme
    if scheme not in STORE_SCHEMES:
        return "", (
            f"a delta (casync) bundle needs an HTTP(S) chunk store, not {scheme}:"
            " send an http(s) location or set [ota] casync_store_url"
        )
    return store, ""


async def install(
    rauc: Rauc,
    relay: ChunkRelay,
    bundle: str,
    store_url: str,
    *,
    attempts: int,
    retries: int,
    retry_interval_s: float,
    count_attempt: Callable[[int], Awaitable[None]],
) -> None:
    """``rauc install`` with the relay serving ``store_url``; raises RaucError with the reason.

    ``attempts``: failed attempts so far (persisted by ``count_attempt`` before each wait, so a
    restart does not start the count again)."""
    while True:
        try:
            async with relay.serve(store_url):
                await rauc.install(bundle)
        except OSError as exc:  # the port is taken, or the cache directory cannot be made
            raise RaucError(f"chunk relay on port {relay.address[1]}: {exc}") from exc
        except RaucError as exc:
            stats, failure = relay.stats, relay.failure
            if failure is None:
                if stats.fetched + stats.cached == 0:
                    raise RaucError(
                        f"{exc} (RAUC asked for no chunk: does /etc/rauc/system.conf say"
                        f" [casync] install-args=--store=http://127.0.0.1:{relay.address[1]}/ ?)"
                    ) from exc
                raise  # the chunks arrived; casync or RAUC refused them (e.g. a tampered store)
            attempts += 1
            reason = f"chunk {failure.chunk} from {redact_url(store_url)}: {failure.reason}"
            if attempts > retries:
                raise RaucError(f"{reason} (after {attempts} attempts)") from exc
            log.warning(
                "delta install attempt %d failed (%s; %d chunks had arrived): again in %d s",
                attempts,
                reason,
                stats.fetched + stats.cached,
                retry_interval_s,
            )
            await count_attempt(attempts)
            await asyncio.sleep(retry_interval_s)
            continue
        stats = relay.stats
        log.info(
            "delta update installed: %d chunks (%d bytes) fetched from %s, %d (%d bytes)"
            " kept from earlier attempts",
            stats.fetched,
            stats.fetched_bytes,
            redact_url(store_url),
            stats.cached,
            stats.cached_bytes,
        )
        return
