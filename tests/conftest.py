"""Shared fixtures. Helpers for running the daemon as a process live in tests/procs.py."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
