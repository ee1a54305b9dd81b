"""systemd notification protocol (sd_notify(3)): READY, STATUS, STOPPING and watchdog pings.

The protocol is one datagram of ``KEY=value`` lines to the AF_UNIX socket named by
``$NOTIFY_SOCKET`` (a path, or ``@name`` in the abstract namespace). evsed writes it itself
rather than through libsystemd, so the code that runs on a charger is the code the tests run,
with or without the ``systemd`` extra. Without ``$NOTIFY_SOCKET`` (not under systemd, or not
``Type=notify``) every call does nothing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket

log = logging.getLogger(__name__)


def notify(*assignments: str) -> bool:
    """Send ``assignments`` (``"READY=1"``, ``"STATUS=..."``) in one datagram; True if sent."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto("\n".join(assignments).encode(), address)
    except OSError as exc:
        log.warning("sd_notify to %s failed: %s", os.environ["NOTIFY_SOCKET"], exc)
        return False
    return True


def watchdog_interval() -> float | None:
    """How often to ping the watchdog (half of ``WatchdogSec=``, as sd_watchdog_enabled(3)
    advises), or None when systemd expects no pings from this process."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        timeout_us = int(usec)
    except ValueError:
        log.warning("ignoring WATCHDOG_USEC=%r: not a number of microseconds", usec)
        return None
    return timeout_us / 1e6 / 2 if timeout_us > 0 else None


async def watchdog_loop(interval: float) -> None:
    """Ping the watchdog from the event loop every ``interval`` seconds.

    The pings come from the loop itself, not a thread, so a blocked event loop (the thing the
    watchdog guards: the safety path runs on it) stops them and systemd restarts the daemon;
    the MCU's own failsafe has opened the contactor by then.
    """
    while True:
        notify("WATCHDOG=1")
        await asyncio.sleep(interval)
