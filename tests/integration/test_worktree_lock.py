"""Worktree operations on one repository from several processes at once (Temporal workers on
one host share the source repository): the cross-process lock in ``workspace.repo_lock``.

Real git and real OS processes; the children are plain ``python -c`` programs using the same
module the workers use. Without the lock, four such children failed with the bench's
``fatal: failed to read .git/worktrees/repo<N>/commondir`` in about two runs of five (six
worktrees each); with ten each the first test catches it more often, the second one always.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from codeyard.workspace.git import git
from codeyard.workspace.repo_lock import LOCK_NAME, RepoLockTimeout, git_common_dir, repo_lock
from tests.conftest import make_repo

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]

# Each child waits for the start file, then adds its worktrees (every one ends in the same
# basename, ``repo``, as the workers' do) and removes every other one again (``prune``).
CHILD = textwrap.dedent(
    """
    import asyncio, sys, time
    from pathlib import Path
    from codeyard.workspace.repo_lock import repo_lock
    from codeyard.workspace.worktrees import create_worktree, remove_worktree

    repo, root, name, count, start = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], \\
        int(sys.argv[4]), Path(sys.argv[5])

    async def main():
        (start.parent / f"ready-{name}").touch()
        deadline = time.monotonic() + 60
        while not start.exists() and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        for i in range(count):
            dest = root / f"{name}-{i}" / "repo"
            async with repo_lock(repo):
                await create_worktree(repo, dest, f"codeyard/{name}-{i}", "HEAD")
            if i % 2:
                async with repo_lock(repo):
                    await remove_worktree(repo, dest, f"codeyard/{name}-{i}")

    asyncio.run(main())
    """
)

HOLD = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from codeyard.workspace.repo_lock import repo_lock

    async def main():
        async with repo_lock(Path(sys.argv[1])):
            print("got it", flush=True)

    asyncio.run(main())
    """
)


def _spawn(code: str, *args: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code, *map(str, args)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _hold_with_flock(path: Path) -> subprocess.Popen[bytes]:
    """``flock(1)`` holding the lock file, the way any process could (a sandboxed agent too)."""
    # -o: the lock stays with flock itself, not the sleep it runs (killed as a group anyway)
    return subprocess.Popen(["flock", "-o", str(path), "sleep", "30"], start_new_session=True)


def _held(path: Path) -> bool:
    """Whether another process holds ``path``'s ``flock`` (a non-blocking try is refused)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # drops the probe's own lock if it got it
    return False


def _finish(proc: subprocess.Popen[str], timeout: float) -> tuple[str, str]:
    try:
        return proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=5)


async def test_processes_add_and_remove_worktrees_on_one_repository_at_once(
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path / "source")
    root, start = tmp_path / "worktrees", tmp_path / "start"
    children, count = 4, 10
    procs = [_spawn(CHILD, repo, root, f"p{n}", count, start) for n in range(children)]
    try:
        # Every child imported and waits at the start (a fixed half second let a loaded machine's
        # children start one after another, with nothing contended).
        ready = [tmp_path / f"ready-p{n}" for n in range(children)]
        deadline = time.monotonic() + 60
        while not all(r.exists() for r in ready):
            if any(p.poll() is not None for p in procs):
                break  # one failed: its error is reported below
            assert time.monotonic() < deadline, "the children never reached their start"
            time.sleep(0.02)
        start.touch()
        results = [_finish(p, 60) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=5)
    assert [p.returncode for p in procs] == [0] * children, [err for _, err in results]

    kept = {root / f"p{n}-{i}" / "repo" for n in range(children) for i in range(0, count, 2)}
    listed = (await git("worktree", "list", "--porcelain", cwd=repo)).stdout
    registered = {
        Path(line.split(" ", 1)[1]) for line in listed.splitlines() if line.startswith("worktree ")
    }
    assert registered - {repo} == kept
    for dest in kept:  # each one's metadata is whole: git works in it, on its own branch
        head = await git("symbolic-ref", "--short", "HEAD", cwd=dest)
        assert head.stdout == f"codeyard/{dest.parent.name}"
    removed = {root / f"p{n}-{i}" / "repo" for n in range(children) for i in range(1, count, 2)}
    assert not any(d.exists() for d in removed)


async def test_the_lock_keeps_another_process_waiting_until_released(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "source")
    async with repo_lock(repo):
        waiter = _spawn(HOLD, repo)
        try:
            with pytest.raises(subprocess.TimeoutExpired):
                waiter.communicate(timeout=1.5)  # imported and waiting, not through
        except BaseException:
            waiter.kill()
            waiter.wait(timeout=5)
            raise
    out, err = _finish(waiter, 30)
    assert waiter.returncode == 0, err
    assert out.strip() == "got it"
    assert (repo / ".git" / LOCK_NAME).is_file()


async def test_a_held_lock_times_out_with_a_conflict_naming_the_repository(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "source")
    holder = _hold_with_flock(repo / ".git" / LOCK_NAME)
    try:
        # Until flock(1) holds the lock (it creates the file first: the file alone raced the
        # lock under load, and the conflict below then did not come).
        deadline = time.monotonic() + 30
        while not _held(repo / ".git" / LOCK_NAME):
            assert holder.poll() is None, "flock(1) exited"
            assert time.monotonic() < deadline, "flock(1) never took the lock"
            time.sleep(0.01)
        with pytest.raises(RepoLockTimeout, match=str(repo.resolve())):
            async with repo_lock(repo, wait=0.3):
                pass
    finally:
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait(timeout=5)
    async with repo_lock(repo, wait=5):  # the kernel dropped the dead holder's lock
        pass


async def test_the_lock_file_lives_in_the_common_git_directory(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "source")
    linked = tmp_path / "linked"
    await git("worktree", "add", "--quiet", "--detach", str(linked), cwd=repo)
    assert git_common_dir(repo) == repo / ".git"
    assert git_common_dir(linked) == (repo / ".git").resolve()
    bare = tmp_path / "bare.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(repo), str(bare)], check=True)
    assert git_common_dir(bare) == bare
    assert git_common_dir(tmp_path / "nothing") is None
    async with repo_lock(tmp_path / "nothing"):  # no repository: nothing to lock across processes
        pass
