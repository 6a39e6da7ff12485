"""Preparing a run's workspace: made before its first turn (taken down by ``removal``).

Preparing makes one worktree per repository on the run's branch (or takes the repository's
ready one from the executor's pool, ``run_workspace.pool``), copies the repository's
``copy_files`` in from its main checkout and runs its ``setup_script``; it is all or nothing
(a failure takes down what it made with the steps a removal takes, ``run_workspace.steps``).
Git worktree operations on one repository are serialized, across processes too (``git worktree
add`` and ``prune`` race on the repository's metadata; see ``workspace.repo_lock``), and retried
while git reports somebody else's lock file.

Preparations are bounded per host (``preparation_concurrency``, default twice the CPUs), first
come first served, instead of 450 runs starting their git at once and taking the cores from the
server's event loop (bench/runs_scale.py); the git they run is niced like the run's other
processes (``agent_niceness``). The bound covers the git work (planning, ``worktree add``,
copies), not the setup scripts, which run as the run's own processes do. The local executor
bounds the runs that start at once too (``executor.local``, with the same line): a run's start
slot, handed here through :data:`start_slot`, is given up with its preparation slot.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from codeyard import crashpoints
from codeyard.domain.errors import Conflict
from codeyard.domain.ids import slugify
from codeyard.preview import leases
from codeyard.run_workspace.admission import PREPARATIONS, start_slot
from codeyard.run_workspace.pool import WorktreePool
from codeyard.run_workspace.steps import (
    DEFAULT_SCRIPT_TIMEOUT,
    REASON_TAIL,
    Reporter,
    remove_empty_parents,
    remove_one_worktree,
    retrying,
    run_cleanup,
    script_env,
)
from codeyard.sandbox import Sandbox
from codeyard.store import projects
from codeyard.store.writer import Writer
from codeyard.workspace import git as git_cli
from codeyard.workspace.git import GitError, git, resolve_commit
from codeyard.workspace.repo_lock import repo_lock
from codeyard.workspace.repo_setup import copy_matching, exclude_from_git
from codeyard.workspace.worktrees import branch_name, create_worktree, remove_worktree, worktree_dir

__all__ = ["SetupFailed", "prepare_worktrees"]

log = logging.getLogger(__name__)


class SetupFailed(Exception):
    """A repository's setup script failed; the message is the run's ``status_reason``."""


@dataclass(slots=True)
class _Made:
    repo: dict[str, Any]
    dest: Path
    created_branch: bool

    @property
    def repo_path(self) -> Path:
        return Path(self.repo["path"])


IntentRecorder = Callable[[str, dict[str, Any]], Awaitable[None]]


async def prepare_worktrees(
    engine: AsyncEngine,
    run: dict[str, Any],
    worktree_root: Path,
    writer: Writer | None = None,
    script_timeout: float = DEFAULT_SCRIPT_TIMEOUT,
    record_intent: IntentRecorder | None = None,
    *,
    sandbox: Sandbox | None = None,
    pool: WorktreePool | None = None,
) -> tuple[str, dict[str, str]]:
    """Create the run's worktrees, copy files in, run setup; returns (branch, {repo_id: path}).

    Idempotent across a crash: ``record_intent(branch, intent)`` is awaited with the branch
    and every worktree path (and whether the branch is new) *before* anything is created, and
    what an earlier, interrupted prepare of this run left (``run["workspace_intent"]``) is
    cleaned first — except worktrees it recorded as set up (``ready``, written right after
    their setup script succeeded), which are kept as they are, so a setup script runs once
    even when the server dies after it. All or nothing: on any failure (``SetupFailed``
    included) every worktree made here and every branch created here is removed again; a
    cancellation (the server stopping) keeps the ones set up, for the resume. A run whose
    worktrees were reclaimed by retention while its branch was kept gets a worktree on that
    branch again.

    It first waits for one of this host's preparation slots (:data:`PREPARATIONS`), in line,
    and runs its git niced by ``sandbox.niceness``; the slot is given up before setup scripts,
    and with it the run's start slot (:data:`start_slot`), if it holds one. With a ``pool``, a
    worktree on a new branch is taken from it when it holds one at the run's base commit, and
    the pool is asked for one for the next run (``run_workspace.pool``).
    """
    lowered = git_cli.niceness.set((sandbox or Sandbox()).niceness)
    started = start_slot.get() or _nothing
    start_slot.set(None)  # given up below, whatever happens
    try:
        async with PREPARATIONS.slot() as release:

            def done() -> None:
                release()
                started()

            return await _prepare(
                engine,
                run,
                worktree_root,
                writer,
                script_timeout,
                record_intent,
                sandbox,
                done,
                pool,
            )
    finally:
        started()
        git_cli.niceness.reset(lowered)


def _nothing() -> None:
    """No start slot to give up."""


async def _prepare(
    engine: AsyncEngine,
    run: dict[str, Any],
    worktree_root: Path,
    writer: Writer | None,
    script_timeout: float,
    record_intent: IntentRecorder | None,
    sandbox: Sandbox | None,
    release: Callable[[], None],
    pool: WorktreePool | None,
) -> tuple[str, dict[str, str]]:
    """:func:`prepare_worktrees` in its slot; ``release`` gives the slot up."""
    # Each read given the engine, not a pooled connection: on SQLite each runs on this thread
    # (``store.inline_reads``), where the connection's check-out and its two reads were trips
    # to a driver thread before the run's worktree is made (3-8 ms under load). Only the
    # project's slug is used with its repositories: the two reads need not be one snapshot.
    project = await projects.get_project(engine, run["project_id"])
    repos = {r["id"]: r for r in await projects.repos_of(engine, run["project_id"])}
    branch = run["branch"] or branch_name(run["number"], run["title"])
    report = Reporter(writer, run["id"], sandbox)
    prior: dict[str, Any] = (run.get("workspace_intent") or {}).get("repos") or {}
    plan: list[_Made] = []
    ready: list[_Made] = []  # set up completely by an earlier prepare: kept, not made again
    for repo_id in run["repo_ids"]:
        repo = repos[repo_id]
        dest = worktree_dir(
            worktree_root, project["slug"], run["number"], slugify(run["title"]), repo["name"]
        )
        before = prior.get(repo_id)
        reusable = before is not None and before.get("ready") and Path(before["path"]) == dest
        if reusable and await _on_branch(dest, branch):
            ready.append(_Made(repo, dest, bool((before or {})["new"])))
            continue
        if before is not None:  # an earlier prepare died here: take down what it made
            await remove_one_worktree(
                Path(repo["path"]), Path(before["path"]), branch, before["new"]
            )
        kept = run["branch"] is not None and not (before or {}).get("new", False)
        # Only a kept branch is looked up (a git process less for every new run): a new one is
        # created by ``create_worktree``, which refuses one that exists and leaves it alone.
        exists = kept and (
            await resolve_commit(Path(repo["path"]), f"refs/heads/{branch}") is not None
        )
        plan.append(_Made(repo, dest, not exists))

    async def record(done: list[_Made]) -> None:
        """The intent: every path and whether its branch is new, and which are set up."""
        if record_intent is None:
            return
        items = {m.repo["id"]: {"path": str(m.dest), "new": m.created_branch} for m in plan}
        items.update(
            {
                m.repo["id"]: {"path": str(m.dest), "new": m.created_branch, "ready": True}
                for m in done
            }
        )
        await record_intent(branch, {"branch": branch, "repos": items})

    await record(ready)
    made: list[_Made] = list(ready)
    set_up: list[_Made] = [m for m in ready if m.repo["setup_script"]]
    try:
        for item in plan:
            base = run["base_commits"][item.repo["id"]]
            await _add_worktree(item.repo_path, item.dest, branch, base, item.created_branch, pool)
            made.append(item)
        for item in plan:
            await _copy_files(item)
        release()  # the git work is done: setup scripts run as the run's processes do
        for item in plan:
            if item.repo["setup_script"]:
                set_up.append(item)
                await _setup(report, {**run, "branch": branch}, item, script_timeout)
                # Set up: a crash from here on keeps this worktree rather than setting it up
                # again (its setup script ran exactly once).
                ready.append(item)
                await record(ready)
        crashpoints.reached("prepare:set-up")
    except Exception:
        await _undo({**run, "branch": branch}, made, set_up, report, script_timeout)
        raise
    except BaseException:  # cancelled (the server stops): keep what is set up for the resume
        unfinished = [item for item in made if item not in ready]
        await _undo({**run, "branch": branch}, unfinished, [], report, script_timeout)
        raise
    for item in plan:  # the next run's worktrees, made while this one works
        if pool is not None and item.created_branch:
            pool.want(item.repo_path, run["base_commits"][item.repo["id"]], item.dest.name)
    by_repo = {item.repo["id"]: str(item.dest) for item in made}
    return branch, {repo_id: by_repo[repo_id] for repo_id in run["repo_ids"]}


async def _on_branch(dest: Path, branch: str) -> bool:
    """True when ``dest`` is a worktree with ``branch`` checked out (what a prepare made)."""
    if not await asyncio.to_thread(lambda: (dest / ".git").is_file()):
        return False
    head = await git("symbolic-ref", "-q", "HEAD", cwd=dest, check=False)
    return head.returncode == 0 and head.stdout.strip() == f"refs/heads/{branch}"


async def _add_worktree(
    repo: Path, dest: Path, branch: str, base: str, new: bool, pool: WorktreePool | None
) -> None:
    """Add one worktree: on a ``new`` branch (from the ``pool`` when it has one at ``base``),
    else on the existing ``branch``."""
    async with repo_lock(repo):
        if not new:
            await retrying(lambda: _attach(repo, dest, branch))
            return

        async def add() -> None:
            if pool is None or not await pool.claim(repo, base, dest, branch):
                await create_worktree(repo, dest, branch, base)

        await retrying(add)


async def _attach(repo: Path, dest: Path, branch: str) -> None:
    """A worktree on an existing branch (one kept when retention removed the worktree)."""
    if await asyncio.to_thread(lambda: dest.exists() or dest.is_symlink()):
        raise Conflict(f"the worktree directory {dest} already exists; remove it or pick another")
    await asyncio.to_thread(dest.parent.mkdir, parents=True, exist_ok=True)
    try:
        await git("worktree", "add", "--quiet", "--", str(dest), branch, cwd=repo)
    except BaseException:
        await remove_worktree(repo, dest, branch, delete_branch=False)
        raise


async def _copy_files(item: _Made) -> None:
    """Copy ``copy_files`` matches in and keep them out of commits (they are often secrets)."""
    patterns = [p for p in item.repo["copy_files"] or [] if isinstance(p, str)]
    if not patterns:
        return
    copied = await asyncio.to_thread(copy_matching, item.repo_path, item.dest, patterns)
    if copied:
        async with repo_lock(item.repo_path):
            await exclude_from_git(item.dest, copied)


async def _setup(report: Reporter, run: dict[str, Any], item: _Made, timeout: float) -> None:
    script = item.repo["setup_script"]
    env = script_env(run, item.repo, item.dest)
    if report.writer is not None and script:  # the run's ports, for a dev server it starts
        env.update((await leases.ensure(report.writer, run["id"])).env())
    result = await report.script("setup_script", "setup", script, item.dest, env, timeout)
    if result.ok:
        return
    tail = result.output.strip()[-REASON_TAIL:] or "no output"
    if result.timed_out:
        raise SetupFailed(f"Setup script timed out after {timeout:g}s: {tail}")
    raise SetupFailed(f"Setup script failed (exit {result.exit_code}): {tail}")


async def _undo(
    run: dict[str, Any], made: list[_Made], set_up: list[_Made], report: Reporter, timeout: float
) -> None:
    """Remove what a failed prepare made; repositories whose setup started get their cleanup."""
    for item in made:
        if item in set_up and item.repo["cleanup_script"]:
            await run_cleanup(report, run, item.repo, item.dest, timeout)
        try:
            await remove_one_worktree(item.repo_path, item.dest, run["branch"], item.created_branch)
        except (GitError, OSError) as exc:  # keep the original error, which says why
            log.warning("could not remove worktree %s after a failed prepare: %s", item.dest, exc)
        remove_empty_parents(item.dest, levels=2)
