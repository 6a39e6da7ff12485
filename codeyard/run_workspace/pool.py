"""A ready worktree per repository, taken by the next new run that starts from its commit.

A new run's agent is spawned once its worktrees exist (the sandbox mounts each worktree's own
git directory, whose name git picks as it adds it), and ``git worktree add`` with the branch
check before it was ~20 ms of the ~55 ms Codeyard spent before that spawn (bench/overhead.py).
So once a run's preparation has made (or taken) a repository's worktree, another is made for
the next run, off the hot path: ``git worktree add --detach`` at the run's base commit, in this
process's directory in the pool (``worktree-pool/<owner>/`` beside the worktree root, in the
data directory, which the sandbox hides from every run). The next new run of that
repository from the same commit takes it (:meth:`WorktreePool.claim`): the directory is renamed
to the run's path, the registration's ``gitdir`` file is rewritten to point there (what ``git
worktree move`` does; the files and the index stay as they are, so the checkout stays clean),
and the run's branch is created and checked out at that commit (``git switch -c``: one git
process that changes no file; ``git checkout -b`` did the same but first compared every tracked
file with the index and wrote the index again, work that grows with the checkout). The
repository's ``post-checkout`` hook, if it has one, runs then, at the run's path, with the
arguments ``worktree add`` gives it (a null previous commit): the entry was made with hooks
off, so a hook that installs or links files never sees the pool's path.
The rest of the preparation (the intent recorded first, copied files, the setup script) is the
same either way; a run from another commit, or one that finds the pool empty, adds its
worktree as before.

A pooled worktree belongs to no run: no run row names it and the API never shows it (``git
worktree list`` in the repository does, detached, under the pool directory). There is one per
repository, from the latest base a run asked for; it is removed after ``IDLE_SECONDS`` unused,
when its repository is removed from its project or the project is deleted, by ``codeyard gc``
and when the executor stops. A process that dies leaves its directory behind: each pool holds
an ``flock`` on ``<owner>.lock`` for its life, and the next executor start (or gc) removes the
directories of owners that no longer hold theirs.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import itertools
import logging
import os
import secrets
import shutil
import weakref
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codeyard.domain.errors import Conflict
from codeyard.run_workspace.admission import PREPARATIONS
from codeyard.workspace.git import GitError, git, niceness
from codeyard.workspace.repo_lock import repo_lock
from codeyard.workspace.worktrees import remove_worktree

__all__ = ["IDLE_SECONDS", "POOL_DIR", "WorktreePool", "collect_all", "forget_repository"]

log = logging.getLogger(__name__)

#: The pools' directory, beside the worktree root (the same file system: a claim renames).
POOL_DIR = "worktree-pool"
#: The hook ``git worktree add`` runs, and what it gives as the previous commit.
HOOK = "hooks/post-checkout"
NULL_COMMIT = "0" * 40
#: An entry nobody took for this long is removed (it holds a checkout's disk space).
IDLE_SECONDS = 3600.0
#: A fill waits this long after the run that asked for it, whose agent is starting meanwhile,
#: and then until no run prepares or waits to (``preparation_concurrency`` bounds those).
FILL_DELAY = 0.5

_LIVE: weakref.WeakSet[WorktreePool] = weakref.WeakSet()


@dataclass(slots=True)
class _Entry:
    repo: Path
    base: str
    path: Path
    #: The repository's ``post-checkout`` hook as git resolves it (``core.hooksPath`` too);
    #: run at the claim when it exists.
    hook: Path | None = None
    #: Removes the entry once it has been idle too long (cancelled when it is taken).
    expiry: asyncio.Task[None] | None = None


def _key(repo: Path) -> str:
    return os.path.realpath(repo)


class WorktreePool:
    """This process's ready worktrees under ``worktree_root`` (see the module docstring)."""

    def __init__(self, worktree_root: Path, *, idle_seconds: float = IDLE_SECONDS) -> None:
        self.root = worktree_root.with_name(POOL_DIR)
        self.idle_seconds = idle_seconds
        self.fill_delay = FILL_DELAY
        self._owner = f"{os.getpid()}-{secrets.token_hex(4)}"
        self._dir = self.root / self._owner
        self._lock_fd: int | None = None
        #: Taking this process's lock file, at the first fill (none before: no files).
        self._owning = asyncio.Lock()
        self._open = False
        self._entries: dict[str, _Entry] = {}
        self._filling: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._numbers = itertools.count(1)

    @property
    def started(self) -> bool:
        return self._open

    def ready(self) -> dict[str, str]:
        """``{repository: base commit}`` of the entries ready to be taken."""
        return {key: entry.base for key, entry in self._entries.items()}

    async def filled(self) -> None:
        """Until the fills asked for so far have ended (made their entry, or given up)."""
        while self._filling:
            await asyncio.gather(*self._filling.values(), return_exceptions=True)

    async def start(self) -> None:
        """Take work from now on; what dead processes left is removed in the background."""
        self._open = True
        _LIVE.add(self)
        self._spawn(self.sweep())

    def _own(self) -> int:
        """This pool's lock file, held for the process's life (made locked under another
        name, so a sweep never finds it free)."""
        self.root.mkdir(parents=True, exist_ok=True)
        making = self.root / f"{self._owner}.making"
        fd = os.open(making, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.rename(making, self.root / f"{self._owner}.lock")
        return fd

    async def close(self) -> None:
        """Stop filling and remove every entry (the executor is stopping)."""
        self._open = False
        _LIVE.discard(self)
        # Fills and expiries stop; removals (and a sweep) already begun finish, not half-done.
        for task in [*self._filling.values(), *(e.expiry for e in self._entries.values())]:
            if task is not None:
                task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.clear()
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            await asyncio.to_thread(self._disown, fd)

    def _disown(self, fd: int) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)
        with contextlib.suppress(OSError):
            (self.root / f"{self._owner}.lock").unlink()
        os.close(fd)
        with contextlib.suppress(OSError):  # the last pool of the data directory
            self.root.rmdir()

    async def clear(self) -> None:
        """Remove every ready entry now."""
        entries, self._entries = list(self._entries.values()), {}
        for entry in entries:
            await self._remove(entry)

    async def forget(self, repo: Path) -> None:
        """Remove ``repo``'s entry (the repository left its project), and any fill of it."""
        key = _key(repo)
        filling = self._filling.pop(key, None)
        if filling is not None:
            filling.cancel()
            await asyncio.gather(filling, return_exceptions=True)
        entry = self._entries.pop(key, None)
        if entry is not None:
            await self._remove(entry)

    async def claim(self, repo: Path, base: str, dest: Path, branch: str) -> bool:
        """Make ``dest`` a worktree of ``repo`` on the new ``branch`` at ``base`` from the
        pool's entry; False (nothing done) when there is none ready for that commit.

        The caller holds ``repo``'s worktree lock. Raises ``Conflict`` when ``dest`` exists
        (the entry stays) and ``GitError`` when git refuses the branch (it exists): then the
        entry is gone and ``dest`` is removed again, as ``create_worktree`` leaves it."""
        if branch.startswith("-"):
            raise ValueError(f"{branch!r} is not a usable branch name")
        key = _key(repo)
        entry = self._entries.get(key)
        if entry is None or entry.base != base:
            return False
        del self._entries[key]  # before any await: no other run can take it
        if entry.expiry is not None:
            entry.expiry.cancel()
        try:
            # One trip to a thread: the move, and whether the hook is there to be run.
            moved, hooked = await asyncio.to_thread(_move, entry.path, dest, entry.hook)
        except Conflict:
            self._keep(key, entry)
            raise
        except _HalfMoved as exc:  # renamed, not re-registered: taken down, added again
            log.warning("could not take the pooled worktree %s: %s", entry.path, exc)
            self._spawn(asyncio.to_thread(_drop_dir, entry.path))
            with contextlib.suppress(GitError, OSError):
                await asyncio.shield(remove_worktree(repo, dest, None))
            return False
        except OSError as exc:
            log.warning("could not take the pooled worktree %s: %s", entry.path, exc)
            if exc.errno == errno.EXDEV:  # the worktrees are on another file system: no pool
                self._open = False
            moved = False
        if not moved:
            self._spawn(self._remove(entry))
            return False
        # The entry's emptied numbered directory goes after the run's start: removing a
        # directory waits for the file system's journal (~4 ms under other I/O, the longest
        # step of the move), and nothing on the run's path needs it gone.
        self._spawn(asyncio.to_thread(_drop_dir, entry.path))
        # On the run's start path and light (no file is written): at the server's priority,
        # not niced like preparation's git (a ``nice`` less to start, and not starved by load).
        full = niceness.set(0)
        try:
            # ``switch -c``, not ``checkout -b``: at the same commit it leaves the index and the
            # files alone; ``checkout -b`` stats every tracked file and rewrites the index
            # (git's CPU at the claim, 1,000 files: 9.0 -> 2.5 ms; 20 files: 3.5 -> 2.8 ms).
            await git("-c", "core.hooksPath=/dev/null", "switch", "-q", "-c", branch, cwd=dest)
            if hooked:
                # As ``worktree add`` runs it: in the new worktree, from no commit to ``base``.
                await git("hook", "run", "post-checkout", "--", NULL_COMMIT, base, "1", cwd=dest)
        except BaseException:
            with contextlib.suppress(GitError, OSError):
                await asyncio.shield(remove_worktree(repo, dest, None))
            raise
        finally:
            niceness.reset(full)
        return True

    def want(self, repo: Path, base: str, name: str) -> None:
        """Have an entry of ``repo`` at ``base`` ready for the next run (made in the
        background, after :attr:`fill_delay`); ``name``: its directory's, the repository's."""
        if not self.started:
            return
        key = _key(repo)
        ready = self._entries.get(key)
        if key in self._filling or (ready is not None and ready.base == base):
            return
        task = self._spawn(self._fill(key, repo, base, name))
        self._filling[key] = task

        def done(finished: asyncio.Task[None]) -> None:
            if self._filling.get(key) is finished:
                del self._filling[key]

        task.add_done_callback(done)

    async def _fill(self, key: str, repo: Path, base: str, name: str) -> None:
        await asyncio.sleep(self.fill_delay)
        for _ in itertools.count():  # runs' preparations go first: polled, they are rare
            if not (PREPARATIONS.active or PREPARATIONS.waiting):
                break
            await asyncio.sleep(max(self.fill_delay, 0.05))
        async with self._owning:
            if self._lock_fd is None:
                self._lock_fd = await asyncio.to_thread(self._own)
        path = self._dir / str(next(self._numbers)) / name
        added = False
        try:
            async with repo_lock(repo):
                await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
                added = True  # from here on a failure may leave a registration behind
                # Hooks off: the repository's post-checkout runs at the claim, at the run's path.
                await git(
                    "-c",
                    "core.hooksPath=/dev/null",
                    "worktree",
                    "add",
                    "--quiet",
                    "--detach",
                    "--",
                    str(path),
                    base,
                    cwd=repo,
                )
            found = await git("rev-parse", "--path-format=absolute", "--git-path", HOOK, cwd=path)
        except (GitError, OSError, Conflict) as exc:
            log.info("no pooled worktree for %s: %s", repo, exc)
            await self._remove(_Entry(repo, base, path), registered=added)
            return
        except asyncio.CancelledError:
            await asyncio.shield(self._remove(_Entry(repo, base, path), registered=added))
            raise
        old = self._entries.pop(key, None)
        if old is not None:  # an older base's: the runs start from the new one now
            self._spawn(self._remove(old))
        entry = _Entry(repo, base, path, hook=Path(found.stdout))
        self._keep(key, entry)

    def _keep(self, key: str, entry: _Entry) -> None:
        self._entries[key] = entry
        entry.expiry = self._spawn(self._expire(key, entry))

    async def _expire(self, key: str, entry: _Entry) -> None:
        await asyncio.sleep(self.idle_seconds)
        if self._entries.get(key) is entry:
            del self._entries[key]
            await self._remove(entry)

    async def _remove(self, entry: _Entry, *, registered: bool = True) -> None:
        """Take an entry down (its registration too); never fails, logs why it could not."""
        if entry.expiry is not None and entry.expiry is not asyncio.current_task():
            entry.expiry.cancel()
        try:
            if registered and await asyncio.to_thread(entry.repo.is_dir):
                async with repo_lock(entry.repo):
                    await remove_worktree(entry.repo, entry.path, None)
            else:
                await asyncio.to_thread(shutil.rmtree, entry.path, True)
            await asyncio.to_thread(_drop_dir, entry.path)
        except (GitError, OSError, ValueError, Conflict) as exc:
            log.warning("could not remove the pooled worktree %s: %s", entry.path, exc)

    async def sweep(self) -> int:
        """Remove the directories of pools whose process is gone; how many worktrees."""
        removed = 0
        for owner, fd in await asyncio.to_thread(_dead_owners, self.root, self._owner):
            try:
                for path, repo in await asyncio.to_thread(_worktrees_of, owner):
                    # A repository that is gone: only the files (nothing to unregister).
                    entry = _Entry(repo or path, "", path)
                    await self._remove(entry, registered=repo is not None)
                    removed += 1
                await asyncio.to_thread(shutil.rmtree, owner, True)
                with contextlib.suppress(OSError):
                    owner.with_suffix(".lock").unlink()
            finally:
                os.close(fd)
        return removed

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        return task


def _admin_dir(worktree: Path) -> Path | None:
    """The registration directory named by a linked worktree's ``.git`` file (absolute only)."""
    try:
        text = (worktree / ".git").read_text(encoding="utf-8").strip()
    except OSError:
        return None
    path = Path(text.removeprefix("gitdir:").strip())
    return path if text.startswith("gitdir:") and path.is_absolute() else None


class _HalfMoved(Exception):
    """The worktree was renamed but its registration could not be pointed at it."""


def _move(src: Path, dest: Path, hook: Path | None) -> tuple[bool, bool]:
    """Rename the worktree ``src`` to ``dest`` and point its registration there; False when
    it is not the worktree it should be (the caller falls back to adding one). Then whether
    ``hook`` (the repository's ``post-checkout``) is there to run, looked up now: it may have
    been added since the entry was made. ``src``'s emptied parent is left to the caller."""
    if dest.exists() or dest.is_symlink():
        raise Conflict(f"the worktree directory {dest} already exists; remove it or pick another")
    admin = _admin_dir(src)
    if admin is None:
        return False, False
    gitdir = admin / "gitdir"
    if Path(gitdir.read_text(encoding="utf-8").strip()) != Path(os.path.realpath(src)) / ".git":
        return False, False
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.rename(src, dest)
    try:
        temporary = admin / "gitdir.codeyard"
        temporary.write_text(f"{Path(os.path.realpath(dest)) / '.git'}\n", encoding="utf-8")
        os.replace(temporary, gitdir)
    except OSError as exc:
        raise _HalfMoved(str(exc)) from exc
    return True, hook is not None and os.access(hook, os.X_OK)


def _drop_dir(path: Path) -> None:
    """The entry's numbered directory, once empty."""
    with contextlib.suppress(OSError):
        path.parent.rmdir()


def _dead_owners(root: Path, mine: str) -> list[tuple[Path, int]]:
    """Other owners' directories whose lock nobody holds, each with that lock now held."""
    found: list[tuple[Path, int]] = []
    if not root.is_dir():
        return found
    names = {p.stem for p in root.glob("*.lock")} - {mine}
    for name in sorted(names):
        try:
            fd = os.open(root / f"{name}.lock", os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:  # swept meanwhile by another process
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # its process lives
            os.close(fd)
            continue
        found.append((root / name, fd))
    return found


def _worktrees_of(owner: Path) -> list[tuple[Path, Path | None]]:
    """A dead pool's worktrees, each with its repository (None when that is gone)."""
    out: list[tuple[Path, Path | None]] = []
    for path in owner.glob("*/*") if owner.is_dir() else ():
        admin = _admin_dir(path)
        repo: Path | None = None
        if admin is not None and admin.parent.name == "worktrees":
            common = admin.parent.parent
            repo = common.parent if common.name == ".git" else common
        out.append((path, repo))
    return out


async def forget_repository(repo: Path) -> None:
    """Every pool of this process drops ``repo``'s entry (removed from its project)."""
    for pool in list(_LIVE):
        await pool.forget(repo)


async def collect_all() -> int:
    """``codeyard gc``: every pool of this process is emptied, and what dead processes left
    is removed; returns how many of those were removed."""
    removed = 0
    for pool in list(_LIVE):
        await pool.clear()
        removed += await pool.sweep()
    return removed
