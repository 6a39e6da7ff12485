"""Async runner for the git CLI and small read-only queries built on it.

Git is always run as ``git <args>`` by ``os.posix_spawn`` in a waiter thread (never a shell),
with prompts disabled so a missing credential fails instead of hanging a worker, and with the C
locale so error messages are stable enough to show and to match.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import re
import select
import shlex
import shutil
import signal
import stat
from collections.abc import Awaitable
from concurrent.futures import ThreadPoolExecutor
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
_REPO_LOCATING_BYTES = tuple(name.encode() for name in _REPO_LOCATING_VARS)
#: Set back to their default in git (``Popen``'s ``restore_signals``): Python ignores SIGPIPE.
_DEFAULT_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ)
#: ``PATH`` → the git found on it: what ``Popen`` looked up in each child's environment.
_GIT_ON_PATH: dict[bytes, str] = {}
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


def _child_env(env: dict[str, str] | None) -> dict[bytes, bytes]:
    """The inherited environment without ``_REPO_LOCATING_VARS``, plus ``env``, as bytes.

    Copied from ``os.environ``'s own bytes (``_data``, CPython's store behind it: 0.5 µs) rather
    than decoded and encoded again item by item (~30 µs a call, each git process)."""
    inherited = getattr(os.environ, "_data", None)
    if isinstance(inherited, dict):
        merged: dict[bytes, bytes] = inherited.copy()
    else:  # not CPython's os._Environ
        merged = {os.fsencode(k): os.fsencode(v) for k, v in os.environ.items()}
    for name in _REPO_LOCATING_BYTES:
        merged.pop(name, None)
    if env:
        merged.update((os.fsencode(k), os.fsencode(v)) for k, v in env.items())
    merged[b"GIT_TERMINAL_PROMPT"] = b"0"
    merged[b"LC_ALL"] = b"C"
    return merged


def _git_path(env: dict[bytes, bytes]) -> str:
    search = env.get(b"PATH", os.defpath.encode())
    found = _GIT_ON_PATH.get(search)
    if found is None:
        found = shutil.which("git", path=os.fsdecode(search))
        if found is None:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), "git")
        _GIT_ON_PATH[search] = found
    return found


def _kill_group(pid: int) -> None:
    """Kill git and whatever it started (aliases, hooks, ssh): they share its process group."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


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


def _enterable(cwd: Path) -> None:
    """Raise the ``OSError`` a ``chdir(cwd)`` would (``Popen``'s ``cwd``): git is given ``-C``
    instead, whose failure would be git's exit 128, not the ``_NotStarted`` callers see."""
    if not stat.S_ISDIR(os.stat(cwd).st_mode):
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(cwd))
    if not os.access(cwd, os.X_OK):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(cwd))


def _spawn(args: tuple[str, ...], cwd: Path, env: dict[str, str] | None, lowered: int) -> _Child:
    """Start git with ``os.posix_spawn`` (glibc: vfork; the GIL is released while the parent
    waits for the child's exec), in its own session, ``cwd`` given as ``git -C``
    (posix_spawn has no chdir). The waiter thread's CPU per call: 0.18-0.26 ms against
    0.35-0.47 ms with ``subprocess.Popen`` and ``communicate`` (bench/git_call_cost.py, 150 MB
    heap). Four calls at once took longer on the wall clock there, though (1.9-2.5 ms a call
    against 1.2-1.7 ms): glibc's spawns overlap where Popen's did not.

    Not asyncio.create_subprocess_exec: under uvloop (the server's loop) that forks the whole
    server process, 12-20 ms per git process on this project's 2-core machine, and a turn runs
    about ten (bench/overhead.py). Nor on the event loop: under load a spawn there held the
    loop 4-15 ms each (hundreds a second while runs prepare), so :func:`git` starts it in the
    thread that then waits for it. Nor read by the loop (``add_reader`` on the pipes and a
    pidfd): that cost the loop 0.07 ms a call more than it saved the thread.
    """
    _enterable(cwd)
    child_env = _child_env(env)
    prefix = priority.task_prefix(lowered)
    program = prefix[0] if prefix else _git_path(child_env)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    try:
        pid = os.posix_spawn(
            program,
            [*prefix, "git", "-C", str(cwd), *args],
            child_env,
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, out_w, 1),
                (os.POSIX_SPAWN_DUP2, err_w, 2),
            ],
            setsid=True,
            setsigdef=_DEFAULT_SIGNALS,
        )
    except BaseException:
        os.close(out_r)
        os.close(err_r)
        raise
    finally:
        os.close(out_w)
        os.close(err_w)
    priority.lower_group(pid, lowered)  # its session's autogroup: no shell to start
    return _Child(pid, out_r, err_r)


@dataclass(slots=True)
class _Child:
    pid: int
    stdout: int
    stderr: int


class _NotStarted(Exception):
    """git could not be started (its ``OSError`` is the cause)."""


class _Call:
    """One git call between the loop and its waiter thread: the thread publishes the process
    (``pid``) and hands back its outcome; the loop may ``stop`` it at any time (timeout,
    cancellation), before or after it starts. Flags are set before they are read on the
    other side (the GIL orders them), so a stop never misses a process nor kills a reaped one
    except in the instant between git's reaping and ``pid`` being cleared, as before."""

    __slots__ = ("loop", "outcome", "pid", "stopped", "timed_out", "waiter")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.pid: int | None = None
        self.stopped = False
        self.timed_out = False
        self.outcome: tuple[bytes, bytes, int] | BaseException | None = None
        self.waiter: asyncio.Future[None] = loop.create_future()

    def stop(self) -> None:
        """On the loop: start no process, kill the one started (and its group)."""
        self.stopped = True
        if (pid := self.pid) is not None:
            _kill_group(pid)

    def time_out(self) -> None:
        if self.outcome is None:  # not if it finished while the timer was due
            self.timed_out = True
            self.stop()

    def finish(self, outcome: tuple[bytes, bytes, int] | BaseException) -> None:
        """In the waiter thread: hand the outcome to the loop."""
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
            self.loop.call_soon_threadsafe(self._settle, outcome)

    def _settle(self, outcome: tuple[bytes, bytes, int] | BaseException) -> None:
        self.outcome = outcome
        if not self.waiter.done():
            self.waiter.set_result(None)

    async def finished(self) -> None:
        """Wait for the outcome even after a cancellation of the first wait."""
        while self.outcome is None:
            if self.waiter.done():
                self.waiter = self.loop.create_future()
            await self.waiter


def _read_both(child: _Child) -> tuple[bytes, bytes]:
    """Both pipes to their end, whichever git fills first (not one after the other: git would
    block on a full stderr pipe while stdout is read)."""
    chunks: dict[int, list[bytes]] = {child.stdout: [], child.stderr: []}
    poller = select.poll()
    for fd in chunks:
        poller.register(fd, select.POLLIN)
    left = 2
    while left:
        for fd, events in poller.poll():
            if events & select.POLLIN:
                data = os.read(fd, 65536)
                if data:
                    chunks[fd].append(data)
                    continue
            poller.unregister(fd)  # hung up, and nothing (more) to read
            left -= 1
    return b"".join(chunks[child.stdout]), b"".join(chunks[child.stderr])


def _run(
    call: _Call, args: tuple[str, ...], cwd: Path, env: dict[str, str] | None, lowered: int
) -> None:
    """In a waiter thread: start git (unless stopped already), read its pipes to the end, reap
    it, and hand the outcome to ``call``; a start's ``OSError`` comes back as ``_NotStarted``."""
    outcome: tuple[bytes, bytes, int] | BaseException
    try:
        outcome = _start_and_wait(call, args, cwd, env, lowered)
    except BaseException as exc:  # handed to the awaiting coroutine, which raises it
        outcome = exc
    call.finish(outcome)


def _start_and_wait(
    call: _Call, args: tuple[str, ...], cwd: Path, env: dict[str, str] | None, lowered: int
) -> tuple[bytes, bytes, int]:
    if call.stopped:
        return b"", b"", -signal.SIGKILL
    try:
        child = _spawn(args, cwd, env, lowered)
    except OSError as exc:
        raise _NotStarted from exc
    call.pid = child.pid
    try:
        if call.stopped:  # stopped while it started
            _kill_group(child.pid)
        out, err = _read_both(child)
    except BaseException:
        _kill_group(child.pid)  # not waited for below with nobody reading its pipes
        raise
    finally:
        os.close(child.stdout)
        os.close(child.stderr)
        _, status = os.waitpid(child.pid, 0)
        call.pid = None
    return out, err, os.waitstatus_to_exitcode(status)


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
    own). One future, set from the thread, and a plain timer: not ``wrap_future``, ``shield``
    and ``asyncio.timeout``, ~0.04 ms of the loop's CPU a call more (bench/git_call_cost.py).
    """
    loop = asyncio.get_running_loop()
    call = _Call(loop)
    waiters.submit(_run, call, args, cwd, env, niceness.get())
    timer = loop.call_later(timeout, call.time_out)
    try:
        await call.waiter
    except asyncio.CancelledError:
        call.stop()  # leave no process behind; the thread still reads and reaps it
        await call.finished()
        raise
    finally:
        timer.cancel()
    outcome = call.outcome
    if call.timed_out:
        raise GitTimeout(
            f"`{_command_text(args)}` in {cwd} did not finish within {timeout:g}s and was killed",
            command=args,
            returncode=None,
            stderr="",
        )
    if isinstance(outcome, _NotStarted):
        cwd_missing = not await asyncio.to_thread(cwd.is_dir)
        reason = f"directory {cwd} does not exist" if cwd_missing else str(outcome.__cause__)
        raise GitError(
            f"could not run `{_command_text(args)}`: {reason}",
            command=args,
            returncode=None,
            stderr="",
        ) from outcome.__cause__
    if isinstance(outcome, BaseException):
        raise outcome
    assert outcome is not None
    out, err, returncode = outcome
    result = GitResult(
        stdout=out.decode("utf-8", errors="replace").rstrip("\n"),
        stderr=err.decode("utf-8", errors="replace").rstrip("\n"),
        returncode=returncode,
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
