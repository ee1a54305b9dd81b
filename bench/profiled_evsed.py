"""Run the daemon with a CPU-time profiler that the caller switches on and off by signal.

``python bench/profiled_evsed.py OUT.prof --config evsed.toml``: SIGUSR1 starts profiling the
main thread (the event loop), SIGUSR2 stops it and writes the stats to OUT.prof. The timer is
the thread's CPU time, so waiting in epoll costs nothing and only work is counted. The store's
worker threads (SQLite commits) are not profiled: the caller measures the process's whole CPU
time separately.
"""

from __future__ import annotations

import cProfile
import signal
import sys
import time
from types import FrameType

from evsed.__main__ import main

OUT = sys.argv[1]
PROFILE = cProfile.Profile(time.thread_time)


def _start(_signum: int, _frame: FrameType | None) -> None:
    PROFILE.enable()


def _stop(_signum: int, _frame: FrameType | None) -> None:
    PROFILE.disable()
    PROFILE.dump_stats(OUT)


if __name__ == "__main__":
    signal.signal(signal.SIGUSR1, _start)
    signal.signal(signal.SIGUSR2, _stop)
    sys.exit(main(sys.argv[2:]))
