"""The steps preparing and removing a run's worktrees both take, kept in one place.

A failed prepare takes down what it made the way a removal does (the cleanup script first,
then the worktree, then the run's and the project's directories once empty), and both report
a repository's scripts on the run as a ``tool.call`` and its ``tool.result``. So the reporter,
the script environment, the cleanup, the removal of one worktree and the retry while another
git holds a lock file live here, below ``prepare`` and ``removal``, rather than one of them
importing the other's private helpers.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from codeyard.domain.errors import NotFound
from codeyard.domain.events import ErrorEvent, NewEvent, ToolCall
from codeyard.domain.ids import new_id
from codeyard.sandbox import Sandbox, SandboxUnavailable
from codeyard.store.writer import Writer
from codeyard.workspace.git import GitError
from codeyard.workspace.repo_lock import repo_lock
from codeyard.workspace.repo_setup import ScriptResult, run_script
from codeyard.workspace.worktrees import remove_worktree

__all__ = [
    "DEFAULT_SCRIPT_TIMEOUT",
    "REASON_TAIL",
    "Reporter",
    "remove_empty_parents",
    "remove_one_worktree",
    "retrying",
    "run_cleanup",
    "script_env",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_SCRIPT_TIMEOUT = 600.0
#: How much of a script's output goes into a run's ``status_reason`` or an ``error`` event.
REASON_TAIL = 1500
_LOCK_RETRIES = 5
_LOCK_BACKOFF = 0.1
_LOCK_FILE = re.compile(r"Unable to create '[^']*\.lock'|index\.lock|\.lock': File exists")


async def retrying(op: Callable[[], Awaitable[T]]) -> T:
    """Run a git operation again, with a short backoff, while another git holds a lock file."""
    for attempt in range(_LOCK_RETRIES):
        try:
            return await op()
        except GitError as exc:
            if attempt == _LOCK_RETRIES - 1 or not _LOCK_FILE.search(exc.stderr or exc.detail):
                raise
            log.info("git lock busy, retrying (%d): %s", attempt + 1, exc.detail)
            await asyncio.sleep(_LOCK_BACKOFF * 2**attempt)
    raise AssertionError("unreachable")


class Reporter:
    """Appends a run's events; quiet without a writer, or once the run has been deleted."""

    def __init__(self, writer: Writer | None, run_id: str, sandbox: Sandbox | None) -> None:
        self._writer = writer
        self.writer = writer
        self._run_id = run_id
        #: Where the repository's scripts run (on, and hiding nothing more, when not given).
        self._sandbox = sandbox or Sandbox()

    async def emit(self, *events: NewEvent) -> None:
        if self._writer is None:
            return
        try:
            await self._writer.append(self._run_id, list(events))
        except NotFound:
            log.debug("run %s is gone; not recording %d events", self._run_id, len(events))

    async def script(
        self, tool: str, label: str, command: str, cwd: Path, env: dict[str, str], timeout: float
    ) -> ScriptResult:
        """Run a repository script, reported as a ``tool.call`` and its ``tool.result``."""
        call_id = new_id("call")
        title = f"{label}: {command}"
        call = ToolCall(
            call_id=call_id, tool=tool, kind="bash", title=title, input={"command": command}
        )
        await self.emit(call)
        result = await run_script(command, cwd, env, timeout, self._sandbox)
        await self.emit(result.as_event(call_id))
        return result


def script_env(run: dict[str, Any], repo: dict[str, Any], dest: Path) -> dict[str, str]:
    """Where the script runs (over the sandbox's allowlisted environment, never the server's:
    ``codeyard.sandbox.contain``)."""
    env: dict[str, str] = {}
    env["CODEYARD_RUN_ID"] = run["id"]
    env["CODEYARD_WORKTREE"] = str(dest)
    env["CODEYARD_REPO_PATH"] = str(repo["path"])
    if run.get("branch"):
        env["CODEYARD_BRANCH"] = run["branch"]
    return env


async def run_cleanup(
    report: Reporter, run: dict[str, Any], repo: dict[str, Any], dest: Path, timeout: float
) -> None:
    """Run the cleanup script; a failure is reported (``error`` event) and otherwise ignored."""
    script = repo["cleanup_script"]
    try:
        env = script_env(run, repo, dest)
        result = await report.script("cleanup_script", "cleanup", script, dest, env, timeout)
    except (OSError, SandboxUnavailable) as exc:
        log.warning("cleanup script in %s could not start: %s", dest, exc)
        await report.emit(ErrorEvent(message="Cleanup script could not start.", detail=str(exc)))
        return
    if not result.ok:
        what = "timed out" if result.timed_out else f"failed (exit {result.exit_code})"
        log.warning("cleanup script in %s %s", dest, what)
        detail = result.output[-REASON_TAIL:]
        await report.emit(ErrorEvent(message=f"Cleanup script {what}.", detail=detail))


async def remove_one_worktree(
    repo: Path, dest: Path, branch: str | None, delete_branch: bool
) -> None:
    """Remove one worktree (and its branch when ``delete_branch``), under the repository's lock."""
    async with repo_lock(repo):
        await retrying(lambda: remove_worktree(repo, dest, branch, delete_branch=delete_branch))


def remove_empty_parents(path: Path, levels: int) -> None:
    """Drop the run's and the project's directories once nothing is left in them."""
    for parent in list(path.parents)[:levels]:
        try:
            parent.rmdir()
        except OSError:
            return
