"""A simulated serial cable: two pseudo-terminals joined master to master (a null modem).

A Modbus RTU device simulator opens :attr:`PtyNullModem.meter_path` and the real driver opens
:attr:`PtyNullModem.client_path`; what one writes, the other reads, byte for byte, as on an
RS-485 line between one master and its devices. Baud rate and parity do not exist on a pty:
both ends may set any. Runs on the event loop with ``add_reader``: no thread.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tty

log = logging.getLogger(__name__)


class PtyNullModem:
    """Two pty pairs joined master to master: a serial cable between two device paths.

    The ptys exist from construction, so both paths can be handed out before :meth:`start`;
    bytes flow between :meth:`start` and :meth:`stop`. :meth:`close` releases the ptys. The
    slave sides stay open here too, so neither master reads EOF while an end is unplugged.

    ``corrupt_replies`` flips the last byte (the CRC) of everything the meter side sends.
    ``answer``, when set, is sent back for every request instead of passing the request on
    to the meter, so a test can put any bytes on the line.
    """

    def __init__(self) -> None:
        self.corrupt_replies = False
        self.answer: bytes | None = None
        self._fds: list[int] = []
        self._meter_master, self.meter_path = self._open()
        self._client_master, self.client_path = self._open()
        self._loop: asyncio.AbstractEventLoop | None = None

    def _open(self) -> tuple[int, str]:
        master, slave = os.openpty()
        tty.setraw(master)
        os.set_blocking(master, False)
        self._fds += [master, slave]
        return master, os.ttyname(slave)

    def start(self) -> None:
        """Let bytes flow both ways (on the running event loop)."""
        if self._loop is not None:
            return
        self._loop = asyncio.get_running_loop()
        meter, client = self._meter_master, self._client_master
        self._loop.add_reader(meter, self._relay, meter, client, True)
        self._loop.add_reader(client, self._relay, client, meter, False)

    def stop(self) -> None:
        """Cut the cable: bytes written at either end are no longer passed on."""
        if self._loop is not None:
            self._loop.remove_reader(self._meter_master)
            self._loop.remove_reader(self._client_master)
            self._loop = None

    def close(self) -> None:
        """Stop and release the ptys; the paths disappear."""
        self.stop()
        for fd in self._fds:
            os.close(fd)
        self._fds = []

    def _relay(self, source: int, sink: int, from_meter: bool) -> None:
        try:
            data = os.read(source, 4096)
        except OSError:  # also BlockingIOError: another reader took the bytes
            return
        if not from_meter and self.answer is not None:
            self._write(source, self.answer)
            return
        if from_meter and self.corrupt_replies and data:
            data = data[:-1] + bytes([data[-1] ^ 0xFF])
        self._write(sink, data)

    @staticmethod
    def _write(fd: int, data: bytes) -> None:
        try:
            os.write(fd, data)
        except OSError as exc:  # nobody reads that end and its buffer is full: bytes are lost
            log.debug("simulated serial line: %d bytes lost: %s", len(data), exc)
