"""Binding ``<data dir>/run/cli.sock`` and serving the socket's app beside the HTTP server.

The socket is created inside a directory only the server's user may enter (0700) and is made
0600 right after ``bind``, so no other user can connect even in between. Uvicorn's own ``uds``
option is not used: it makes the socket 0666. A path too long for ``AF_UNIX`` (108 bytes on
Linux) or a socket that cannot be bound is logged and skipped: the HTTP server still starts,
and the CLI's offline commands (which open the database directly) still work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import uvicorn

from codeyard.cli_socket.app import build
from codeyard.config import KEEP_ALIVE_SECONDS, Settings
from codeyard.services.context import Services

__all__ = ["CliSocket", "socket_path"]

log = logging.getLogger(__name__)
#: Linux's ``sun_path`` holds 108 bytes with the terminating NUL.
_MAX_PATH = 107


def socket_path(settings: Settings) -> Path:
    return settings.data_dir / "run" / "cli.sock"


class _Quiet(uvicorn.Server):
    """A second server in the HTTP server's process: the signals stay the main server's."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _bind(path: Path) -> socket.socket:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    if path.is_socket():
        path.unlink()  # left by a server that did not stop cleanly
    elif path.exists():
        raise OSError(f"{path} exists and is not a socket")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
        os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
        sock.listen(16)
    except OSError:
        sock.close()
        raise
    return sock


class CliSocket:
    """The socket's server: ``start`` after the services, ``stop`` before them."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.path = socket_path(services.settings)
        self._server: _Quiet | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> bool:
        """Serve the socket; False (logged) when it cannot be bound."""
        if len(os.fsencode(self.path)) > _MAX_PATH:
            log.warning("CLI socket not started: %s is too long for a Unix socket", self.path)
            return False
        try:
            sock = _bind(self.path)
        except OSError as exc:
            log.warning("CLI socket not started at %s: %s", self.path, exc)
            return False
        config = uvicorn.Config(  # log_config=None: the process's logging stays as it is
            build(self.services),
            lifespan="off",
            log_config=None,
            access_log=False,
            timeout_keep_alive=KEEP_ALIVE_SECONDS,  # a waiting CLI reuses its connection
        )
        self._server = _Quiet(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        return True

    async def stop(self) -> None:
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        try:
            await asyncio.wait_for(self._task, timeout=5)
        except TimeoutError:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
