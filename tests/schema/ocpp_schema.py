"""Check OCPP 1.6J frames against the OCPP 1.6 JSON schemas with an independent validator.

The charger validates what it sends with the Python ``ocpp`` library, and so does the development
CSMS: a bug the two share would pass both. Here a Node.js process (``validate.js``; schemas and
validator from npm, pinned in ``package.json``, installed by ``make schema-deps``) checks each
payload instead. One process serves a whole pytest session, one JSON line per payload.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

SCHEMA_DIR = Path(__file__).resolve().parent
SCRIPT = SCHEMA_DIR / "validate.js"
INSTALL_HINT = "run `make schema-deps`, which runs npm ci in tests/schema"
_MAX_SHOWN_PAYLOAD = 1_000

Kind = Literal["req", "conf"]


class SchemaCheckUnavailable(RuntimeError):
    """Node.js or the npm packages are missing, or the validator process died."""


class SchemaValidator:
    """A ``validate.js`` process, started on first use; ``close`` ends it."""

    def __init__(self, node: str = "node") -> None:
        self._node = node
        self._proc: subprocess.Popen[str] | None = None
        self._stderr: IO[str] | None = None
        self.versions: dict[str, str] = {}

    def validate(self, action: str, kind: Kind, payload: Any) -> list[str]:
        """Schema errors of ``payload`` as the ``action`` request or response; [] when valid.

        ``kind`` is "req" for a CALL's payload, "conf" for a CALLRESULT's (OCPP 1.6 PDU names).
        """
        proc = self._started()
        assert proc.stdin is not None and proc.stdout is not None
        request = {"action": action, "kind": kind, "payload": payload}
        try:
            proc.stdin.write(json.dumps(request) + "\n")
            proc.stdin.flush()
        except BrokenPipeError:
            raise self._died() from None
        line = proc.stdout.readline()
        if not line:
            raise self._died()
        answer = json.loads(line)
        if answer["ok"]:
            return []
        errors: list[str] = answer["errors"]
        return errors

    def close(self) -> None:
        """End the process (it exits when its input closes)."""
        if self._proc is None:
            return
        proc, self._proc = self._proc, None
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.close()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def __enter__(self) -> SchemaValidator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _started(self) -> subprocess.Popen[str]:
        if self._proc is not None:
            return self._proc
        node = shutil.which(self._node)
        if node is None:
            raise SchemaCheckUnavailable(
                f"Node.js ({self._node!r}) is not on PATH; the OCPP schema check needs it: "
                "install the Debian packages nodejs and npm, then " + INSTALL_HINT
            )
        if not (SCHEMA_DIR / "node_modules").is_dir():
            raise SchemaCheckUnavailable(f"{SCHEMA_DIR}/node_modules is missing: {INSTALL_HINT}")
        # A file, not a pipe: nobody reads stderr while the process lives, and it must not block.
        self._stderr = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115 - see close
        self._proc = subprocess.Popen(
            [node, str(SCRIPT)],
            cwd=SCHEMA_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            encoding="utf-8",
        )
        assert self._proc.stdout is not None
        ready = self._proc.stdout.readline()
        if not ready:
            raise self._died(hint=INSTALL_HINT)
        self.versions = json.loads(ready)["versions"]
        return self._proc

    def _died(self, hint: str = "") -> SchemaCheckUnavailable:
        proc, self._proc = self._proc, None
        assert proc is not None and self._stderr is not None
        code = proc.wait()
        self._stderr.seek(0)
        stderr = self._stderr.read().strip()
        self._stderr.close()
        self._stderr = None
        message = f"{SCRIPT.name} exited with {code}" + (f" ({hint})" if hint else "")
        return SchemaCheckUnavailable(message + (f":\n{stderr}" if stderr else ""))


@dataclass(frozen=True)
class Violation:
    """A frame the charger sent that breaks OCPP 1.6 (a journal entry of the dev CSMS)."""

    entry: dict[str, Any]
    errors: tuple[str, ...]

    def __str__(self) -> str:
        e = self.entry
        kind = {2: "CALL", 3: "CALLRESULT"}.get(e["type"], "frame")
        schema = {2: f"{e['action']}.req", 3: f"{e['action']}.conf"}.get(e["type"])
        head = f"{e['cp']} {kind} {e['action'] or '?'} message id {e['id']!r} (journal #{e['i']})"
        lines = [head + (f" against {schema}:" if schema else ":")]
        lines += [f"    {error}" for error in self.errors]
        payload = json.dumps(e.get("payload"), default=str)
        if len(payload) > _MAX_SHOWN_PAYLOAD:
            payload = payload[:_MAX_SHOWN_PAYLOAD] + "..."
        lines.append(f"    payload: {payload}")
        return "\n".join(lines)


def charger_frame_violations(
    entries: Iterable[dict[str, Any]], validator: SchemaValidator
) -> list[Violation]:
    """Check every frame the charger sent (``dir`` "in") among dev CSMS journal entries.

    CALLs against the request schema of their action, CALLRESULTs against the response schema
    of the CALL they answer (OCPP-J 1.6 §4.2.1, §4.2.2). A frame that is no OCPP-J message at all
    (§4.1), or a CALLRESULT to no CALL the CSMS sent, is a violation too. CALLERRORs have no
    schema in the OCPP 1.6 set and are not checked here.
    """
    violations: list[Violation] = []
    for entry in entries:
        if entry["dir"] != "in":
            continue
        if entry["type"] is None:
            reason = f"not an OCPP-J message: {entry.get('error')}; raw {entry.get('raw')!r}"
            violations.append(Violation(entry, (reason,)))
        elif entry["type"] == 2:
            errors = validator.validate(entry["action"], "req", entry["payload"])
            if errors:
                violations.append(Violation(entry, tuple(errors)))
        elif entry["type"] == 3:
            if entry["action"] is None:
                reason = "answers no CALL the CSMS sent (unknown or already answered message id)"
                violations.append(Violation(entry, (reason,)))
                continue
            errors = validator.validate(entry["action"], "conf", entry["payload"])
            if errors:
                violations.append(Violation(entry, tuple(errors)))
    return violations


def read_journal(path: Path, skip: int = 0) -> list[dict[str, Any]]:
    """Entries of a dev CSMS ``--journal`` file (JSON lines) after the first ``skip``.

    Only complete lines: the CSMS may be writing the next one right now.
    """
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    return [json.loads(line) for line in lines[skip:] if line.endswith("\n")]
