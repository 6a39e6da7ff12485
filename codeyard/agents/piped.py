"""Subprocesses for asyncio started with ``subprocess.Popen`` (vfork), whatever the loop.

``asyncio.create_subprocess_exec`` under uvloop, the server's loop, is libuv's ``uv_spawn``,
which ``fork``s: the kernel copies the page tables of the whole server (~150 MB resident) and
the server then takes a copy-on-write fault for each page it writes until the child ``exec``s.
CPython's ``Popen`` uses ``vfork`` when no ``preexec_fn`` (nor user/group change) is asked for
(``start_new_session``, ``pass_fds``, ``cwd`` and ``env`` all keep it): the child borrows the
parent's memory until its ``exec``, so the cost does not grow with the server
(``bench/spawn_cost.py``). asyncio's own loop starts children the same way; this module gives
uvloop that path, with asyncio's own transport and ``asyncio.subprocess.Process``, so callers
see exactly the standard API. The exit is noticed through a pidfd on the loop (Linux ≥ 5.3),
else by a daemon thread per child (what asyncio's ``ThreadedChildWatcher`` does).

uvloop's pipe transports close a pipe twice: libuv closes the descriptor, then uvloop closes
the file object it was given (expecting, and ignoring, ``EBADF``). Between the two, another
thread (git's waiters, ``codeyard.workspace.git``) may have been given that number by its own
``pipe()``: the second close then closed git's pipe, and git "could not start" with ``[Errno 9]
Bad file descriptor`` (a turn-end checkpoint, as an agent's pipes close). So under uvloop the
loop is given :class:`_LoopPipe` objects, whose descriptor only the loop closes.

- :func:`create_subprocess_exec`: ``asyncio.create_subprocess_exec``, but never a fork.
- :func:`install`: route a loop's ``subprocess_exec`` here, for code that spawns through the
  loop itself (the Claude SDK's ``anyio.open_process``).
- :func:`new_session`: what such code spawns meanwhile (in this context) starts as the leader
  of a new session, as ``start_new_session`` would (the SDK has no such option).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import os
import subprocess
import threading
from asyncio.base_subprocess import BaseSubprocessTransport
from collections.abc import Callable, Iterator
from typing import IO, Any

from codeyard.agents import timing

__all__ = ["create_subprocess_exec", "install", "new_session", "subprocess_exec"]

_LIMIT = 2**16  # asyncio's default StreamReader limit

_NEW_SESSION: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "codeyard_piped_new_session", default=False
)


@contextlib.contextmanager
def new_session() -> Iterator[None]:
    """Start what :func:`subprocess_exec` spawns in this context (tasks started from it too)
    as a new session's leader: ``setsid`` in the child before its ``exec``, as
    ``start_new_session`` does, for a caller that cannot ask for it (the Claude SDK)."""
    token = _NEW_SESSION.set(True)
    try:
        yield
    finally:
        _NEW_SESSION.reset(token)


class _LoopPipe:
    """A child's pipe for a loop that closes the descriptor itself (uvloop), then closes this.

    Until the loop asks for :meth:`fileno` the ``Popen`` file object owns the pipe (and closes
    it once, as usual, if the loop never takes it). :meth:`fileno` hands the loop a duplicate
    and closes the file object while its number is still its own; :meth:`close` afterwards
    does nothing: the number the loop closed may already be another thread's.
    """

    def __init__(self, file: IO[bytes]) -> None:
        self._file: IO[bytes] | None = file
        self._fd = -1

    def fileno(self) -> int:
        if self._file is not None:
            self._fd = os.dup(self._file.fileno())  # not inheritable, as Popen's pipes
            self._file.close()
            self._file = None
        return self._fd

    def close(self) -> None:
        if self._file is not None:  # never handed over: close it the usual way
            self._file.close()
            self._file = None


def _loop_closes_pipes(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether ``loop``'s pipe transports close the descriptor before the pipe object (uvloop,
    any loop but asyncio's own, whose transports only close the pipe object)."""
    return not isinstance(loop, asyncio.BaseEventLoop)


class _PopenTransport(BaseSubprocessTransport):
    """asyncio's subprocess transport around a ``Popen`` child, its exit watched by pidfd."""

    def _start(  # type: ignore[override]  # Popen's keywords pass through
        self,
        args: list[str],
        shell: bool,
        stdin: Any,
        stdout: Any,
        stderr: Any,
        bufsize: int,
        **kwargs: Any,
    ) -> None:
        self._proc = subprocess.Popen(
            args,
            shell=shell,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            universal_newlines=False,
            bufsize=bufsize,
            **kwargs,
        )
        if _loop_closes_pipes(self._loop):
            proc = self._proc
            if proc.stdin is not None:
                proc.stdin = _LoopPipe(proc.stdin)  # type: ignore[assignment]  # fileno, close
            if proc.stdout is not None:
                proc.stdout = _LoopPipe(proc.stdout)  # type: ignore[assignment]
            if proc.stderr is not None:
                proc.stderr = _LoopPipe(proc.stderr)  # type: ignore[assignment]
        self._watch_exit(self._proc)

    def _watch_exit(self, proc: subprocess.Popen[bytes]) -> None:
        loop = self._loop
        try:
            pidfd = os.pidfd_open(proc.pid)
        except (AttributeError, OSError):  # no pidfd here: a thread waits, as asyncio's does
            thread = threading.Thread(
                target=self._wait_thread, args=(proc,), name=f"codeyard-wait-{proc.pid}"
            )
            thread.daemon = True
            thread.start()
            return

        def readable() -> None:
            code = proc.poll()  # reaps it (or returns what close() already reaped)
            if code is None:
                return
            loop.remove_reader(pidfd)
            os.close(pidfd)
            self._exited(code)

        loop.add_reader(pidfd, readable)

    def _wait_thread(self, proc: subprocess.Popen[bytes]) -> None:
        code = proc.wait()
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
            self._loop.call_soon_threadsafe(self._exited, code)

    def _exited(self, code: int) -> None:
        if self._returncode is None:
            self._process_exited(code)


async def subprocess_exec(
    loop: asyncio.AbstractEventLoop,
    protocol_factory: Callable[[], asyncio.SubprocessProtocol],
    program: Any,
    *args: Any,
    stdin: Any = subprocess.PIPE,
    stdout: Any = subprocess.PIPE,
    stderr: Any = subprocess.PIPE,
    universal_newlines: bool = False,
    shell: bool = False,
    bufsize: int = 0,
    **kwargs: Any,
) -> tuple[asyncio.SubprocessTransport, asyncio.SubprocessProtocol]:
    """``loop.subprocess_exec`` with the child started by ``Popen`` (vfork)."""
    if universal_newlines or shell or bufsize != 0:
        raise ValueError("subprocess_exec takes bytes, no shell and bufsize 0")
    for name in ("text", "encoding", "errors"):
        if kwargs.pop(name, None):
            raise ValueError(f"subprocess_exec does not take {name}")
    if kwargs.get("preexec_fn") is not None:
        raise ValueError("preexec_fn would make Popen fork; use start_new_session and the like")
    if _NEW_SESSION.get():
        kwargs["start_new_session"] = True
    protocol = protocol_factory()
    waiter = loop.create_future()
    argv = [program, *args]
    timing.mark(f"spawn {os.path.basename(os.fsdecode(program))}")
    transport = _PopenTransport(
        loop, protocol, argv, False, stdin, stdout, stderr, 0, waiter=waiter, **kwargs
    )
    try:
        await waiter  # the pipes are connected
    except BaseException:
        transport.close()
        await transport._wait()
        raise
    return transport, protocol


async def create_subprocess_exec(
    program: Any,
    *args: Any,
    stdin: Any = None,
    stdout: Any = None,
    stderr: Any = None,
    limit: int = _LIMIT,
    **kwargs: Any,
) -> asyncio.subprocess.Process:
    """``asyncio.create_subprocess_exec`` without forking the calling process."""
    loop = asyncio.get_running_loop()
    transport, protocol = await subprocess_exec(
        loop,
        lambda: asyncio.subprocess.SubprocessStreamProtocol(limit=limit, loop=loop),
        program,
        *args,
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        **kwargs,
    )
    return asyncio.subprocess.Process(transport, protocol, loop)


def install(loop: asyncio.AbstractEventLoop) -> None:
    """Make ``loop.subprocess_exec`` start children with ``Popen`` (idempotent). Needed only
    where the loop would fork (uvloop); asyncio's own loops already use ``Popen``."""
    if isinstance(loop, asyncio.BaseEventLoop) or getattr(loop, "_codeyard_vfork", False):
        return
    try:
        route = functools.partial(subprocess_exec, loop)
        loop.subprocess_exec = route  # type: ignore[method-assign,assignment]
        loop._codeyard_vfork = True  # type: ignore[attr-defined]
    except AttributeError:  # a loop without an instance dict: it keeps its own spawn
        return
