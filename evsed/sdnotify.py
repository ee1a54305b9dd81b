"""systemd notification protocol (sd_notify(3)): READY, STOPPING and watchdog keep-alives.

Uses systemd-python when installed (the ``systemd`` extra); otherwise writes the datagram to
``$NOTIFY_SOCKET`` itself, which is all the protocol is. Outside systemd both do nothing.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import socket

log = logging.getLogger(__name__)


def notify(state: str) -> bool:
    try:
        daemon = importlib.import_module("systemd.daemon")
    except ImportError:
        pass
    else:
        return bool(daemon.notify(state))
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(state.encode(), address)
    except OSError as exc:
        log.warning("sd_notify failed: %s", exc)
        return False
    return True


async def watchdog_loop() -> None:
    """Ping the systemd watchdog at half its interval while the event loop is alive.

    A blocked event loop (the thing the watchdog guards) stops the pings and systemd restarts
    the daemon; the MCU's own failsafe has already opened the contactor by then.
    """
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and int(pid) != os.getpid()):
        return
    interval = int(usec) / 1e6 / 2
    while True:
        notify("WATCHDOG=1")
        await asyncio.sleep(interval)
