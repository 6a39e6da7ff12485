"""A process group whose leader's pid was handed to a newer process is never signalled.

Pids wrap quickly (``pid_max`` is 32,768 here), so a run's group object can outlive its leader
long enough for the number to lead a stranger's group. Real processes: a stranger group (a
shell and its ``sleep`` child) stands at the pid; the object is told it first saw an older
leader there, which is exactly what it would hold after the wrap.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from codeyard.agents.process import ProcessGroup


@pytest.fixture
def stranger() -> Iterator[subprocess.Popen[bytes]]:
    """A group leader with one child, as another run's agent would be."""
    proc = subprocess.Popen(["/bin/sh", "-c", "sleep 30 & wait"], start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not _children(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _children(proc.pid), "the stranger's child never started"
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def _children(pid: int) -> set[int]:
    try:
        return {int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}
    except OSError:
        return set()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def test_a_group_whose_leader_pid_was_reused_has_no_members_and_kills_no_one(
    stranger: subprocess.Popen[bytes],
) -> None:
    group = ProcessGroup(stranger.pid)
    assert group._leader_start is not None
    group._leader_start -= 1  # it first saw an older process under this pid
    (child,) = _children(stranger.pid)

    assert group.members() == set()
    group.kill()
    time.sleep(0.2)
    assert _alive(stranger.pid) and _alive(child)


def test_the_same_group_seen_from_its_start_is_killed_whole(
    stranger: subprocess.Popen[bytes],
) -> None:
    """The control: without the reuse the same call reaches the leader and its child."""
    group = ProcessGroup(stranger.pid)
    (child,) = _children(stranger.pid)

    assert group.members() == {stranger.pid, child}
    group.kill()
    stranger.wait(timeout=10)
    deadline = time.monotonic() + 30
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not _alive(child)
