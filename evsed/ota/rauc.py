"""The ``rauc`` command-line tool, run as a subprocess (it talks to the RAUC service over D-Bus).

Only what the update flow needs: inspect a bundle against a keyring (``rauc info``), install it
(``rauc install``, progress lines go to the log), read the slot status, and mark slots good, bad
or active (``rauc status mark-*``). Every call has a timeout and returns RAUC's own message on
failure, so the CSMS operator and the log see why an update was refused.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any

from evsed.errors import EvsedError

log = logging.getLogger(__name__)


class RaucError(EvsedError):
    """``rauc`` failed; the message is RAUC's own explanation."""


#: Image file names of a casync bundle (``rauc convert``): blob and directory-tree indexes.
CASYNC_INDEX_SUFFIXES = (".caibx", ".caidx")


@dataclass(frozen=True, slots=True)
class BundleInfo:
    compatible: str
    version: str
    #: A casync bundle: its images are indexes, installed from a chunk store (a delta update).
    casync: bool = False


@dataclass(frozen=True, slots=True)
class SlotInfo:
    name: str  # e.g. rootfs.1
    bootname: str  # e.g. B
    state: str  # booted / active / inactive
    boot_status: str  # good / bad
    bundle_version: str | None


@dataclass(frozen=True, slots=True)
class SystemStatus:
    compatible: str
    booted: str  # bootname of the booted slot
    primary: str | None  # slot name RAUC will boot next
    slots: tuple[SlotInfo, ...]

    def slot(self, bootname: str) -> SlotInfo | None:
        return next((s for s in self.slots if s.bootname == bootname), None)

    @property
    def primary_bootname(self) -> str | None:
        return next((s.bootname for s in self.slots if s.name == self.primary), None)


class Rauc:
    """Async wrapper around the ``rauc`` binary."""

    def __init__(self, binary: str = "rauc", *, env: dict[str, str] | None = None) -> None:
        self._binary = binary
        self._env = env

    async def _run(
        self, *args: str, timeout: float = 60.0, stream: bool = False, busy_wait: float = 900.0
    ) -> str:
        """Run ``rauc ARGS``; while the service is busy with another operation (an install a
        killed process started), it refuses everything: wait for it, up to ``busy_wait``."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + busy_wait
        while True:
            try:
                return await self._run_once(*args, timeout=timeout, stream=stream)
            except RaucError as exc:
                if "already processing" not in str(exc) or loop.time() > give_up:
                    raise
                log.info("RAUC is busy with another operation: waiting")
                await asyncio.sleep(1.0)

    async def _run_once(self, *args: str, timeout: float, stream: bool) -> str:
        try:
            proc = await asyncio.create_subprocess_exec(
                self._binary,
                *args,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env=self._env,
            )
        except OSError as exc:
            raise RaucError(f"cannot run {self._binary}: {exc.strerror}") from None
        assert proc.stdout is not None
        lines: list[str] = []
        try:
            async with asyncio.timeout(timeout):
                while raw := await proc.stdout.readline():
                    line = raw.decode(errors="replace").rstrip()
                    lines.append(line)
                    if stream and line:
                        log.info("rauc: %s", line)
                await proc.wait()
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise RaucError(f"rauc {args[0]} timed out after {timeout:.0f} s") from None
        output = "\n".join(lines)
        if proc.returncode != 0:
            raise RaucError(_reason(output) or f"rauc {args[0]} exited with {proc.returncode}")
        return output

    async def info(self, bundle: str, keyring: str) -> BundleInfo:
        """Verify the bundle's signature against ``keyring`` and read its manifest."""
        out = await self._run("info", f"--keyring={keyring}", "--output-format=json", bundle)
        data = _json(out)
        files = [
            str(image.get("filename") or "")
            for entry in data.get("images") or []
            if isinstance(entry, dict)
            for image in entry.values()
            if isinstance(image, dict)
        ]
        return BundleInfo(
            compatible=str(data.get("compatible", "")),
            version=str(data.get("version") or ""),
            casync=any(name.endswith(CASYNC_INDEX_SUFFIXES) for name in files),
        )

    async def install(self, bundle: str, timeout: float = 1800.0) -> None:
        await self._run("install", bundle, timeout=timeout, stream=True)

    async def status(self) -> SystemStatus:
        out = await self._run("status", "--detailed", "--output-format=json")
        data = _json(out)
        slots = []
        for entry in data.get("slots", []):
            for name, slot in entry.items():
                bundle = (slot.get("slot_status") or {}).get("bundle") or {}
                slots.append(
                    SlotInfo(
                        name=name,
                        bootname=str(slot.get("bootname") or ""),
                        state=str(slot.get("state") or ""),
                        boot_status=str(slot.get("boot_status") or ""),
                        bundle_version=bundle.get("version"),
                    )
                )
        return SystemStatus(
            compatible=str(data.get("compatible", "")),
            booted=str(data.get("booted", "")),
            primary=data.get("boot_primary"),
            slots=tuple(slots),
        )

    async def mark(self, state: str, slot: str = "booted") -> None:
        """``rauc status mark-good|mark-bad|mark-active booted|other``."""
        await self._run("status", f"mark-{state}", slot)


def _json(output: str) -> dict[str, Any]:
    """The JSON document in rauc's output (log lines may precede it)."""
    start = output.find("{")
    if start < 0:
        raise RaucError(f"rauc printed no JSON: {output[:200]}")
    try:
        data = json.loads(output[start : output.rfind("}") + 1])
    except ValueError as exc:
        raise RaucError(f"rauc printed malformed JSON: {exc}") from None
    if not isinstance(data, dict):
        raise RaucError("rauc printed unexpected JSON")
    return data


def _reason(output: str) -> str:
    """The most telling line of a failed rauc run (its last error line)."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    last_error = [line for line in lines if line.startswith("LastError:")]
    if last_error:  # `rauc install` explains itself on this line
        return last_error[-1].removeprefix("LastError:").strip()[:500]
    errors = [line for line in lines if "error" in line.lower() or "failed" in line.lower()]
    return (errors or lines or [""])[-1][:500]
