"""Async runner for the git CLI and small read-only queries built on it.

Git is always run as ``git <args>`` through ``asyncio.create_subprocess_exec`` (never a shell),
with prompts disabled so a missing credential fails instead of hanging a worker, and with the C
locale so error messages are stable enough to show and to match.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shlex
import signal
import subprocess
from collections.abc import Awaitable
from concurrent.futures import Future, ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from codeyard.domain.errors import CodeyardError
from codeyard.sandbox import priority
from codeyard.workspace import head_files

__all__ = [
    "GitError",
    "GitResult",
    "GitTimeout",
    "both",
    "clone",
    "current_branch",
    "default_branch",
    "git",
    "is_work_tree",
    "niceness",
    "resolve_commit",
    "toplevel",
    "work_tree_commit",
    "work_tree_top",
]

# Inherited variables that would point git at another repository than ``cwd`` (they are set,
# for example, when Codeyard's tests run inside a git hook). Callers may still pass them in ``env``.
_REPO_LOCATING_VARS = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_COMMON_DIR",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_NAMESPACE",
    "GIT_PREFIX",
)
_MAX_STDERR_IN_DETAIL = 2000
#: What ``rev-parse`` says (exit 128) about a ref it cannot evaluate, as opposed to a broken
#: repository.
_REF_ERROR = re.compile(
    r"no upstream|no such branch|log for .* only|only has \d+ entries|ambiguous argument|"
    r"needed a single revision|bad revision|invalid|not a valid|unknown|no push|"
    r"does not have any commits|Log for|only goes back|cannot|is not a branch",
    re.IGNORECASE,
)
#: Threads that wait for git processes: not the default executor, which slow network
#: operations (clone, push) would otherwise fill for everything else.
_WAITERS = ThreadPoolExecutor(max_workers=32, thread_name_prefix="codeyard-git")
#: What the git processes started in this task are niced by (``codeyard.sandbox.priority``):
#: a run's preparation sets it, so its git work yields the CPU to the server's event loop.
niceness: ContextVar[int] = ContextVar("codeyard_git_niceness", default=0)
A = TypeVar("A")
B = TypeVar("B")


@dataclass(frozen=True, slots=True)
class GitResult:
    """Output of one git command, decoded as UTF-8, without the trailing newline."""

    stdout: str
    stderr: str
    returncode: int


class GitError(CodeyardError):
    """A git command failed; ``detail`` names the command and quotes git's stderr."""

    title = "Git command failed"

    def __init__(
        self, detail: str, *, command: tuple[str, ...], returncode: int | None, stderr: str
    ) -> None:
        super().__init__(detail)
        self.command = command
        self.returncode = returncode
        self.stderr = stderr


class GitTimeout(GitError):
    """A git command ran longer than its timeout and was killed."""

    title = "Git command timed out"


def _command_text(args: tuple[str, ...]) -> str:
    return shlex.join(("git", *args))


def _child_env(env: dict[str, str] | None) -> dict[str, str]:
    merged = {k: v for k, v in os.environ.items() if k not in _REPO_LOCATING_VARS}
    if env:
        merged.update(env)
    merged["GIT_TERMINAL_PROMPT"] = "0"
    merged["LC_ALL"] = "C"
    return merged


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Kill git and whatever it started (aliases, hooks, ssh): they share its process group."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def _failure(args: tuple[str, ...], cwd: Path, result: GitResult) -> GitError:
    stderr = result.stderr.strip()
    if len(stderr) > _MAX_STDERR_IN_DETAIL:
        stderr = stderr[:_MAX_STDERR_IN_DETAIL] + "…"
    return GitError(
        f"`{_command_text(args)}` in {cwd} failed (exit {result.returncode}): "
        f"{stderr or 'no error output'}",
        command=args,
        returncode=result.returncode,
        stderr=result.stderr,
    )


def _spawn(
    args: tuple[str, ...], cwd: Path, env: dict[str, str] | None, lowered: int
) -> subprocess.Popen[bytes]:
    """Start git with ``subprocess.Popen`` (vfork, ~1.5 ms idle).

    Not asyncio.create_subprocess_exec: under uvloop (the server's loop) that forks the whole
    server process, 12-20 ms per git process on this project's 2-core machine, and a turn runs
    about ten (bench/overhead.py). Nor on the event loop: under load a spawn there held the
    loop 4-15 ms each (hundreds a second while runs prepare), so :func:`git` starts it in the
    thread that then waits for it.
    """
    proc = subprocess.Popen(
        [*priority.task_prefix(lowered), "git", *args],
        cwd=cwd,
        env=_child_env(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    priority.lower_group(proc.pid, lowered)  # its session's autogroup: no shell to start
    return proc


class _NotStarted(Exception):
    """git could not be started (its ``OSError`` is the cause)."""


def _run(
    args: tuple[str, ...],
    cwd: Path,
    env: dict[str, str] | None,
    lowered: int,
    started: Future[subprocess.Popen[bytes]],
) -> tuple[bytes, bytes, int]:
    """In a waiter thread: start git, tell ``started``, read its pipes to the end, reap it."""
    try:
        proc = _spawn(args, cwd, env, lowered)
    except OSError as exc:
        started.set_exception(exc)
        raise _NotStarted from exc
    started.set_result(proc)
    out, err = proc.communicate()
    return out, err, proc.returncode


async def git(
    *args: str,
    cwd: Path,
    env: dict[str, str] | None = None,
    timeout: float = 120,
    check: bool = True,
    waiters: ThreadPoolExecutor = _WAITERS,
) -> GitResult:
    """Run ``git *args`` in ``cwd``; ``env`` adds to (and overrides) the inherited environment.

    Raises ``GitError`` when git exits non-zero and ``check`` is true, when it cannot be started,
    and ``GitTimeout`` (after killing its process group) when it outlives ``timeout`` seconds.
    ``waiters`` is the thread pool that starts and waits for the process (clones have their
    own).
    """
    started: Future[subprocess.Popen[bytes]] = Future()
    # Shielded: the thread always reads the pipes to the end and reaps the process.
    done = asyncio.wrap_future(waiters.submit(_run, args, cwd, env, niceness.get(), started))
    try:
        async with asyncio.timeout(timeout):
            out, err, returncode = await asyncio.shield(done)
    except _NotStarted as exc:
        cwd_missing = not await asyncio.to_thread(cwd.is_dir)
        reason = f"directory {cwd} does not exist" if cwd_missing else str(exc.__cause__)
        raise GitError(
            f"could not run `{_command_text(args)}`: {reason}",
            command=args,
            returncode=None,
            stderr="",
        ) from exc.__cause__
    except TimeoutError:
        raise GitTimeout(
            f"`{_command_text(args)}` in {cwd} did not finish within {timeout:g}s and was killed",
            command=args,
            returncode=None,
            stderr="",
        ) from None
    finally:
        if not done.done():  # timed out or cancelled: leave no process behind
            with contextlib.suppress(OSError):
                _kill_group(await asyncio.shield(asyncio.wrap_future(started)))
            with contextlib.suppress(_NotStarted):
                await asyncio.shield(done)

    result = GitResult(
        stdout=out.decode("utf-8", errors="replace").rstrip("\n"),
        stderr=err.decode("utf-8", errors="replace").rstrip("\n"),
        returncode=returncode,  # communicate() waited for the exit
    )
    if check and result.returncode != 0:
        raise _failure(args, cwd, result)
    return result


async def both(first: Awaitable[A], second: Awaitable[B]) -> tuple[A, B]:
    """Await two independent git jobs concurrently (each git process costs ~15 ms of waiting).

    Both always run to the end, so no git process is left behind; then the first one's error,
    if any, is raised, else the second one's: the error a sequential caller would have seen.
    """
    a, b = await asyncio.gather(first, second, return_exceptions=True)
    if isinstance(a, BaseException):
        raise a
    if isinstance(b, BaseException):
        raise b
    return a, b


async def is_work_tree(path: Path) -> bool:
    """True if ``path`` is inside a git working tree; False for missing dirs, non-repos, bare."""
    if not await asyncio.to_thread(path.is_dir):
        return False
    result = await git("rev-parse", "--is-inside-work-tree", cwd=path, check=False)
    return result.returncode == 0 and result.stdout == "true"


async def work_tree_top(path: Path) -> Path | None:
    """``toplevel(path)`` where ``is_work_tree(path)``, else None: one git process, not two."""
    if not await asyncio.to_thread(path.is_dir):
        return None
    args = ("rev-parse", "--is-inside-work-tree", "--show-toplevel")
    result = await git(*args, cwd=path, check=False)
    inside, _, top = result.stdout.partition("\n")
    # Outside a work tree (a bare repository, inside .git) git says "false" and fails.
    if result.returncode != 0 or inside != "true" or not top:
        return None
    return Path(top)


async def toplevel(path: Path) -> Path:
    """The root of the working tree that contains ``path``."""
    result = await git("rev-parse", "--show-toplevel", cwd=path)
    return Path(result.stdout)


def _usable_ref(ref: str) -> bool:
    return (
        bool(ref) and not ref.startswith("-") and not any(ord(c) < 32 or c == "\x7f" for c in ref)
    )


async def work_tree_commit(path: Path, ref: str) -> tuple[Path, str] | None:
    """``work_tree_top(path)`` and the commit ``ref`` names there, in one git process (a new
    run's repository and base: two processes in ``POST /api/runs`` before). None when either
    is missing: the caller then asks :func:`work_tree_top` and :func:`resolve_commit` one by
    one, which say which (and refuse the same refs). ``HEAD`` at the top of a work tree found
    before is read from the repository's files, without a process (``head_files``)."""
    if ref == "HEAD" and (known := head_files.head_commit(path)) is not None:
        return known  # a work tree git found before: HEAD read from its files, no process
    if not _usable_ref(ref) or not await asyncio.to_thread(path.is_dir):
        return None
    args = ("rev-parse", "--is-inside-work-tree", "--show-toplevel", "--verify", "--quiet")
    result = await git(*args, f"{ref}^{{commit}}", cwd=path, check=False)
    lines = result.stdout.split("\n")
    if result.returncode != 0 or len(lines) != 3 or lines[0] != "true" or not lines[1]:
        return None
    head_files.remember(path, Path(lines[1]))
    return Path(lines[1]), lines[2]


async def resolve_commit(repo: Path, ref: str) -> str | None:
    """The full commit id ``ref`` names in ``repo``, or None if it names no commit.

    A ref starting with ``-`` is refused (None) so that user input can never become an option,
    and so is one with control characters (a NUL cannot even be passed to a process). A ref
    git cannot evaluate (``main@{upstream}`` without an upstream, a bad reflog date) names no
    commit either: malformed client input is a 400 for the caller, never a 500.
    """
    if not _usable_ref(ref):
        return None
    args = ("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    result = await git(*args, cwd=repo, check=False)
    if result.returncode == 0:
        return result.stdout
    if result.returncode == 1:  # --quiet: unknown ref, exit 1 without a message
        return None
    if result.returncode == 128 and _REF_ERROR.search(result.stderr):
        return None
    raise _failure(args, repo, result)  # not a repository, corrupt objects: a real failure


async def current_branch(repo: Path) -> str | None:
    """The branch checked out in ``repo`` (short name), or None when HEAD is detached."""
    args = ("symbolic-ref", "--quiet", "--short", "HEAD")
    result = await git(*args, cwd=repo, check=False)
    if result.returncode == 0:
        return result.stdout
    if result.returncode == 1:  # detached HEAD
        return None
    raise _failure(args, repo, result)


async def default_branch(repo: Path) -> str:
    """The branch of the repository's main checkout (even when ``repo`` is a linked worktree).

    Falls back to ``main`` when that checkout's HEAD is detached.
    """
    common = await git("rev-parse", "--git-common-dir", cwd=repo)  # relative to cwd, or absolute
    result = await git(
        f"--git-dir={common.stdout}",
        "symbolic-ref",
        "--quiet",
        "--short",
        "HEAD",
        cwd=repo,
        check=False,
    )
    return result.stdout if result.returncode == 0 and result.stdout else "main"


#: Clones wait on their own threads, at most this many at once: slow or hanging remotes can
#: never take the threads (or the turn) of worktree, diff and landing git work.
MAX_CLONES = 8
_CLONE_WAITERS = ThreadPoolExecutor(max_workers=MAX_CLONES, thread_name_prefix="codeyard-clone")
_CLONE_SLOTS: dict[int, asyncio.Semaphore] = {}
#: Transports a clone may use even through redirects or submodule-like indirections.
_CLONE_PROTOCOLS = (
    "protocol.allow=never",
    "protocol.https.allow=always",
    "protocol.http.allow=always",
    "protocol.ssh.allow=always",
    "protocol.git.allow=always",
)


def _clone_slots() -> asyncio.Semaphore:
    loop_id = id(asyncio.get_running_loop())
    slots = _CLONE_SLOTS.get(loop_id)
    if slots is None:
        _CLONE_SLOTS.clear()  # one loop at a time (tests start a new one per test)
        slots = _CLONE_SLOTS[loop_id] = asyncio.Semaphore(MAX_CLONES)
    return slots


async def clone(url: str, dest: Path, *, timeout: float = 60, origin: str | None = None) -> None:
    """Clone the network URL ``url`` into the new directory ``dest`` within ``timeout`` seconds
    (waiting for a clone slot included).

    Only network transports are allowed (``-c protocol.*``; callers validate with
    ``workspace.clone_urls``). ``origin``: the URL the clone keeps as its remote (the URL
    without credentials), so no password stays in ``.git/config``.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    protocols = [arg for p in _CLONE_PROTOCOLS for arg in ("-c", p)]
    args = (*protocols, "clone", "--quiet", "--no-recurse-submodules", "--", url, str(dest))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    slots = _clone_slots()
    try:
        async with asyncio.timeout(timeout):
            await slots.acquire()
    except TimeoutError:
        raise GitTimeout(
            f"no clone could start within {timeout:g}s: {MAX_CLONES} clones are running",
            command=args,
            returncode=None,
            stderr="",
        ) from None
    try:
        left = max(0.1, deadline - loop.time())
        await git(*args, cwd=dest.parent, timeout=left, waiters=_CLONE_WAITERS)
    finally:
        slots.release()
    if origin is not None and origin != url:
        await git("remote", "set-url", "origin", origin, cwd=dest)
