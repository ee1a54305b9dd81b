"""The daemon's log in a real journal: ``journalctl EVSED_CONNECTOR=2`` shows connector 2 only.

evsed runs as systemd would start it: stdout and stderr on a stream connected to journald's
``/run/systemd/journal/stdout`` and ``$JOURNAL_STREAM`` naming that stream, so it logs through
systemd-python's JournalHandler. Uses the journald of the machine when one answers; as root on
a machine without one (a container, CI) the test starts ``systemd-journald`` for the module
and stops it afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from evsed_devtools.harness import DevCsms, Evsed, wait_for, write_config

pytest.importorskip("systemd.journal", reason="systemd-python (the systemd extra)")

JOURNAL_SOCKET = "/run/systemd/journal/socket"
JOURNAL_STDOUT = "/run/systemd/journal/stdout"
JOURNALD = ("/usr/lib/systemd/systemd-journald", "/lib/systemd/systemd-journald")


def _journald_answers() -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(JOURNAL_SOCKET)
        except OSError:
            return False
    return True


@pytest.fixture(scope="module")
def journald(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    if shutil.which("journalctl") is None:
        pytest.skip("journalctl is missing (Debian package systemd)")
    if _journald_answers():
        yield
        return
    binary = next((path for path in JOURNALD if os.path.exists(path)), None)
    if binary is None or os.geteuid() != 0:
        pytest.skip("no journald answers here, and starting one needs root and systemd-journald")
    log = tmp_path_factory.mktemp("journald") / "journald.log"
    with log.open("w") as out:
        proc = subprocess.Popen([binary], stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(_journald_answers, 10, "systemd-journald to answer")
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _stream_to_journal(identifier: str) -> socket.socket:
    """A stream to journald as systemd makes one for a service's stdout/stderr: the header
    names the identifier, no unit, priority 6, level prefixes on, no forwarding."""
    stream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stream.connect(JOURNAL_STDOUT)
    stream.sendall(f"{identifier}\n\n6\n1\n0\n0\n0\n".encode())
    stream.shutdown(socket.SHUT_RD)
    return stream


def _journal(*matches: str) -> list[dict[str, Any]]:
    done = subprocess.run(
        ["journalctl", "--no-pager", "-o", "json", *matches],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def test_journalctl_selects_one_connector_by_its_field(
    tmp_path: Path, csms: DevCsms, journald: None
) -> None:
    config = write_config(tmp_path, csms.ws_url, "CP01", connectors=2)
    stream = _stream_to_journal("evsed")
    st = os.fstat(stream.fileno())
    proc = subprocess.Popen(
        [sys.executable, "-m", "evsed", "--config", str(config)],
        stdout=stream.fileno(),
        stderr=stream.fileno(),
        env={**os.environ, "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"},
    )
    stream.close()  # the daemon has its own copy
    daemon = Evsed(proc, config, tmp_path / "no-log-file")
    pid = f"_PID={proc.pid}"
    try:
        wait_for(lambda: daemon.ctl("status").returncode == 0, 20, "the control socket")
        daemon.sim("plug", connector=2)
        daemon.sim("fault", "rcd", connector=2)
        daemon.sim("plug", connector=1)
        wait_for(
            lambda: [e for e in _journal(pid, "EVSED_CONNECTOR=2") if "EVSED_FAULT" in e],
            15,
            "connector 2's fault in the journal",
        )
    finally:
        assert daemon.stop() == 0
    two = _journal(pid, "EVSED_CONNECTOR=2")
    one = _journal(pid, "EVSED_CONNECTOR=1")
    assert two and one
    assert all("connector 2" in e["MESSAGE"] for e in two), [e["MESSAGE"] for e in two]
    assert all("connector 1" in e["MESSAGE"] for e in one), [e["MESSAGE"] for e in one]
    assert {e["EVSED_FAULT"] for e in two if "EVSED_FAULT" in e} == {"rcd-tripped"}
    assert "connector 2: fault rcd-tripped" in [e["MESSAGE"] for e in two]
    # Sent with the native protocol by the JournalHandler, not as lines of the stderr stream.
    assert {e["_TRANSPORT"] for e in two} == {"journal"}
    assert {e["SYSLOG_IDENTIFIER"] for e in two} == {"evsed"}
    everything = _journal(pid)
    assert "stdout" not in {e["_TRANSPORT"] for e in everything}
    assert any(
        e["MESSAGE"].startswith("evsed ") and " up: charger CP01" in e["MESSAGE"]
        for e in everything
    )
