"""A simulated CP MCU in a process of its own, so that it outlives a daemon killed with -9.

``python outside_mcu.py``: opens a pseudo-terminal, runs :class:`hal.sim.mcu.SimMcu` on its
master side and prints ``pty <slave path>``; then reads one command per line on stdin (``plug``,
``C``, ``B``, ``unplug``, ``status``) and answers each with one JSON line: what the MCU knows
(``relay_closed``: its own relay path, which the contactor coil's supply runs through;
``allow_power``: what the host last asked for; ``host_timeout``: the failsafe's latch).
"""

from __future__ import annotations

import asyncio
import json
import sys

from hal.sim.mcu import SimMcu, open_pty
from hal.types import CpState, McuFault


async def main() -> None:
    master, slave = open_pty()
    mcu = SimMcu(master)
    await mcu.start()
    print(f"pty {slave}", flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := (await reader.readline()).decode().strip():
        if line == "plug":
            mcu.plug(32)
        elif line == "unplug":
            mcu.unplug()
        elif line in ("B", "C"):
            mcu.set_ev_state(CpState[line])
        status = {
            "relay_closed": mcu.relay_closed,
            "allow_power": mcu.control.allow_power,
            "host_timeout": bool(mcu.faults & McuFault.HOST_TIMEOUT),
            "cp_state": mcu.cp_state.name,
        }
        print(json.dumps(status), flush=True)
    await mcu.stop()


if __name__ == "__main__":
    asyncio.run(main())
