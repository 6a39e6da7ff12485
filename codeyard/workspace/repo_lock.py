"""One repository's worktree metadata, locked across tasks, processes and hosts.

``git worktree add`` names its metadata directory ``.git/worktrees/<basename><N>`` by probing
for a free name, and ``prune`` deletes entries; two processes doing either at once on the same
repository can hand each other a half-written entry (seen as ``fatal: failed to read
.git/worktrees/repo7/commondir`` when three Temporal worker processes prepared runs at once).
An ``asyncio.Lock`` covers one event loop only, so the lock is also an ``flock`` on a file in
the repository's git directory: it covers every process on the host and, through the file
system, hosts sharing the repository. The kernel drops it when its holder dies, so a killed
worker never leaves it behind. Waiting polls a non-blocking ``flock`` so a waiting task stays
cancellable, and is bounded: an agent can read (and so ``flock``) the file from its sandbox, and
must not be able to stall every run of the repository for ever.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import time
import weakref
from collections.abc import AsyncIterator
from pathlib import Path

from codeyard.domain.errors import Conflict

__all__ = ["LOCK_NAME", "RepoLockTimeout", "git_common_dir", "repo_lock"]

log = logging.getLogger(__name__)

LOCK_NAME = "codeyard-worktrees.flock"
#: How long a worktree operation waits for another process's (one add/remove takes well under
#: a second; 300 runs queued on one repository drain in ~15 s on a small machine).
WAIT_SECONDS = 120.0
_POLL_FIRST, _POLL_MAX = 0.002, 0.05

_loop_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)


class RepoLockTimeout(Conflict):
    """Another process held the repository's worktree lock for longer than ``WAIT_SECONDS``."""

    title = "Repository busy"


def git_common_dir(repo: Path) -> Path | None:
    """The directory git keeps shared metadata of ``repo`` in, without running git.

    ``repo/.git`` for an ordinary checkout, the ``commondir`` of a linked worktree, ``repo``
    itself for a bare repository; None when ``repo`` is none of these (gone, or not git).
    """
    dot_git = repo / ".git"
    if dot_git.is_dir():
        return dot_git
    if dot_git.is_file():
        text = dot_git.read_text(encoding="utf-8", errors="replace").strip()
        if not text.startswith("gitdir:"):
            return None
        gitdir = (repo / text.removeprefix("gitdir:").strip()).resolve()
        common = gitdir / "commondir"
        if common.is_file():
            return (gitdir / common.read_text(encoding="utf-8").strip()).resolve()
        return gitdir
    if (repo / "HEAD").is_file() and (repo / "objects").is_dir():
        return repo
    return None


def _open_lock_file(repo: str) -> int | None:
    common = git_common_dir(Path(repo))
    if common is None:
        return None
    try:
        return os.open(common / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:  # read-only storage: only this process's tasks are serialized
        log.warning(
            "cannot open the worktree lock of %s, not locking across processes: %s", repo, exc
        )
        return None


async def _flock(fd: int, repo: str, wait: float) -> None:
    deadline = time.monotonic() + wait
    delay = _POLL_FIRST
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise RepoLockTimeout(
                    f"another process has held the worktree lock of {repo} for {wait:g} s "
                    f"({Path(repo) / '.git' / LOCK_NAME}); retry once it finishes"
                ) from None
            await asyncio.sleep(delay)
            delay = min(delay * 2, _POLL_MAX)


@contextlib.asynccontextmanager
async def repo_lock(repo: Path, wait: float = WAIT_SECONDS) -> AsyncIterator[None]:
    """Hold ``repo``'s worktree lock: this loop's tasks first, then other processes."""
    key = os.path.realpath(repo)
    per_loop = _loop_locks.setdefault(asyncio.get_running_loop(), {})
    async with per_loop.setdefault(key, asyncio.Lock()):
        fd = await asyncio.to_thread(_open_lock_file, key)
        try:
            if fd is not None:
                await _flock(fd, key, wait)
            yield
        finally:
            if fd is not None:
                os.close(fd)  # closing the only descriptor releases the flock
