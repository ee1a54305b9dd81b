"""``evsed --config FILE``: run the charge-controller daemon; ``evsed check-hardware --config
FILE``: probe the hardware it would use (:mod:`evsed.check_hardware`) and exit."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shlex
import signal
import subprocess
import sys

from evsed import __version__
from evsed.config import Config, load_config
from evsed.daemon import Daemon
from evsed.errors import EXIT_CONFIG, EXIT_STATE_DIR, ConfigError
from evsed.logs import setup_logging
from evsed.store.db import StoreError

log = logging.getLogger("evsed")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["check-hardware"]:
        from evsed import check_hardware

        return check_hardware.main(argv[1:])
    parser = argparse.ArgumentParser(
        prog="evsed",
        description="EV charge-controller daemon.",
        epilog="evsed check-hardware --config FILE: probe the hardware and exit (see --help).",
    )
    parser.add_argument("--config", required=True, help="TOML configuration file")
    parser.add_argument("--version", action="version", version=f"evsed {__version__}")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"evsed: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    _setup_logging(config)
    daemon = Daemon(config)
    try:
        asyncio.run(_run(daemon))
    except ConfigError as exc:
        log.error("configuration error: %s", exc)
        return EXIT_CONFIG
    except StoreError as exc:
        log.error("%s", exc)
        return EXIT_STATE_DIR
    if daemon.restart is not None:
        _restart(daemon.restart, config, args.config)
    return 0


async def _run(daemon: Daemon) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        # SIGTERM wins over a Reset in progress: `systemctl stop` means stop, not restart.
        loop.add_signal_handler(sig, daemon.terminate)
    await daemon.run()


def _restart(kind: str, config: Config, config_path: str) -> None:
    """OCPP Reset (§5.14): Soft restarts the daemon in place (same PID, so systemd keeps
    supervising it); Hard, and the reboot after a firmware install, run
    ``charger.reboot_command`` when one is set (a reboot ends this process anyway)."""
    command = config.charger.reboot_command
    if kind in ("Hard", "Reboot") and command:
        log.warning("hard reset: running %r", command)
        result = subprocess.run(shlex.split(command), check=False)
        if result.returncode == 0:
            return
        log.error("reboot command failed with %d; restarting the daemon instead", result.returncode)
    log.warning("%s reset: restarting evsed", kind.lower())
    logging.shutdown()
    os.execv(sys.executable, [sys.executable, "-m", "evsed", "--config", config_path])


def _setup_logging(config: Config) -> None:
    setup_logging(config.logging.level)  # the journal under systemd, else stderr
    # The ocpp library logs every frame at INFO; ours are at DEBUG in evsed.ocpp.v16.
    logging.getLogger("ocpp").setLevel(logging.WARNING)
    logging.getLogger("websockets").setLevel(logging.WARNING)
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)


if __name__ == "__main__":
    sys.exit(main())
