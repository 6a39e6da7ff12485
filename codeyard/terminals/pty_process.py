"""A program on a pseudo-terminal, read by the event loop (stdlib ``pty``/``termios``).

``ptyprocess`` is unmaintained since 2020, and a thread per terminal is not needed: the master
side is non-blocking and watched with ``loop.add_reader``. The program leads its own session
with the PTY as controlling terminal (util-linux ``setsid --ctty``), so ctrl+c reaches its
foreground job and stopping the terminal reaches its whole process tree.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import shutil
import struct
import subprocess
import termios
from collections.abc import Callable
from pathlib import Path

from codeyard.agents.process import ProcessGroup

READ_CHUNK = 256 * 1024
SETSID = shutil.which("setsid") or "/usr/bin/setsid"


def contained_shell(argv: list[str]) -> list[str]:
    """``argv`` for inside a sandbox that starts its own session (bubblewrap's
    ``--new-session``): a new session there takes the PTY as its controlling terminal, and
    ``--wait`` keeps the sandbox's command alive as long as the shell."""
    return [SETSID, "--ctty", "--wait", *argv]


def set_size(fd: int, cols: int, rows: int) -> None:
    """The kernel sends SIGWINCH to the foreground job when the size changes."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


class PtyProcess:
    """Output goes to ``on_output`` as it arrives; ``on_exit`` gets the exit code once."""

    def __init__(
        self,
        argv: list[str],
        cwd: Path,
        env: dict[str, str],
        cols: int,
        rows: int,
        on_output: Callable[[bytes], None],
        on_exit: Callable[[int | None], None],
        *,
        take_ctty: bool = True,
    ) -> None:
        """``take_ctty``: make the PTY the program's controlling terminal here; False when
        ``argv`` does it itself (a sandbox starts a new session inside, see
        :func:`contained_shell`)."""
        self._on_output = on_output
        self._on_exit = on_exit
        self._pending = bytearray()
        self._loop = asyncio.get_running_loop()
        master, slave = os.openpty()
        try:
            set_size(master, cols, rows)
            self._proc = subprocess.Popen(
                [SETSID, "--ctty", *argv] if take_ctty else argv,
                stdin=slave,
                stdout=slave,
                stderr=slave,
                cwd=cwd,
                env=env,
                close_fds=True,
            )
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)
        self.fd = master
        self.pid = self._proc.pid
        self.group = ProcessGroup(self.pid)
        self.exit_code: int | None = None
        self._closed = False
        os.set_blocking(master, False)
        self._loop.add_reader(master, self._readable)

    @property
    def alive(self) -> bool:
        return not self._closed

    def _readable(self) -> None:
        """Drain what the PTY holds (a read returns at most ~4 KiB): one delivery per wake-up
        instead of one per read keeps a fast producer (``cat`` of a large file) cheap."""
        chunks: list[bytes] = []
        size = 0
        ended = False
        while size < READ_CHUNK:
            try:
                data = os.read(self.fd, READ_CHUNK - size)
            except BlockingIOError:
                break
            except OSError as exc:  # EIO: every slave side is closed, the program is gone
                if exc.errno != errno.EIO:
                    raise
                data = b""
            if not data:
                ended = True
                break
            chunks.append(data)
            size += len(data)
        if chunks:
            self._on_output(b"".join(chunks))
        if ended:
            self._finish()

    def _finish(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._loop.remove_reader(self.fd)
        self._loop.remove_writer(self.fd)
        os.close(self.fd)
        task = self._loop.create_task(asyncio.to_thread(self._proc.wait))
        task.add_done_callback(self._reaped)

    def _reaped(self, task: asyncio.Task[int]) -> None:
        code = None if task.cancelled() or task.exception() else task.result()
        self.exit_code = code
        self._on_exit(code)

    def write(self, data: bytes) -> None:
        """Queue input; what the PTY cannot take now is written when it becomes writable."""
        if self._closed or not data:
            return
        if self._pending:
            self._pending += data
            return
        try:
            sent = os.write(self.fd, data)
        except BlockingIOError:
            sent = 0
        if sent < len(data):
            self._pending += data[sent:]
            self._loop.add_writer(self.fd, self._drain)

    def _drain(self) -> None:
        try:
            sent = os.write(self.fd, self._pending)
        except BlockingIOError:
            return
        del self._pending[:sent]
        if not self._pending:
            self._loop.remove_writer(self.fd)

    def resize(self, cols: int, rows: int) -> None:
        if not self._closed:
            set_size(self.fd, cols, rows)

    async def terminate(self, grace: float = 1.0) -> None:
        """SIGHUP like a closed terminal window, then the group's escalating stop."""
        if self._closed and self._proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, 1)
        await self.group.stop(grace)
        if not self._closed:
            self._finish()

    def kill_now(self) -> None:
        """Synchronous SIGKILL of the whole tree (server shutdown)."""
        self.group.kill()
        if not self._closed:
            self._finish()
