"""How ``codeyard.workspace.git.git`` starts, stops and sets up its process (``os.posix_spawn``
in a waiter thread): what ``subprocess.Popen`` did for it must still hold, and a call stopped
before a thread was free starts no git at all."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from codeyard.workspace import git as git_module
from codeyard.workspace.git import GitError, GitTimeout, git
from tests.integration.test_workspace import make_repo

pytestmark = pytest.mark.anyio


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


@pytest.fixture
def spawned(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, ...]]:
    """The arguments of each git process ``git`` actually starts."""
    started: list[tuple[str, ...]] = []
    spawn = git_module._spawn

    def recorded(
        args: tuple[str, ...], cwd: Path, env: dict[str, str] | None, lowered: int
    ) -> git_module._Child:
        started.append(args)
        return spawn(args, cwd, env, lowered)

    monkeypatch.setattr(git_module, "_spawn", recorded)
    return started


@pytest.fixture
def busy_pool() -> Iterator[tuple[ThreadPoolExecutor, threading.Event]]:
    """A pool whose only thread is taken until the event is set."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="test-git")
    release = threading.Event()
    pool.submit(release.wait, 30)
    yield pool, release
    release.set()
    pool.shutdown(wait=True)


async def _drained(pool: ThreadPoolExecutor) -> None:
    await asyncio.wrap_future(pool.submit(lambda: None))


async def test_a_call_that_times_out_waiting_for_a_thread_starts_no_git(
    repo: Path,
    spawned: list[tuple[str, ...]],
    busy_pool: tuple[ThreadPoolExecutor, threading.Event],
) -> None:
    pool, release = busy_pool
    asyncio.get_running_loop().call_later(1.0, release.set)  # after the timeout
    with pytest.raises(GitTimeout, match=r"did not finish within 0.2s"):
        await git("rev-parse", "HEAD", cwd=repo, timeout=0.2, waiters=pool)
    await _drained(pool)
    assert spawned == []  # Popen's version started it once a thread was free, then killed it


async def test_a_call_cancelled_waiting_for_a_thread_starts_no_git(
    repo: Path,
    spawned: list[tuple[str, ...]],
    busy_pool: tuple[ThreadPoolExecutor, threading.Event],
) -> None:
    pool, release = busy_pool
    task = asyncio.ensure_future(git("rev-parse", "HEAD", cwd=repo, waiters=pool))
    await asyncio.sleep(0.1)
    asyncio.get_running_loop().call_later(0.5, release.set)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await _drained(pool)
    assert spawned == []


async def test_a_call_that_waited_for_a_thread_runs_once_it_has_one(
    repo: Path,
    spawned: list[tuple[str, ...]],
    busy_pool: tuple[ThreadPoolExecutor, threading.Event],
) -> None:
    pool, release = busy_pool
    asyncio.get_running_loop().call_later(0.2, release.set)
    result = await git("rev-parse", "--is-inside-work-tree", cwd=repo, waiters=pool)
    assert result.stdout == "true"
    assert spawned == [("rev-parse", "--is-inside-work-tree")]


async def test_git_in_a_file_or_relative_directory(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``cwd`` is given to git as ``-C``: a directory that cannot be entered is still a
    ``GitError`` naming it (never git's exit 128 for ``check=False``), and a relative one is
    taken from the server's working directory, as ``chdir`` did."""
    afile = tmp_path / "file"
    afile.write_text("x")
    for cwd in (afile, tmp_path / "missing"):
        with pytest.raises(GitError, match=f"directory {cwd} does not exist") as caught:
            await git("status", cwd=cwd, check=False)
        assert caught.value.returncode is None
        assert caught.value.command == ("status",)
    (repo / "sub").mkdir()
    relative = Path(os.path.relpath(repo / "sub", Path.cwd()))
    shown = await git("rev-parse", "--show-prefix", "--show-toplevel", cwd=relative)
    assert shown.stdout.split("\n") == ["sub/", str(repo)]
    monkeypatch.chdir(repo)
    with pytest.raises(GitError, match=r"`git show no-such-ref` in sub failed \(exit 128\)"):
        await git("show", "no-such-ref", cwd=Path("sub"))


async def test_git_and_its_children_get_default_signals_and_only_the_standard_pipes(
    repo: Path,
) -> None:
    """Python ignores SIGPIPE; ``Popen`` restored it for the child (``restore_signals``), so
    does ``git``: an alias's ``cmd | head`` ends as in a shell. stdin is /dev/null."""
    ignored = await git("-c", "alias.ign=!grep SigIgn /proc/self/status", "ign", cwd=repo)
    mask = int(ignored.stdout.split()[1], 16)
    assert not mask & (1 << (signal.SIGPIPE - 1))
    assert not mask & (1 << (signal.SIGXFSZ - 1))
    stdin = await git("-c", "alias.in=!readlink /proc/self/fd/0", "in", cwd=repo)
    assert stdin.stdout == "/dev/null"


async def test_git_is_looked_up_on_the_childs_path_and_niced(repo: Path, tmp_path: Path) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "git").write_text('#!/bin/sh\nfor last; do :; done\necho "fake git $last"\n')
    (fake / "git").chmod(0o755)
    result = await git("status", cwd=repo, env={"PATH": str(fake)})
    assert result.stdout == "fake git status"
    missing = tmp_path / "nobin"
    missing.mkdir()
    with pytest.raises(GitError, match=r"No such file or directory: 'git'"):
        await git("status", cwd=repo, env={"PATH": str(missing)})

    token = git_module.niceness.set(5)
    try:
        niced = await git("-c", "alias.n=!nice", "n", cwd=repo)
    finally:
        git_module.niceness.reset(token)
    assert int(niced.stdout) == min(19, os.nice(0) + 5)
