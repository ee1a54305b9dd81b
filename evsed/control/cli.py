"""evsectl: talk to a running evsed over its control socket.

evsectl --config FILE status [--json]
evsectl --config FILE sim [--connector N] plug|unplug
evsectl --config FILE sim [--connector N] ev-state A|B|C|D|E|F
evsectl --config FILE sim [--connector N] ev-current AMPS
evsectl --config FILE sim [--connector N] swipe TAG
evsectl --config FILE sim [--connector N] fault|clear weld|meter-offline|mcu-silent|rcd|...
evsectl --config FILE sim network down|up        (charger-wide)
evsectl --config FILE sim stall MS               (charger-wide)
evsectl --config FILE sim tamper open|closed     (charger-wide: the enclosure's switch)
evsectl --config FILE clear-faults [--connector N]
evsectl --config FILE wait-healthy [--timeout S]  (exit 0 once the boot's health check passes)
evsectl --config FILE faults [--connector N] [--limit N] [--json]
evsectl --config FILE display [--frames N]       (the display feed, one JSON object a line)
evsectl --config FILE data-transfer VENDOR_ID [--message-id ID] [--data TEXT]
evsectl --config FILE security-log [--clear] [--json]  (the security log, oldest first)

A connector's verbs act on connector 1 unless --connector names another.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from pathlib import Path
from typing import Any

from evsed.config import load_config
from evsed.control.server import SOCKET_GROUP
from evsed.errors import EXIT_CONFIG, ConfigError

EXIT_FAILED = 1
EXIT_UNREACHABLE = 69  # EX_UNAVAILABLE: the daemon is not running
EXIT_NOPERM = 77  # EX_NOPERM: not root, not in the socket's group


def request(path: Path, message: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall(json.dumps(message).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    reply: dict[str, Any] = json.loads(data)
    return reply


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="evsectl", description="Control a running evsed.")
    parser.add_argument("--config", required=True, help="the daemon's config file")
    parser.add_argument("--socket", help="control socket (default: from the config)")
    sub = parser.add_subparsers(dest="cmd", required=True)
    status = sub.add_parser("status", help="connectors, session, OCPP connection")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    sim = sub.add_parser("sim", help="drive the simulated hardware")
    sim.add_argument("--connector", type=int, help="the connector (default 1)")
    sim.add_argument(
        "words",
        nargs="+",
        help="plug | unplug | ev-state S | ev-current A | site-load A [A A] | ...",
    )
    clear = sub.add_parser("clear-faults", help="clear latched faults (welded contactor)")
    clear.add_argument("--connector", type=int, default=1)
    healthy = sub.add_parser(
        "wait-healthy",
        help="wait until the health check passes (hardware OK, CSMS accepted the boot)",
    )
    healthy.add_argument("--timeout", type=float, default=300.0, help="seconds (default 300)")
    faults = sub.add_parser("faults", help="the fault history, newest first")
    faults.add_argument("--connector", type=int, help="one connector only")
    faults.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    faults.add_argument("--json", action="store_true", help="machine-readable output")
    display = sub.add_parser("display", help="follow the display feed (JSON lines)")
    display.add_argument("--frames", type=int, help="stop after this many frames")
    transfer = sub.add_parser("data-transfer", help="send vendor data to the CSMS")
    transfer.add_argument("vendor_id")
    transfer.add_argument("--message-id")
    transfer.add_argument("--data")
    security_log = sub.add_parser("security-log", help="the security log, oldest first")
    security_log.add_argument(
        "--clear", action="store_true", help="empty it (recorded as SecurityLogWasCleared)"
    )
    security_log.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args(argv)
    if args.cmd == "wait-healthy" and not 0 < args.timeout <= 86400:
        parser.error("--timeout must be between 0 and 86400 seconds")

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"evsectl: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    path = Path(args.socket) if args.socket else config.control_socket
    if args.cmd == "wait-healthy":
        return wait_healthy(path, args.timeout)
    if args.cmd == "display":
        return follow_display(path, args.frames)
    message: dict[str, Any] = {"cmd": args.cmd}
    if args.cmd == "sim":
        message.update(args=args.words)
        if args.connector is not None:
            message.update(connector=args.connector)
    elif args.cmd == "clear-faults":
        message.update(connector=args.connector)
    elif args.cmd == "data-transfer":
        message.update(vendor_id=args.vendor_id, message_id=args.message_id, data=args.data)
    elif args.cmd == "security-log":
        message.update(clear=args.clear)
    elif args.cmd == "faults":
        message.update(limit=args.limit)
        if args.connector is not None:
            message.update(connector=args.connector)
    try:
        reply = request(path, message)
    except PermissionError:
        print(
            f"evsectl: permission denied on {path}: the control socket is for root and the"
            f" {SOCKET_GROUP!r} group only; run as root, or add yourself to the group"
            f" (sudo usermod -aG {SOCKET_GROUP} $USER, then log in again)",
            file=sys.stderr,
        )
        return EXIT_NOPERM
    except (OSError, ValueError) as exc:
        print(f"evsectl: cannot reach evsed at {path}: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    if not reply.get("ok"):
        print(f"evsectl: {reply.get('error', 'request failed')}", file=sys.stderr)
        return EXIT_FAILED
    if args.cmd == "status":
        if args.json:
            print(json.dumps(reply["status"], indent=2))
        else:
            print(format_status(reply["status"]))
    elif args.cmd == "sim":
        print(reply["message"])
    elif args.cmd == "faults":
        rows = reply["faults"]
        print(json.dumps(rows, indent=2) if args.json else format_faults(rows))
    elif args.cmd == "security-log":
        entries = reply["entries"]
        if args.json:
            print(json.dumps(entries, indent=2))
        elif args.clear:
            print(f"security log cleared: {reply['removed']} entries removed")
        else:
            print(format_security_log(entries))
    elif args.cmd == "data-transfer":
        print(reply["status"] + (f" {reply['data']}" if reply.get("data") is not None else ""))
    else:
        print("cleared: " + (", ".join(reply["cleared"]) or "nothing"))
    return 0


def wait_healthy(path: Path, timeout: float, poll_s: float = 1.0) -> int:
    """Ask the daemon for its health check every ``poll_s`` until it passes (0) or
    ``timeout`` runs out (1, with the last reason). A daemon not answering yet (starting up)
    is waited for too. The boot assessment unit runs this (systemd/evsed-boot-check.service)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            reply = request(path, {"cmd": "status"}, timeout=min(10.0, timeout))
            health = reply["status"]["health"] if reply.get("ok") else None
            reason = (
                reply.get("error", "no health in the status")
                if health is None
                else health["reason"]
            )
            if health is not None and health["ok"]:
                print("healthy")
                return 0
        except PermissionError:
            reason = f"permission denied on {path} (root or the {SOCKET_GROUP!r} group only)"
        except (OSError, ValueError) as exc:
            reason = f"cannot reach evsed at {path}: {exc}"
        if time.monotonic() + poll_s > deadline:
            print(f"evsectl: not healthy after {timeout:g} s: {reason}", file=sys.stderr)
            return EXIT_FAILED
        time.sleep(poll_s)


def follow_display(path: Path, frames: int | None) -> int:
    """Print the display feed, one JSON object a line, until interrupted (or ``frames``)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(str(path))
            sock.sendall(b'{"cmd": "display"}\n')
            stream = sock.makefile("r", encoding="utf-8")
            header = json.loads(stream.readline() or "{}")
            if not header.get("ok"):
                print(f"evsectl: {header.get('error', 'no display feed')}", file=sys.stderr)
                return EXIT_FAILED
            for count, line in enumerate(stream, start=1):
                print(line.rstrip("\n"), flush=True)
                if frames is not None and count >= frames:
                    break
    except (OSError, ValueError) as exc:
        print(f"evsectl: cannot reach evsed at {path}: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except KeyboardInterrupt:
        pass
    return 0


def format_security_log(entries: list[dict[str, Any]]) -> str:
    """One line per entry, oldest first; ``sent`` marks the events queued for the CSMS."""
    if not entries:
        return "the security log is empty"
    return "\n".join(
        f"{e['at']}  {e['type']}{'  (sent to the CSMS)' if e['notified'] else ''}"
        + (f"  {e['tech_info']}" if e["tech_info"] else "")
        for e in entries
    )


def format_faults(rows: list[dict[str, Any]]) -> str:
    """One line per fault, newest first."""
    if not rows:
        return "no faults recorded"
    lines = []
    for row in rows:
        if row["cleared_at"] is None:
            until = "ACTIVE"
        else:
            until = f"until {row['cleared_at']}" + (
                " (daemon stopped)" if row["ended"] == "restart" else ""
            )
        reported = row["reported_error_code"] or "not reported"
        lines.append(
            f"{row['raised_at']}  connector {row['connector_id']}  {row['fault']}  {until}"
            f"  {row['vendor_error_code']} / {reported}  {row['info']}"
        )
    return "\n".join(lines)


def format_price(price: dict[str, Any]) -> str:
    """The price a connector shows, its running and final cost (money as the CSMS sent it)."""
    parts = [f"{lang}: {text}" for lang, text in price.get("price_text", {}).items()]
    if price.get("running"):
        running = price["running"]
        parts.append(f"running cost {running['cost']} ({running['state'] or '?'})")
    if price.get("final"):
        final = price["final"]
        parts.append(f"final cost {final['cost']}")
        if final.get("qr_code_text"):
            parts.append(f"QR {final['qr_code_text']}")
    return "price   " + "  |  ".join(parts)


def format_status(status: dict[str, Any]) -> str:
    ocpp = status["ocpp"]
    lines = [
        f"charger {status['charger_id']}  firmware {status['firmware_version']}"
        f"  hal {status['hal']}",
        f"ocpp    {ocpp['connection']}  registration {ocpp['registration'] or '-'}"
        f"  outbox {ocpp['outbox_pending']}  {ocpp['url']}"
        f"  security profile {ocpp.get('security_profile', 0)}",
    ]
    health = status.get("health")
    if health is not None:
        lines.append(f"health  {'ok' if health['ok'] else health['reason']}")
    firmware = status.get("firmware") or {}
    rauc = firmware.get("rauc")
    line = f"firmware {firmware.get('version', '?')}  updates {firmware.get('updates', '?')}"
    if firmware.get("update"):
        update = firmware["update"]
        kind = ", delta" if update.get("delta") else ""
        line += f"  update {update['status']} ({update['phase']}{kind})"
    lines.append(line)
    if rauc:
        slots = "  ".join(
            f"{s['bootname']}={s['version'] or '?'} {s['state']}/{s['boot_status']}"
            for s in rauc["slots"]
        )
        lines.append(f"slots   booted {rauc['booted']}  next {rauc['primary'] or '?'}  {slots}")
    site = status.get("site")
    if site:
        meter = "ok" if site["meter_ok"] else f"LOST ({site['error']}), fallback"
        others = site["other_loads_a"]
        lines.append(
            f"site    fuse {site['fuse_a']:g} A  charger may draw {site['allowance_a']:g} A"
            f"  other loads {' / '.join(f'{a:g}' for a in others) if others else '?'} A"
            f"  meter {meter}"
        )
    for r in status.get("reservations") or []:
        where = "any connector" if r["connector_id"] == 0 else f"connector {r['connector_id']}"
        group = f" (group {r['parent_id_tag']})" if r["parent_id_tag"] else ""
        lines.append(
            f"reserved {where} for {r['id_tag']}{group} until {r['expires_at']}  id {r['id']}"
        )
    for c in status["connectors"]:
        faults = ", ".join(c["faults"]) or "none"
        tx = c["transaction_id"] if c["transaction_id"] is not None else "-"
        lines.append(
            f"connector {c['id']}: {c['ocpp_status']} ({c['phase']})  CP {c['cp_state'] or '?'}"
            f"  PWM {c['pwm_current_a'] or 'off'}"
            f" (limit {c['limit']['amps']} A: {c['limit']['source']})  contactor "
            f"{'closed' if c['contactor_closed'] else 'open'}  tx {tx}  id {c['id_tag'] or '-'}"
            f"  energy {c['energy_wh'] if c['energy_wh'] is not None else '?'} Wh"
            f"  power {c['power_w'] if c['power_w'] is not None else '?'} W  faults {faults}"
        )
        price = c.get("price") or {}
        if price.get("price_text") or price.get("running") or price.get("final"):
            lines.append("  " + format_price(price))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
