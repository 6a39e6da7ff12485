"""Agent processes started without forking the server (``codeyard.agents.piped``).

Each test runs its own uvloop loop (the server's loop, whose own spawn forks), with real child
processes; every wait is bounded and every child is killed in a ``finally``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO, Any

import anyio
import pytest
import uvloop

from codeyard.agents import piped
from codeyard.agents.process import spawn
from codeyard.agents.process_group import _Exits

LIMIT = 10.0


def run_uvloop(main: Callable[[], Awaitable[None]]) -> None:
    async def bounded() -> None:
        async with asyncio.timeout(LIMIT):
            await main()

    uvloop.run(bounded())


def _started_by_popen(proc: asyncio.subprocess.Process) -> bool:
    """asyncio's subprocess transports expose the ``Popen`` they started; uvloop's do not."""
    transport = proc._transport  # type: ignore[attr-defined]  # what started the child
    return isinstance(transport.get_extra_info("subprocess"), subprocess.Popen)


def test_pipes_exit_status_and_the_standard_process_api_under_uvloop(tmp_path: Path) -> None:
    async def main() -> None:
        proc = await piped.create_subprocess_exec(
            "/bin/sh",
            "-c",
            'read -r line; echo "got $line in $PWD $COLOR"; echo oops >&2; exit 3',
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=tmp_path,
            env={"COLOR": "green", "PATH": os.environ["PATH"]},
        )
        try:
            assert _started_by_popen(proc)
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(b"hello\n")
            await proc.stdin.drain()
            assert await proc.stdout.readline() == f"got hello in {tmp_path} green\n".encode()
            _, err = await proc.communicate()
            assert err == b"oops\n"
            assert proc.returncode == 3
            assert await proc.wait() == 3
        finally:
            if proc.returncode is None:
                proc.kill()

    run_uvloop(main)


def test_a_killed_child_reports_the_signal_and_a_long_line_hits_the_limit() -> None:
    async def main() -> None:
        proc = await piped.create_subprocess_exec(
            "/bin/sh",
            "-c",
            "head -c 300 /dev/zero | tr '\\0' x; echo; exec sleep 30",
            stdout=asyncio.subprocess.PIPE,
            limit=100,
        )
        try:
            assert proc.stdout is not None
            try:
                await proc.stdout.readline()
                raise AssertionError("a 300-byte line passed a 100-byte limit")
            except ValueError:
                pass
            proc.send_signal(signal.SIGKILL)
            await proc.communicate()  # the rest of the output, then the exit
            assert proc.returncode == -signal.SIGKILL
        finally:
            if proc.returncode is None:
                proc.kill()

    run_uvloop(main)


class _Witness:
    """A ``Popen`` pipe that notes whether its descriptor was still its own when closed."""

    def __init__(self, file: IO[bytes], found_closed: list[int]) -> None:
        self._file = file
        self._found_closed = found_closed

    def fileno(self) -> int:
        return self._file.fileno()

    def close(self) -> None:
        fd = self._file.fileno()
        try:
            os.fstat(fd)
        except OSError:  # someone closed it first: by now the number may be another thread's
            self._found_closed.append(fd)
        self._file.close()


def test_each_pipe_is_closed_once_by_its_owner_under_uvloop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """uvloop's pipe transports close the descriptor, then the file object they were given:
    with ``Popen``'s file objects that second close could close a git waiter thread's new pipe
    of the same number (git "could not start": ``[Errno 9] Bad file descriptor``)."""
    found_closed: list[int] = []

    class WitnessedPopen(subprocess.Popen[bytes]):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            for name in ("stdin", "stdout", "stderr"):
                file = getattr(self, name)
                if file is not None:
                    setattr(self, name, _Witness(file, found_closed))

    monkeypatch.setattr(piped.subprocess, "Popen", WitnessedPopen)

    async def main() -> None:
        for _ in range(3):
            proc = await piped.create_subprocess_exec(
                "/bin/sh",
                "-c",
                "cat; echo oops >&2",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            try:
                assert await proc.communicate(b"hi\n") == (b"hi\n", b"oops\n")
            finally:
                if proc.returncode is None:
                    proc.kill()
            await asyncio.sleep(0.01)  # the transports' close callbacks

    run_uvloop(main)
    assert found_closed == []


def test_spawn_starts_a_group_leader_without_forking_the_server() -> None:
    """What every provider's spawn site gets: a new session led by the child, the
    die-with-the-server prefix, and a Popen-started child."""

    async def main() -> None:
        proc, group = await spawn(
            ["/bin/sh", "-c", "cat /proc/self/stat"],
            kind="test",
            stdout=asyncio.subprocess.PIPE,
        )
        try:
            assert _started_by_popen(proc)
            out, _ = await proc.communicate()
            fields = out[out.rfind(b")") + 2 :].split()
            # The shell exec'd cat, so cat holds the spawned pid: it leads its group and session.
            assert int(fields[2]) == int(fields[3]) == proc.pid == group.pid
        finally:
            group.kill()

    run_uvloop(main)


def test_install_routes_the_loops_own_spawns_like_the_claude_sdks() -> None:
    """The Claude SDK starts its CLI with ``anyio.open_process`` (the loop's
    ``subprocess_exec``): once installed, that goes through Popen too."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        before = await asyncio.create_subprocess_exec("/bin/true")
        await before.wait()
        assert not _started_by_popen(before)  # uvloop's own spawn: a fork
        piped.install(loop)
        piped.install(loop)  # idempotent
        async with await anyio.open_process(["/bin/cat"]) as proc:
            assert proc.stdin is not None and proc.stdout is not None
            await proc.stdin.send(b"ping\n")
            assert await proc.stdout.receive() == b"ping\n"
            await proc.stdin.aclose()
            assert await proc.wait() == 0
        after = await asyncio.create_subprocess_exec("/bin/true")
        assert _started_by_popen(after)
        assert await after.wait() == 0

    run_uvloop(main)


@pytest.mark.anyio
async def test_install_leaves_asyncios_own_loop_alone() -> None:
    loop = asyncio.get_running_loop()
    method = loop.subprocess_exec
    piped.install(loop)
    assert loop.subprocess_exec == method


def test_a_stop_is_woken_by_the_members_exits_not_by_a_poll() -> None:
    """``ProcessGroup.stop`` waits on the members' pidfds (under uvloop, the server's loop): an
    exit wakes it long before the wait's bound, a live member holds it until the bound, a gone
    pid is said at once."""

    async def main() -> None:
        proc, group = await spawn(["sleep", "0.3"], kind="test")
        exits = _Exits()
        try:
            started = time.monotonic()
            assert exits.watch({proc.pid: None})
            await exits.all_gone(8.0)
            assert time.monotonic() - started < 5.0  # the exit woke it, not the 8 s bound
            await proc.wait()
            assert exits.watch({proc.pid: None})  # reaped: nothing to wait for
            started = time.monotonic()
            await exits.all_gone(8.0)
            assert time.monotonic() - started < 5.0  # said at once, not at the 8 s bound
            long, long_group = await spawn(["sleep", "30"], kind="test")
            try:
                started = time.monotonic()
                assert exits.watch({long.pid: None})
                await exits.all_gone(0.1)
                assert time.monotonic() - started >= 0.09 and long.returncode is None
            finally:
                long_group.kill()
                await long.wait()
        finally:
            exits.close()
            group.kill()

    run_uvloop(main)
