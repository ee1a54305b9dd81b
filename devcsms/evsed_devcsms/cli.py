"""``evsed-devcsms``: run the development CSMS, or send it commands through its admin API.

Exit codes of the client commands: 0 answered, 1 the charge point answered with a CALLERROR,
2 usage error or the admin API refused (charger not connected, timeout, bad request).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import ssl
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ocpp.exceptions import OCPPError

from evsed.errors import EXIT_CONFIG
from evsed_devcsms.chargepoint import LIBRARY_LOGGER
from evsed_devcsms.client import DEFAULT_HTTP, AdminApiError, AdminClient
from evsed_devcsms.journal import Journal, describe
from evsed_devcsms.server import DevCsms
from evsed_devcsms.state import (
    ANSWER_MODES,
    BOOT_STATUSES,
    ID_TAG_STATUSES,
    CsmsSettings,
    IdTagRecord,
)

_LOG = logging.getLogger(__name__)
_POLL_SECONDS = 0.5


class _NoOcppErrorReports(logging.Filter):
    """Drop the library's reports of OCPP errors it answers with a CALLERROR.

    A bad frame from a charger is not our bug, and the frame log already shows the CALLERROR
    with its code and cause. Any other exception keeps its traceback.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], OCPPError))


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s.%(msecs)03d %(levelname)-7s %(message)s",
        datefmt="%H:%M:%S",
    )
    # The library logs every frame at INFO; our frame log replaces those lines.
    LIBRARY_LOGGER.setLevel(logging.WARNING)
    LIBRARY_LOGGER.addFilter(_NoOcppErrorReports())
    logging.getLogger("websockets").setLevel(logging.WARNING)


def parse_id_tag(text: str) -> tuple[str, IdTagRecord]:
    """``TAG:STATUS[:PARENT[:EXPIRY]]`` (``--id-tag``); an empty PARENT means none. The expiry
    date comes last because ISO 8601 times contain colons."""
    tag, _, rest = text.partition(":")
    status, _, rest = rest.partition(":")
    parent, _, expiry = rest.partition(":")
    if not tag:
        raise argparse.ArgumentTypeError(f"{text!r}: expected TAG:STATUS[:PARENT[:EXPIRY]]")
    try:
        return tag, IdTagRecord(status, parent or None, expiry or None)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


async def _serve(args: argparse.Namespace) -> int:
    tags = frozenset(t.strip() for t in args.tags.split(",") if t.strip()) if args.tags else None
    settings = CsmsSettings(
        boot_status=args.boot_status,
        heartbeat_interval=args.heartbeat_interval,
        boot_retry_interval=args.boot_retry_interval,
        tags=tags,
        id_tags=dict(args.id_tag),
    )
    journal = Journal(args.journal)
    csms = DevCsms(
        settings,
        host=args.host,
        port=args.port,
        http_port=args.http_port,
        files_dir=args.files,
        journal=journal,
        call_timeout=args.call_timeout,
        tls=_tls_context(args),
        auth_keys=dict(args.auth_key),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await csms.start()
        print(f"devcsms listening ws={csms.ws_url} http={csms.http_url}", flush=True)
        await stop.wait()
        _LOG.info("stopping")
    finally:
        await csms.stop()
        journal.close()
    return 0


_TLS_VERSIONS = {
    "1.1": ssl.TLSVersion.TLSv1_1,
    "1.2": ssl.TLSVersion.TLSv1_2,
    "1.3": ssl.TLSVersion.TLSv1_3,
}


def _tls_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    """A server context for wss://, or None for plain ws://. ``--tls-client-ca`` asks for a
    client certificate (security profile 3); ``--tls-max-version`` and ``--tls-ciphers`` make
    a CSMS with an old or weak TLS setup, to see the charger refuse it."""
    if args.tls_cert is None:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if args.tls_max_version:
        version = _TLS_VERSIONS[args.tls_max_version]
        context.maximum_version = version
        if version < ssl.TLSVersion.TLSv1_2:
            context.minimum_version = version
            context.set_ciphers("DEFAULT:@SECLEVEL=0")
    if args.tls_ciphers:
        context.set_ciphers(args.tls_ciphers)
    context.load_cert_chain(args.tls_cert, args.tls_key)
    if args.tls_client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(args.tls_client_ca)
    return context


def _auth_key(text: str) -> tuple[str, str]:
    cp_id, sep, key = text.partition("=")
    if not sep or not cp_id:
        raise argparse.ArgumentTypeError(f"expected CP=HEXKEY, got {text!r}")
    try:
        bytes.fromhex(key)
    except ValueError:
        raise argparse.ArgumentTypeError(f"the key of {cp_id} is not hexadecimal") from None
    return cp_id, key


def _print_answer(answer: dict[str, Any]) -> int:
    print(json.dumps(answer, indent=2))
    return 1 if "error" in answer else 0


def _messages(client: AdminClient, args: argparse.Namespace) -> int:
    since = args.since
    while True:
        entries = client.messages(cp=args.cp, action=args.action, since=since)
        for entry in entries:
            print(json.dumps(entry) if args.json else describe(entry, with_time=True), flush=True)
            since = entry["i"] + 1
        if not args.follow:
            return 0
        time.sleep(_POLL_SECONDS)


def _run_client(args: argparse.Namespace) -> int:
    client = AdminClient(args.http)
    if args.command == "remote-start":
        return _print_answer(client.remote_start(args.cp, args.tag, args.connector))
    if args.command == "remote-stop":
        return _print_answer(client.remote_stop(args.cp, args.transaction))
    if args.command == "call":
        try:
            payload = json.loads(args.payload)
        except json.JSONDecodeError as exc:
            print(f"payload is not JSON: {exc}", file=sys.stderr)
            return 2
        answer = client.call(
            args.cp, args.action, payload, timeout=args.timeout, validate=not args.no_validate
        )
        return _print_answer(answer)
    if args.command == "send-raw":
        return _print_answer(client.send_raw(args.cp, args.frame, timeout=args.timeout))
    if args.command == "messages":
        return _messages(client, args)
    if args.command == "chargers":
        print(json.dumps(client.chargers(), indent=2))
        return 0
    if args.command == "transactions":
        print(json.dumps(client.transactions(), indent=2))
        return 0
    if args.command == "id-tag":
        status = None if args.remove else args.status
        answer = client.set_id_tag(
            args.tag, status, parent_id_tag=args.parent, expiry_date=args.expiry
        )
        print(json.dumps(answer, indent=2))
        return 0
    if args.command == "answer":
        answer = client.set_answer_rule(
            args.action, args.mode, delay=args.delay, times=args.times, code=args.code
        )
        print(json.dumps(answer, indent=2))
        return 0
    assert args.command == "boot-status"
    print(json.dumps(client.set_boot_status(args.status)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every sub-command."""
    parser = argparse.ArgumentParser(
        prog="evsed-devcsms", description="Development OCPP 1.6J CSMS for evsed."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the CSMS")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=9000, help="websocket port (0 = any)")
    serve.add_argument("--http-port", type=int, default=9001, help="admin API port (0 = any)")
    serve.add_argument("--tags", help="comma-separated accepted idTags (default: accept all)")
    serve.add_argument(
        "--id-tag",
        type=parse_id_tag,
        action="append",
        default=[],
        metavar="TAG:STATUS[:PARENT[:EXPIRY]]",
        help="what Authorize/StartTransaction/StopTransaction answer for TAG (repeatable)",
    )
    serve.add_argument("--boot-status", choices=BOOT_STATUSES, default="Accepted")
    serve.add_argument("--heartbeat-interval", type=int, default=300, metavar="SECONDS")
    serve.add_argument(
        "--boot-retry-interval",
        type=int,
        metavar="SECONDS",
        help="interval sent with Pending/Rejected (default: the heartbeat interval)",
    )
    serve.add_argument("--call-timeout", type=float, default=10.0, metavar="SECONDS")
    serve.add_argument(
        "--tls-cert", type=Path, help="serve wss:// with this PEM certificate (chain) file"
    )
    serve.add_argument("--tls-key", type=Path, help="private key of --tls-cert (PEM)")
    serve.add_argument(
        "--tls-client-ca",
        type=Path,
        help="require a client certificate signed by this CA (security profile 3)",
    )
    serve.add_argument("--tls-max-version", choices=sorted(_TLS_VERSIONS), help="newest TLS")
    serve.add_argument("--tls-ciphers", help="OpenSSL cipher list for TLS 1.2 and older")
    serve.add_argument(
        "--auth-key",
        type=_auth_key,
        action="append",
        default=[],
        metavar="CP=HEXKEY",
        help="require HTTP Basic auth from CP with this AuthorizationKey (repeatable)",
    )
    serve.add_argument("--files", type=Path, help="directory served under /files/")
    serve.add_argument("--journal", type=Path, help="append every frame as JSON lines here")
    serve.add_argument("-v", "--verbose", action="store_true")

    api = argparse.ArgumentParser(add_help=False)
    api.add_argument(
        "--http",
        default=os.environ.get("EVSED_DEVCSMS_HTTP", DEFAULT_HTTP),
        help="admin API base URL (env EVSED_DEVCSMS_HTTP)",
    )

    start = commands.add_parser("remote-start", parents=[api], help="RemoteStartTransaction")
    start.add_argument("--cp", required=True)
    start.add_argument("--tag", required=True)
    start.add_argument("--connector", type=int)

    stop = commands.add_parser("remote-stop", parents=[api], help="RemoteStopTransaction")
    stop.add_argument("--cp", required=True)
    stop.add_argument("--transaction", type=int, required=True)

    call = commands.add_parser("call", parents=[api], help="send any CALL")
    call.add_argument("--cp", required=True)
    call.add_argument("--timeout", type=float)
    call.add_argument("--no-validate", action="store_true", help="skip the OCPP 1.6 schema")
    call.add_argument("action", help="e.g. TriggerMessage")
    call.add_argument("payload", nargs="?", default="{}", help="JSON object (camelCase)")

    raw = commands.add_parser(
        "send-raw", parents=[api], help="send one frame exactly as typed (malformed ones too)"
    )
    raw.add_argument("--cp", required=True)
    raw.add_argument("--timeout", type=float)
    raw.add_argument("frame", help='e.g. \'[2,"m2","GetConfiguration"]\'')

    messages = commands.add_parser("messages", parents=[api], help="print the journal")
    messages.add_argument("--cp")
    messages.add_argument("--action")
    messages.add_argument("--since", type=int, default=0)
    messages.add_argument("--json", action="store_true", help="raw entries, one per line")
    messages.add_argument("-f", "--follow", action="store_true", help="keep polling")

    commands.add_parser("chargers", parents=[api], help="charge points and their status")
    commands.add_parser("transactions", parents=[api], help="transactions started")
    id_tag = commands.add_parser("id-tag", parents=[api], help="the answer for one idTag")
    id_tag.add_argument("--tag", required=True)
    which = id_tag.add_mutually_exclusive_group(required=True)
    which.add_argument("--status", choices=ID_TAG_STATUSES)
    which.add_argument("--remove", action="store_true", help="back to the --tags answer")
    id_tag.add_argument("--parent", help="parentIdTag")
    id_tag.add_argument("--expiry", help="expiryDate (ISO 8601)")

    answer = commands.add_parser(
        "answer", parents=[api], help="drop, delay or refuse the charger's CALLs of one action"
    )
    answer.add_argument("action", help="e.g. StartTransaction")
    answer.add_argument("mode", choices=ANSWER_MODES)
    answer.add_argument("--delay", type=float, default=0.0, metavar="SECONDS")
    answer.add_argument("--times", type=int, help="only the next N CALLs (default: all)")
    answer.add_argument("--code", help="errorCode of mode error (default: InternalError)")

    boot = commands.add_parser("boot-status", parents=[api], help="answer for later boots")
    boot.add_argument("status", choices=BOOT_STATUSES)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``evsed-devcsms`` and ``python -m evsed_devcsms``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "serve":
        if args.files is not None and not args.files.is_dir():
            print(f"--files {args.files}: not a directory", file=sys.stderr)
            return EXIT_CONFIG
        _setup_logging(args.verbose)
        try:
            return asyncio.run(_serve(args))
        except OSError as exc:  # port in use, journal not writable
            _LOG.error("cannot serve: %s", exc)
            return 1
    try:
        return _run_client(args)
    except AdminApiError as exc:
        print(exc, file=sys.stderr)
        return 2
    except OSError as exc:  # URLError is an OSError: CSMS not running, wrong port
        print(f"cannot reach {args.http}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
