"""The OCPP 1.6 support matrix of the README, generated from the 1.6 adapter's code.

``python -m evsed_devtools.support_matrix`` prints it; ``--write README.md`` replaces what is
between the README's markers. ``tests/test_support_matrix.py`` fails when the two differ, so a
new handler, message or key shows up in the README in the same change.

Read from the code (nothing here lists what evsed supports):

- Served: the actions ``served_actions`` routes to a handler (the charge point's route map),
  with the module of each handler. An action that one of its keyword flags turns off is served
  only with that setting (``firmware_updates``: ``[ota] enabled``); a new flag stops the
  generator until :data:`FLAG_SETTINGS` says which setting it is.
- Sent: in the modules of ``evsed/ocpp/v16/``, every ``call.<Action>`` of ``ocpp.v16.call``
  (a CALL sent now, or made from an outbox report), and every outbox message named by its
  action (an ``(action, payload)`` pair or an ``enqueue*(action, ...)``), which the outbox's
  delivery turns into ``call.<action>`` by name.
- Configuration keys: ``configuration_keys.KEYS`` (access from ``readonly``; a key exists when
  its profile is among ``supported_profiles`` of what is served), the Security Whitepaper's
  ``security.KEYS`` (``key_access``) and the pricing whitepaper's ``pricing_keys``.

Facts of the specifications, which no schema carries, are the tables below: the direction and
feature profile of each message and the profile of each standard key. Which messages exist is
read from the ocpp package's OCPP 1.6 JSON schemas, which keys exist from its
``ConfigurationKey`` enum; one missing from these tables stops the generator.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import sys
import textwrap
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import ocpp.v16
from ocpp.routing import create_route_map
from ocpp.v16.enums import ConfigurationKey

import evsed.ocpp.v16
from evsed.ocpp.v16 import security
from evsed.ocpp.v16.charge_point import (
    PROFILE_ACTIONS,
    V16ChargePoint,
    served_actions,
    supported_profiles,
)
from evsed.ocpp.v16.configuration_keys import FEATURE_PROFILES, KEYS
from evsed.ocpp.v16.pricing import pricing_keys

START = "<!-- support-matrix:start -->"
END = "<!-- support-matrix:end -->"
COMMAND = ".venv/bin/python -m evsed_devtools.support_matrix --write README.md"

V16_SOURCES = Path(evsed.ocpp.v16.__file__).parent
SCHEMAS = Path(ocpp.v16.__file__).parent / "schemas"

SECURITY = "Security Whitepaper"  # OCPP 1.6 Security Whitepaper, edition 3
PNC = "ISO 15118 PnC whitepaper"  # Using ISO 15118 Plug & Charge with OCPP 1.6
PRICING = "California Pricing whitepaper"  # OCA, the costmsg DataTransfer messages
PROFILE_ORDER = (*FEATURE_PROFILES, SECURITY, PNC, PRICING)

# The settings behind the keyword flags of served_actions.
FLAG_SETTINGS = {"firmware_updates": "`[ota] enabled`"}

# OCPP 1.6 §3 (PROFILE_ACTIONS) and the Security Whitepaper's use cases.
CSMS_INITIATED: dict[str, frozenset[str]] = {
    **PROFILE_ACTIONS,
    SECURITY: frozenset(
        {
            "CertificateSigned",
            "DeleteCertificate",
            "ExtendedTriggerMessage",
            "GetInstalledCertificateIds",
            "GetLog",
            "InstallCertificate",
            "SignedUpdateFirmware",
        }
    ),
}
CHARGER_INITIATED: dict[str, frozenset[str]] = {
    "Core": frozenset(
        {
            "Authorize",
            "BootNotification",
            "DataTransfer",
            "Heartbeat",
            "MeterValues",
            "StartTransaction",
            "StatusNotification",
            "StopTransaction",
        }
    ),
    "FirmwareManagement": frozenset(
        {"DiagnosticsStatusNotification", "FirmwareStatusNotification"}
    ),
    SECURITY: frozenset(
        {
            "LogStatusNotification",
            "SecurityEventNotification",
            "SignCertificate",
            "SignedFirmwareStatusNotification",
        }
    ),
}
# The standard keys outside §9.1 (Core): §9.2, §9.3, §9.4 and the whitepapers'.
KEY_PROFILES: dict[str, str] = {
    **dict.fromkeys(
        ("LocalAuthListEnabled", "LocalAuthListMaxLength", "SendLocalListMaxLength"),
        "LocalAuthListManagement",
    ),
    "ReserveConnectorZeroSupported": "Reservation",
    **dict.fromkeys(
        (
            "ChargeProfileMaxStackLevel",
            "ChargingScheduleAllowedChargingRateUnit",
            "ChargingScheduleMaxPeriods",
            "ConnectorSwitch3to1PhaseSupported",
            "MaxChargingProfilesInstalled",
        ),
        "SmartCharging",
    ),
    **dict.fromkeys(
        (
            "AdditionalRootCertificateCheck",
            "AuthorizationKey",
            "CertificateSignedMaxChainSize",
            "CertificateStoreMaxLength",
            "CpoName",
            "SecurityProfile",
        ),
        SECURITY,
    ),
    **dict.fromkeys(
        (
            "CentralContractValidationAllowed",
            "CertSigningRepeatTimes",
            "CertSigningWaitMinimum",
            "ContractValidationOffline",
            "ISO15118PnCEnabled",
        ),
        PNC,
    ),
}
# Stands for a language tag in the per-language key names (Markdown italics in the table).
LANGUAGE = "*lang*"

Served = Callable[..., frozenset[str]]


@dataclass(frozen=True, slots=True)
class MessageRow:
    action: str
    profile: str
    support: str  # "yes", "with <setting>", "no"
    modules: tuple[str, ...]  # where it is handled or built


@dataclass(frozen=True, slots=True)
class KeyRow:
    key: str
    profile: str
    support: str
    access: str  # R, RW, W (write-only) or "" when not offered
    note: str


def spec_actions(schemas: Path = SCHEMAS) -> frozenset[str]:
    """Every OCPP 1.6 action: one schema per request, one per response."""
    names = {path.stem for path in schemas.glob("*.json")}
    if not names:
        raise SystemExit(f"no OCPP 1.6 schemas in {schemas}")
    return frozenset(name for name in names if not name.endswith("Response"))


def _profile_of(action: str, table: dict[str, frozenset[str]]) -> str | None:
    return next((profile for profile, actions in table.items() if action in actions), None)


def support(present: Callable[[frozenset[str]], bool], served: Served = served_actions) -> str:
    """ "yes", "no", or "with <settings>" when a flag of ``served`` turned off loses it."""
    flags = [
        name
        for name, parameter in inspect.signature(served).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    ]
    unknown = [flag for flag in flags if flag not in FLAG_SETTINGS]
    if unknown:
        raise SystemExit(
            f"served_actions has the flags {unknown}: add the setting each stands for to "
            "FLAG_SETTINGS in evsed_devtools/support_matrix.py"
        )
    everything = dict.fromkeys(flags, True)
    if not present(served(**everything)):
        return "no"
    needed = [flag for flag in flags if not present(served(**(everything | {flag: False})))]
    return "with " + " and ".join(FLAG_SETTINGS[flag] for flag in needed) if needed else "yes"


def _serves(action: str) -> Callable[[frozenset[str]], bool]:
    return lambda served: action in served


def _offers_profile(profile: str) -> Callable[[frozenset[str]], bool]:
    return lambda served: profile in supported_profiles(served)


def sent_actions(sources: Path = V16_SOURCES) -> dict[str, tuple[str, ...]]:
    """The charger-initiated actions the code under ``sources`` sends, with its modules."""
    wanted = frozenset().union(*CHARGER_INITIATED.values())
    found: dict[str, set[str]] = {}
    for path in sorted(sources.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for action in _named_messages(tree) & wanted:
            found.setdefault(action, set()).add(path.relative_to(sources).as_posix())
    return {action: tuple(sorted(modules)) for action, modules in found.items()}


def _named_messages(tree: ast.AST) -> set[str]:
    call_names = {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "ocpp.v16"
        for alias in node.names
        if alias.name == "call"
    }
    named: set[str] = set()
    for node in ast.walk(tree):
        match node:
            case ast.Attribute(value=ast.Name(id=name), attr=action) if name in call_names:
                named.add(action)
            case ast.Tuple(elts=[ast.Constant(value=str(action)), _]):
                named.add(action)
            case ast.Call(
                func=ast.Attribute(attr=method), args=[ast.Constant(value=str(action)), *_]
            ):
                if method.startswith("enqueue"):
                    named.add(action)
    return named


def message_rows(
    served: Served = served_actions, sources: Path = V16_SOURCES
) -> tuple[list[MessageRow], list[MessageRow]]:
    """(messages from the CSMS, messages to the CSMS), in profile order."""
    actions = spec_actions()
    handled = {
        action: handlers["_on_action"].__module__.rpartition(".")[2] + ".py"
        for action, handlers in create_route_map(V16ChargePoint).items()
    }
    sent = sent_actions(sources)
    incoming: list[MessageRow] = []
    outgoing: list[MessageRow] = []
    for action in sorted(actions):
        to_charger = _profile_of(action, CSMS_INITIATED)
        to_csms = _profile_of(action, CHARGER_INITIATED)
        if to_charger is None and to_csms is None:
            raise SystemExit(f"{action} has a schema but no direction and profile here")
        if to_charger is not None:
            state = support(_serves(action), served)
            where = (handled[action],) if state != "no" and action in handled else ()
            incoming.append(MessageRow(action, to_charger, state, where))
        if to_csms is not None:
            modules = sent.get(action, ())
            outgoing.append(MessageRow(action, to_csms, "yes" if modules else "no", modules))
    order = PROFILE_ORDER.index
    incoming.sort(key=lambda row: (order(row.profile), row.action))
    outgoing.sort(key=lambda row: (order(row.profile), row.action))
    return incoming, outgoing


def key_rows(served: Served = served_actions) -> list[KeyRow]:
    """Every standard key of the ocpp package's enum and every key evsed offers."""
    rows: dict[str, KeyRow] = {}
    for spec in KEYS:
        state = support(_offers_profile(spec.profile), served)
        access = "R" if spec.readonly else "RW"
        note = "RebootRequired" if spec.reboot_required else ""
        rows[spec.name] = KeyRow(spec.name, spec.profile, state, access, note)
    for name in security.KEYS:
        rows[name] = KeyRow(name, SECURITY, "yes", security.key_access(name), "")
    for spec in pricing_keys([LANGUAGE]):
        note = "one per language of `[pricing] languages`" if LANGUAGE in spec.name else ""
        access = "R" if spec.readonly else "RW"
        rows[spec.name] = KeyRow(spec.name, PRICING, "yes", access, note)
    for key in ConfigurationKey:
        name = str(key.value)
        if name not in rows:
            rows[name] = KeyRow(name, KEY_PROFILES.get(name, "Core"), "no", "", "")
    for row in rows.values():
        spec_profile = KEY_PROFILES.get(row.key, "Core") if row.profile != PRICING else PRICING
        if row.profile != spec_profile:
            raise SystemExit(f"{row.key}: the code says {row.profile}, the spec {spec_profile}")
    order = PROFILE_ORDER.index
    return sorted(rows.values(), key=lambda row: (order(row.profile), row.key))


def _table(header: Iterable[str], rows: Iterable[Iterable[str]]) -> list[str]:
    head = list(header)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return lines


def _modules(modules: Iterable[str]) -> str:
    return ", ".join(f"`{module}`" for module in modules)


def _count(rows: list[MessageRow] | list[KeyRow]) -> str:
    return f"{sum(row.support != 'no' for row in rows)} of {len(rows)}"


def _prose(text: str) -> list[str]:
    return textwrap.wrap(text, width=100, break_on_hyphens=False, break_long_words=False)


def render(served: Served = served_actions, sources: Path = V16_SOURCES) -> str:
    """The README block, markers included."""
    incoming, outgoing = message_rows(served, sources)
    keys = key_rows(served)
    profiles = []
    for profile in FEATURE_PROFILES:
        state = support(_offers_profile(profile), served)
        if state != "no":
            profiles.append(profile if state == "yes" else f"{profile} ({state})")
    lines = [
        START,
        "<!-- Generated from the code by evsed_devtools/support_matrix.py; do not edit. -->",
        "",
        *_prose(
            f"Messages from the CSMS that the charger serves ({_count(incoming)}); an action it "
            "does not serve is answered with the CALLERROR NotSupported:"
        ),
        "",
        *_table(
            ("message", "profile", "served", "handled in"),
            ((r.action, r.profile, r.support, _modules(r.modules)) for r in incoming),
        ),
        "",
        f"Messages the charger sends to the CSMS ({_count(outgoing)}):",
        "",
        *_table(
            ("message", "profile", "sent", "built in"),
            ((r.action, r.profile, r.support, _modules(r.modules)) for r in outgoing),
        ),
        "",
        *_prose(f"SupportedFeatureProfiles, derived from what is served: {', '.join(profiles)}."),
        "",
        *_prose(
            f"Configuration keys ({_count(keys)} offered). Access: R read-only, RW read-write, "
            "W write-only (never returned by GetConfiguration). A key not offered is listed as "
            "unknown by GetConfiguration and is NotSupported in ChangeConfiguration."
        ),
        "",
        *_table(
            ("key", "profile", "offered", "access", "note"),
            ((r.key, r.profile, r.support, r.access, r.note) for r in keys),
        ),
        END,
    ]
    return "\n".join(lines) + "\n"


def replace_block(text: str, block: str) -> str:
    """``text`` with its START..END block (a line each) replaced by ``block``."""
    start, end = text.find(START + "\n"), text.find(END + "\n")
    if start < 0 or end < start:
        raise ValueError(f"no {START} ... {END} lines")
    return text[:start] + block + text[end + len(END) + 1 :]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=Path, metavar="FILE", help="replace the block in FILE")
    args = parser.parse_args(argv)
    block = render()
    if args.write is None:
        sys.stdout.write(block)
        return 0
    path: Path = args.write
    try:
        path.write_text(replace_block(path.read_text(), block))
    except ValueError as exc:
        print(f"{path}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
