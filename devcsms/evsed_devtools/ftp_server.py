"""An FTP server on 127.0.0.1 for tests that upload (GetDiagnostics, GetLog): pyftpdlib in a
thread of the test process, one user with write access to a directory, and the commands it
received (PASS arguments left out)."""

from __future__ import annotations

import threading
from pathlib import Path
from types import TracebackType

from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer


class TestFtpServer:
    """``with TestFtpServer(root, "user", "password") as ftp: ftp.url(...)``."""

    __test__ = False  # not a pytest test class

    def __init__(self, root: Path, user: str, password: str) -> None:
        self.root = root
        self.user = user
        self.commands: list[str] = []
        commands = self.commands

        class Recording(FTPHandler):  # type: ignore[misc]  # pyftpdlib ships no type hints
            def pre_process_command(self, line: str, cmd: str, arg: str) -> None:
                commands.append(cmd if cmd == "PASS" else f"{cmd} {arg}".strip())
                super().pre_process_command(line, cmd, arg)

        authorizer = DummyAuthorizer()
        authorizer.add_user(user, password, str(root), perm="elrw")
        Recording.authorizer = authorizer
        Recording.auth_failed_timeout = 0.05  # no 3 s penalty for a wrong password
        Recording.passive_ports = None
        self._server = FTPServer(("127.0.0.1", 0), Recording)
        self.port: int = self._server.address[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def url(self, user: str | None = None, password: str | None = None, path: str = "/") -> str:
        login = f"{user}:{password}@" if user is not None else ""
        return f"ftp://{login}127.0.0.1:{self.port}{path}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            self._server.serve_forever(timeout=0.02, blocking=False, handle_exit=False)
        self._server.close_all()

    def __enter__(self) -> TestFtpServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(5)
