"""A stopping process group is seen gone as soon as its last member exits (pidfds), not at the
next scan of ``/proc``: a turn is complete only once its agent is gone, so every ms of that wait
is a ms of every turn (issue 15).

Real processes: a group whose leader has exited and whose one remaining member (``cat``) exits
the moment the test closes the pipe it reads, so the test knows when the group ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from codeyard.agents import process_group as process
from codeyard.agents.process_group import ProcessGroup

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def _ended_member_noticed_after() -> float:
    """Seconds from the last member's end (its input closed) to ``stop`` returning."""
    read, write = os.pipe()
    try:
        leader = await asyncio.create_subprocess_exec(
            *("/bin/sh", "-c", f"cat /dev/fd/{read} >/dev/null & echo $!"),
            stdout=asyncio.subprocess.PIPE,
            pass_fds=(read,),
            start_new_session=True,
        )
    finally:
        os.close(read)
    out, _ = await asyncio.wait_for(leader.communicate(), 10)  # gone; its child reads on
    member = int(out)
    group = ProcessGroup(leader.pid)
    try:
        assert group.members() == {member}
        stopping = asyncio.ensure_future(group.stop(grace=10, why="test"))
        # Between two of the old 50 ms scans: that wait noticed the end ~30 ms late.
        await asyncio.sleep(0.12)
        assert not stopping.done()
        closed = time.monotonic()
        os.close(write)
        write = -1
        await asyncio.wait_for(stopping, 10)
        late = time.monotonic() - closed
        assert group.members() == set()
        return late
    finally:
        if write != -1:
            os.close(write)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(leader.pid, signal.SIGKILL)


async def test_the_last_member_exit_is_noticed_within_a_few_ms() -> None:
    late = [await _ended_member_noticed_after() for _ in range(5)]
    # The fastest of five: a loaded machine (the suite's own workers) delays some wake-ups,
    # not every one; the old scan noticed the end ~30-39 ms late every time (its phase is
    # fixed by the 0.12 s above), the wait on pidfds 2-6 ms.
    assert min(late) < 0.02, late


async def test_without_pidfds_the_group_is_polled_finely(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_pidfd(pid: int) -> int:
        raise OSError("no pidfd here")

    monkeypatch.setattr(process.os, "pidfd_open", no_pidfd)
    late = [await _ended_member_noticed_after() for _ in range(3)]
    assert min(late) < process.POLL_EVERY + 0.015, late  # the fastest: as above


async def test_a_member_that_starts_its_own_session_is_followed_without_scanning_proc(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a stop waits, a descendant that leaves the group (``setsid``) is found through its
    parent's children list and stopped with the rest after the parent is gone; ``/proc`` is
    scanned as a whole only when the wait begins and when the members seen have exited, not
    every ``SCAN_EVERY`` (a scan of every process costs ms with many agents running)."""
    pid_file = tmp_path / "escaped"
    script = (
        f"sleep 0.2; setsid /bin/sh -c 'echo $$ > {pid_file}; exec sleep 30' & sleep 0.5; exit 0"
    )
    leader = await asyncio.create_subprocess_exec("/bin/sh", "-c", script, start_new_session=True)
    scans = 0
    scan = process._all_stats

    def counted() -> dict[int, process.Stat]:
        nonlocal scans
        scans += 1
        return scan()

    monkeypatch.setattr(process, "_all_stats", counted)
    group = ProcessGroup(leader.pid)
    escaped = 0
    try:
        gone = await asyncio.wait_for(group.stop(grace=1.5, why="test"), 20)
        await leader.wait()
        escaped = int(pid_file.read_text())
        # Still there after its parent exited (outside the group): the stop's signals reach it.
        assert not process._alive(escaped), "the escaped descendant outlived the stop"
        assert gone  # SIGTERM ended it (a background job of sh ignores SIGINT): no SIGKILL
        assert escaped in group._known
        # Three waits of 1.5 s (the grace, after SIGINT, after SIGTERM), each scanning when
        # it begins and ends, and two escalations scanning twice (logged, signalled): 10.
        # A scan every SCAN_EVERY while waiting would be ~90.
        assert scans <= 10, scans
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(leader.pid, signal.SIGKILL)
        if escaped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(escaped, signal.SIGKILL)


def _count_scans(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    scans: list[int] = []
    scan = process._all_stats

    def counted() -> dict[int, process.Stat]:
        scans.append(1)
        return scan()

    monkeypatch.setattr(process, "_all_stats", counted)
    return scans


async def test_a_clean_stop_of_a_tree_scans_no_proc(monkeypatch: pytest.MonkeyPatch) -> None:
    """The members are found through the children lists from the leader, and the group is
    seen empty with one kill(2): a scan of every process (ms with many agents running, twice
    per turn before) is left for what those cannot settle."""
    leader = await asyncio.create_subprocess_exec(
        *("/bin/sh", "-c", "sleep 0.3 & wait"), start_new_session=True
    )
    scans = _count_scans(monkeypatch)
    group = ProcessGroup(leader.pid)
    try:
        assert await asyncio.wait_for(group.stop(grace=5, why="test"), 10)
        await leader.wait()
        assert len(group._known) == 2  # the shell and its sleep, both waited for
        assert scans == []
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(leader.pid, signal.SIGKILL)


async def _member_left_alone_waited_for(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Stop a group whose leader died before the stop began and whose one member lives on
    ~0.6 s: the stop waits for that member's own end. The scans of every process it took."""
    leader = await asyncio.create_subprocess_exec(
        *("/bin/sh", "-c", "sleep 0.6 >/dev/null & echo $!"),
        stdout=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    out, _ = await asyncio.wait_for(leader.communicate(), 10)  # the leader is gone
    member = int(out)
    scans = _count_scans(monkeypatch)
    group = ProcessGroup(leader.pid)
    try:
        started = time.monotonic()
        assert await asyncio.wait_for(group.stop(grace=5, why="test"), 10)
        assert not process._alive(member)
        assert time.monotonic() - started > 0.3  # it waited for the member's own end
        assert member in group._known
        return scans
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(leader.pid, signal.SIGKILL)


async def test_a_member_left_without_its_parent_is_still_waited_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A member whose parent (the leader) died before the stop began is outside the tree the
    children lists show; the group is not empty, so the stop looks where it was re-parented
    (this process's ancestors, init included) and finds it there without a scan of every
    process (a turn's end in a container whose init reaps nothing scanned every time)."""
    assert await _member_left_alone_waited_for(monkeypatch) == []


async def test_without_children_lists_a_scan_finds_the_member_left_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # No CONFIG_PROC_CHILDREN: neither the members' lists nor the adopters' exist.
    monkeypatch.setattr(process, "_children", lambda pids: None)
    monkeypatch.setattr(process, "_orphans_parents_children", lambda adopters: None)
    assert len(await _member_left_alone_waited_for(monkeypatch)) >= 1


SUBREAPER_SCRIPT = """
import asyncio, ctypes, sys
from codeyard.agents import process_group as process

scans = []
scan = process._all_stats
process._all_stats = lambda: scans.append(1) or scan()


async def main():
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER: orphans come here
    leader = await asyncio.create_subprocess_exec(
        "/bin/sh", "-c", "sleep 0.6 >/dev/null & echo $!",
        stdout=asyncio.subprocess.PIPE, start_new_session=True,
    )
    out, _ = await leader.communicate()
    member = int(out)
    assert process._stat(member)[1] == process.os.getpid()  # adopted by this process
    group = process.ProcessGroup(leader.pid)
    assert await group.stop(grace=5, why="test")
    print(member in group._known, not process._alive(member), len(scans))


asyncio.run(main())
"""


def test_a_subreaper_server_finds_the_member_it_adopted_without_a_scan() -> None:
    """Where the server is a child subreaper, a member left without its parent is re-parented
    to the server, not to init: its own children lists find it (no scan of every process)."""
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", SUBREAPER_SCRIPT],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "True", "0"], done.stdout
