"""One targeted firmware update, from UpdateFirmware to a committed or rolled-back slot.

Flow (DESIGN.md "OTA with RAUC"): wait for retrieveDate -> download (retries, Range resume) ->
verify (OCPP signature when signed; ``rauc info`` with the keyring; compatible) -> make every
connector Unavailable once its transaction ends, honour installDateTime and the maintenance
window -> ``rauc install`` -> persist what the next boot must look like -> reboot. After the
boot: the expected slot must be booted and the health check pass within its deadline, then
``rauc status mark-good booted`` and Installed; otherwise ``mark-bad booted`` + ``mark-active
other`` + reboot, and InstallationFailed from the old slot. Each status is a version-neutral
:class:`~evsed.store.outbox.Report` in the durable outbox, committed with the phase it reports,
so it is sent exactly once; the CSMS client turns it into its version's message. The charger
(an :class:`~evsed.port.UpdateHost`) says which connectors are busy, holds them and reboots.
A casync bundle (a delta update) goes the same way; its install fetches the chunks the running
slot lacks through the chunk relay, with retries of its own (:mod:`evsed.ota.delta`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

from evsed.clock import iso, parse_iso
from evsed.config import OtaConfig
from evsed.ota import delta
from evsed.ota import state as ota_state
from evsed.ota.chunks import ChunkRelay
from evsed.ota.download import DownloadError, download
from evsed.ota.rauc import Rauc, RaucError, SystemStatus
from evsed.ota.state import FirmwareStatus, UpdatePhase, UpdateState
from evsed.port import UpdateHost
from evsed.security.events import SecurityEvent, SecurityEvents
from evsed.store.db import Database
from evsed.store.outbox import Outbox, Report

log = logging.getLogger(__name__)

HealthCheck = Callable[[], Awaitable[str | None]]  # None = healthy, else the reason it is not
IDLE_POLL_S = 1.0


class FirmwareManager:
    """Runs at most one update at a time; resumes after every restart."""

    def __init__(
        self,
        config: OtaConfig,
        db: Database,
        outbox: Outbox,
        rauc: Rauc,
        host: UpdateHost,
        *,
        download_dir: Path,
        roots: Callable[[], list[Any]],
        health: HealthCheck,
        now: Callable[[], datetime],
        slots_changed: Callable[[SystemStatus], None] | None = None,
        security: SecurityEvents | None = None,
    ) -> None:
        """``security``: where security events go (the security log and the CSMS); without
        it they are queued for the CSMS only."""
        self._slots_changed = slots_changed
        self._security = security
        self._config = config
        self._db = db
        self._outbox = outbox
        self._rauc = rauc
        self._host = host
        self._dir = download_dir
        self._roots = roots
        self._health = health
        self._now = now
        self.state: UpdateState | None = None
        self._task: asyncio.Task[None] | None = None
        self._relay = (
            ChunkRelay(
                config.casync_relay_port,
                download_dir / "chunks",
                ca_file=config.ca_file or None,
                min_free_bytes=config.min_free_mb * 1024 * 1024,
            )
            if config.casync_relay_port
            else None
        )

    # -- requests from the CSMS ---------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return self.state is not None and self.state.phase is not UpdatePhase.DONE

    @property
    def last_status(self) -> FirmwareStatus:
        """For TriggerMessage(FirmwareStatusNotification): Idle when nothing is going on."""
        if self.state is None or self.state.phase is UpdatePhase.DONE:
            return FirmwareStatus.IDLE
        return FirmwareStatus(self.state.last_status)

    async def request(self, update: UpdateState) -> bool:
        """Accept a new update unless one is already past its download (then refuse)."""
        if (
            self.busy
            and self.state is not None
            and self.state.phase
            not in (
                UpdatePhase.SCHEDULED,
                UpdatePhase.DOWNLOADING,
            )
        ):
            return False
        if self._task is not None:
            self._task.cancel()
        self.state = update
        await asyncio.to_thread(ota_state.save, self._db, update)  # before it is acknowledged
        self._task = asyncio.create_task(self._run(), name="ota")
        return True

    async def resume(self) -> None:
        """Continue whatever the last process left; called once at start-up.

        With no update after a reboot the booted slot is still confirmed once it is healthy:
        with U-Boot boot-attempt counting every boot uses up an attempt until the slot is
        marked good, so a slot that is never confirmed would be dropped after a few reboots.
        """
        self.state = await asyncio.to_thread(ota_state.load, self._db)
        if self.busy:
            self._task = asyncio.create_task(self._run(), name="ota")
        else:
            self._task = asyncio.create_task(self._confirm_boot(), name="ota-confirm")

    async def _confirm_boot(self) -> None:
        deadline = self._now() + timedelta(seconds=self._config.health_check_timeout_s)
        while self._now() < deadline:
            reason = await self._health()
            if reason is None:
                try:
                    await self._rauc.mark("good", "booted")
                except RaucError as exc:
                    log.info("could not confirm the booted slot with RAUC: %s", exc)
                else:
                    log.info("booted slot confirmed good")
                    await self.refresh_slots()
                return
            await asyncio.sleep(1.0)
        log.error("health check did not pass after boot: the booted slot stays unconfirmed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    # -- the flow -----------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            await self._flow()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("firmware update failed unexpectedly")
            await self._finish(FirmwareStatus.INSTALLATION_FAILED, f"internal error: {exc}")
        finally:
            self._host.release_after_update()

    async def _flow(self) -> None:
        assert self.state is not None
        phase = self.state.phase
        if phase is UpdatePhase.REBOOTING:
            return await self._after_reboot()
        if phase is UpdatePhase.ROLLING_BACK:
            await self._finish(
                FirmwareStatus.INSTALLATION_FAILED, "rolled back to the previous slot"
            )
            # `mark-active other` put the old slot on trial again: confirm it once healthy.
            return await self._confirm_boot()
        if phase is UpdatePhase.INSTALLING:
            # Killed during `rauc install`: the RAUC service may have finished it, or (after a
            # power cut) left the target slot marked bad. Installing again is safe either way
            # and ends in one consistent outcome.
            if not Path(self.state.file).exists():
                return await self._finish(FirmwareStatus.INSTALLATION_FAILED, "install interrupted")
            return await self._install()
        downloading = phase in (UpdatePhase.SCHEDULED, UpdatePhase.DOWNLOADING)
        if downloading and not await self._download():
            return None
        if not await self._verify():
            return None
        await self._wait_until_installable()
        await self._install()
        return None

    async def _download(self) -> bool:
        state = self._require()
        retrieve_at = _parse(state.retrieve_at)
        if retrieve_at > self._now():
            if state.last_status != FirmwareStatus.DOWNLOAD_SCHEDULED:
                await self._report(FirmwareStatus.DOWNLOAD_SCHEDULED)
            await asyncio.sleep((retrieve_at - self._now()).total_seconds())
        dest = self._dir / f"update-{state.request_id or 0}.raucb"
        await asyncio.to_thread(self._dir.mkdir, parents=True, exist_ok=True)
        while True:
            state = self._require()
            if state.last_status != FirmwareStatus.DOWNLOADING:
                await self._report(
                    FirmwareStatus.DOWNLOADING, phase=UpdatePhase.DOWNLOADING, file=str(dest)
                )
            try:
                await download(
                    state.location,
                    dest,
                    ca_file=self._config.ca_file or None,
                    min_free_bytes=self._config.min_free_mb * 1024 * 1024,
                )
            except DownloadError as exc:
                attempts = state.download_attempts + 1
                log.warning("firmware download attempt %d failed: %s", attempts, exc)
                if not exc.retryable or attempts > state.retries:
                    await self._finish(FirmwareStatus.DOWNLOAD_FAILED, str(exc))
                    return False
                await self._save(download_attempts=attempts)
                await asyncio.sleep(state.retry_interval_s)
                continue
            await self._report(FirmwareStatus.DOWNLOADED, phase=UpdatePhase.DOWNLOADED)
            return True

    async def _verify(self) -> bool:
        state = self._require()
        if state.signed:
            from evsed.ota.signature import FirmwareSignatureError, verify_firmware

            roots = await asyncio.to_thread(self._roots)
            try:
                await asyncio.to_thread(
                    verify_firmware,
                    Path(state.file),
                    state.signing_certificate,
                    state.signature,
                    roots,
                    now=self._now(),
                )
            except FirmwareSignatureError as exc:
                log.error("firmware signature rejected: %s", exc)
                await self.security_event(exc.kind, str(exc))
                await self._finish(FirmwareStatus.INVALID_SIGNATURE, str(exc))
                return False
            if state.last_status not in (
                FirmwareStatus.SIGNATURE_VERIFIED,
                FirmwareStatus.INSTALL_SCHEDULED,
            ):
                await self._report(FirmwareStatus.SIGNATURE_VERIFIED)
        try:
            info = await self._rauc.info(state.file, self._config.keyring)
            system = await self._rauc.status()
        except RaucError as exc:
            await self._finish(FirmwareStatus.INSTALLATION_FAILED, f"bundle rejected: {exc}")
            return False
        if info.compatible != system.compatible:
            reason = f"bundle is for {info.compatible!r}, this system is {system.compatible!r}"
            await self._finish(FirmwareStatus.INSTALLATION_FAILED, reason)
            return False
        store_url = ""
        if info.casync:
            store_url, problem = delta.chunk_store(
                state.location, self._config.casync_store_url, self._relay
            )
            if problem:
                await self._finish(FirmwareStatus.INSTALLATION_FAILED, problem)
                return False
        await self._save(bundle_version=info.version, store_url=store_url)
        return True

    async def _wait_until_installable(self) -> None:
        """No transaction, installDateTime reached, inside the maintenance window."""
        state = self._require()
        install_at = _parse(state.install_at) if state.install_at else None
        announced = False
        self._host.hold_for_update()
        while True:
            busy = self._host.busy_connectors()
            waiting_for = []
            if busy:
                waiting_for.append(f"transactions on connectors {busy}")
            if install_at is not None and self._now() < install_at:
                waiting_for.append(f"installDateTime {state.install_at}")
            if not in_window(self._config.maintenance_window, self._now()):
                waiting_for.append(f"maintenance window {self._config.maintenance_window}")
            if not waiting_for:
                return
            if not announced:
                log.info("firmware install waits for %s", ", ".join(waiting_for))
                await self._report(FirmwareStatus.INSTALL_SCHEDULED)
                announced = True
            await asyncio.sleep(IDLE_POLL_S)

    async def _install(self) -> None:
        state = self._require()
        try:
            before = await self._rauc.status()
            if state.last_status != FirmwareStatus.INSTALLING:
                await self._report(
                    FirmwareStatus.INSTALLING,
                    phase=UpdatePhase.INSTALLING,
                    previous_slot=before.booted,
                )
            await self._rauc_install(state)
            after = await self._rauc.status()
        except RaucError as exc:
            log.error("rauc install failed: %s", exc)
            await self._finish(FirmwareStatus.INSTALLATION_FAILED, str(exc))
            return
        expected = after.primary_bootname or ""
        deadline = self._now() + timedelta(seconds=self._config.health_check_timeout_s)
        changes: dict[str, object] = {
            "phase": UpdatePhase.REBOOTING,
            "expected_slot": expected,
            "health_deadline": _iso(deadline),
        }
        await self._report(FirmwareStatus.INSTALL_REBOOTING, **changes)
        with contextlib.suppress(OSError):
            Path(state.file).unlink()
        if self._relay is not None:
            await self._relay.clear_cache()
        log.warning("firmware %s installed to slot %s: rebooting", state.bundle_version, expected)
        self._host.request_restart("Reboot")

    async def _rauc_install(self, state: UpdateState) -> None:
        if not state.store_url:
            return await self._rauc.install(state.file)
        assert self._relay is not None  # _verify refuses casync bundles without a relay
        return await delta.install(
            self._rauc,
            self._relay,
            state.file,
            state.store_url,
            attempts=state.install_attempts,
            retries=state.retries,
            retry_interval_s=state.retry_interval_s,
            count_attempt=lambda attempts: self._save(install_attempts=attempts),
        )

    async def _after_reboot(self) -> None:
        state = self._require()
        try:
            system = await self._rauc.status()
        except RaucError as exc:
            await self._finish(
                FirmwareStatus.INSTALLATION_FAILED, f"cannot read slot status after boot: {exc}"
            )
            return
        if system.booted != state.expected_slot:
            # The bootloader fell back (the new slot did not come up): the old slot is running.
            await self._finish(
                FirmwareStatus.INSTALLATION_FAILED,
                f"booted slot {system.booted}, expected {state.expected_slot}:"
                " the bootloader fell back",
            )
            return
        deadline = _parse(state.health_deadline)
        reason: str | None = "not checked yet"
        while self._now() < deadline:
            reason = await self._health()
            if reason is None:
                break
            await asyncio.sleep(1.0)
        if reason is None:
            try:
                await self._rauc.mark("good", "booted")
            except RaucError as exc:
                reason = f"mark-good failed: {exc}"
            else:
                log.warning("firmware %s committed in slot %s", state.bundle_version, system.booted)
                if self._security is not None:
                    await self._security.record(
                        SecurityEvent.FIRMWARE_UPDATED,
                        f"firmware {state.bundle_version} in slot {system.booted}",
                    )
                await self._finish(FirmwareStatus.INSTALLED, "health check passed")
                await self.refresh_slots()
                return
        log.error("health check failed after the update (%s): rolling back", reason)
        with contextlib.suppress(RaucError):
            await self._rauc.mark("bad", "booted")
        try:
            await self._rauc.mark("active", "other")
        except RaucError as exc:
            await self._finish(FirmwareStatus.INSTALLATION_FAILED, f"rollback failed: {exc}")
            return
        await self._save(phase=UpdatePhase.ROLLING_BACK)
        self._host.request_restart("Reboot")

    async def refresh_slots(self) -> None:
        """Tell the daemon the slot states changed (for ``evsectl status``)."""
        if self._slots_changed is None:
            return
        with contextlib.suppress(RaucError):
            self._slots_changed(await self._rauc.status())

    # -- reporting ----------------------------------------------------------------------------

    def _require(self) -> UpdateState:
        assert self.state is not None
        return self.state

    async def _save(self, **changes: object) -> None:
        self.state = self._require().evolve(**changes)
        await asyncio.to_thread(ota_state.save, self._db, self.state)

    async def _report(self, status: FirmwareStatus, **changes: object) -> None:
        """Queue the status report and record the new phase in one commit."""
        self.state = self._require().evolve(last_status=status, **changes)
        payload = {
            "status": str(status),
            "request_id": self.state.request_id,
            "signed": self.state.signed,
        }
        await self._outbox.report(
            Report.FIRMWARE_STATUS,
            payload,
            _iso(self._now()),
            (ota_state.KEY, self.state.to_json()),
        )
        log.info("firmware status: %s", status)

    async def _finish(self, status: FirmwareStatus, reason: str) -> None:
        log.log(
            logging.INFO if status == FirmwareStatus.INSTALLED else logging.ERROR,
            "firmware update ended: %s (%s)",
            status,
            reason,
        )
        await self._report(status, phase=UpdatePhase.DONE)
        state = self._require()
        for leftover in (state.file, state.file + ".part") if state.file else ():
            with contextlib.suppress(OSError):
                Path(leftover).unlink()
        if self._relay is not None:
            await self._relay.clear_cache()

    async def security_event(self, kind: str, info: str) -> None:
        """A security event of the Security Whitepaper's list (``kind``, e.g.
        InvalidFirmwareSignature): in the security log, and queued durably for the CSMS."""
        if self._security is not None:
            await self._security.record(SecurityEvent(kind), info)
            return
        timestamp = _iso(self._now())
        payload = {"type": kind, "timestamp": timestamp, "tech_info": info[:255]}
        await self._outbox.report(Report.SECURITY_EVENT, payload, timestamp, None)


def in_window(window: str, now: datetime) -> bool:
    """Whether ``now`` (UTC) lies in the daily "HH:MM-HH:MM" window; it may wrap midnight."""
    if not window:
        return True
    start_text, end_text = window.split("-")
    start, end = time.fromisoformat(start_text), time.fromisoformat(end_text)
    t = now.astimezone(UTC).time()
    if start <= end:
        return start <= t < end
    return t >= start or t < end


def _parse(text: str | None) -> datetime:
    return parse_iso(text) if text else datetime.min.replace(tzinfo=UTC)


def _iso(ts: datetime) -> str:
    return iso(ts, "seconds")
