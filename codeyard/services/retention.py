"""Disk usage and retention: what worktrees cost, and reclaiming those of long-finished runs.

A run is reclaimable when it is finished (review, completed, failed, cancelled), its
``finished_at`` is older than ``retention_days``, it still has worktrees, and no pull request
of it is open (that run may still take turns). Reclaiming removes
the worktrees (cleanup scripts first) but keeps the run, its events and any branch that is not
merged into the repository's default branch, so no unlanded work is lost. The server does this
once a day (:class:`DailyGc`); ``POST /api/gc`` and ``codeyard gc`` do it now. Each pass also
removes the ready worktrees kept for new runs (``run_workspace.pool``), and what a dead
process's pool left.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from codeyard.domain.events import WorkspaceRemoved
from codeyard.domain.status import RunStatus, pull_request_open
from codeyard.run_workspace import pool as worktree_pool
from codeyard.run_workspace.removal import remove_run_worktrees
from codeyard.services import sandbox as sandbox_service
from codeyard.services import settings as settings_service
from codeyard.services.context import Services
from codeyard.store import projects, runs
from codeyard.store.writer import Tx
from codeyard.workspace.disk import tree_size
from codeyard.workspace.git import GitError

log = logging.getLogger(__name__)

FINISHED = frozenset({RunStatus.REVIEW, RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED})
DAY = 24 * 3600.0
#: The first daily collection waits a little, so that a restart is not slowed by it.
FIRST_DELAY = 300.0


def cutoff_for(days: int, now: datetime | None = None) -> str:
    """The ``finished_at`` before which runs are reclaimable (same ISO format, so it sorts)."""
    moment = (now or datetime.now(UTC)) - timedelta(days=days)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def reclaimable(run: dict[str, Any], cutoff: str | None) -> bool:
    return (
        cutoff is not None
        and bool(run["worktrees"])
        and run["status"] in FINISHED
        and run["finished_at"] is not None
        and run["finished_at"] < cutoff
        # A completed run whose pull request is open still takes turns (CI fixes, reviews).
        and not pull_request_open(run.get("pull_request"))
    )


async def _runs_by_project(svc: Services) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Every project with its runs that have worktrees, oldest project first."""
    out: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
    cursor: str | None = None
    async with svc.engine.connect() as conn:
        while True:
            page, cursor = await projects.list_projects(conn, 500, cursor)
            for project in page:
                mine = await runs.all_of_project(conn, project["id"])
                out.append((project, sorted((r for r in mine if r["worktrees"]), key=_number)))
            if cursor is None:
                break
    return out[::-1]


def _number(run: dict[str, Any]) -> int:
    return int(run["number"])


async def _size(run: dict[str, Any]) -> int:
    paths = [Path(p) for p in run["worktrees"].values()]
    return sum(await asyncio.gather(*(asyncio.to_thread(tree_size, p) for p in paths)))


async def disk_usage(svc: Services) -> dict[str, Any]:
    """Bytes per project and run, and what retention would free at its next pass."""
    days = await settings_service.retention_days(svc)
    cutoff = cutoff_for(days) if days is not None else None
    total = reclaim = 0
    listed = []
    for project, project_runs in await _runs_by_project(svc):
        entries = []
        for run in project_runs:
            size = await _size(run)
            can = reclaimable(run, cutoff)
            reclaim += size if can else 0
            entries.append(
                {
                    "run_id": run["id"],
                    "number": run["number"],
                    "status": run["status"],
                    "bytes": size,
                    "finished_at": run["finished_at"],
                    "reclaimable": can,
                }
            )
        project_bytes = sum(e["bytes"] for e in entries)
        total += project_bytes
        listed.append(
            {
                "project_id": project["id"],
                "slug": project["slug"],
                "bytes": project_bytes,
                "runs": entries,
            }
        )
    return {
        "total_bytes": total,
        "reclaimable_bytes": reclaim,
        "retention_days": days,
        "cutoff": cutoff,
        "worktree_root": str(svc.settings.worktree_root),
        "projects": listed,
    }


async def gc(
    svc: Services,
    older_than_days: int | None = None,
    *,
    dry_run: bool = False,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Reclaim the worktrees of runs finished more than ``older_than_days`` (default: the
    ``retention_days`` setting) ago; with neither, nothing is reclaimed. Returns what was freed.
    """
    days = older_than_days
    if days is None:
        days = await settings_service.retention_days(svc)
    result: dict[str, Any] = {
        "retention_days": days,
        "cutoff": None,
        "dry_run": dry_run,
        "freed_bytes": 0,
        "runs": [],
        "errors": [],
    }
    if not dry_run:  # ready worktrees kept for the next runs (made again when runs need them)
        await worktree_pool.collect_all()
    if days is None:
        return result
    cutoff = result["cutoff"] = cutoff_for(days, now)
    for _, project_runs in await _runs_by_project(svc):
        for run in project_runs:
            if not reclaimable(run, cutoff):
                continue
            size = await _size(run)
            entry = {
                "run_id": run["id"],
                "number": run["number"],
                "project_id": run["project_id"],
                "status": run["status"],
                "finished_at": run["finished_at"],
                "bytes": size,
                "branches_kept": [],
                "branches_deleted": [],
            }
            if not dry_run:
                try:
                    if not await _reclaim(svc, run, cutoff, size, entry):
                        continue
                except (GitError, OSError, ValueError) as exc:
                    log.warning("retention: run %s: %s", run["number"], exc)
                    result["errors"].append({"run_id": run["id"], "message": str(exc)})
                    continue
            result["runs"].append(entry)
            result["freed_bytes"] += size
    return result


async def _reclaim(
    svc: Services, run: dict[str, Any], cutoff: str, size: int, entry: dict[str, Any]
) -> bool:
    """Claim the run's worktrees (if it is still reclaimable), remove them, record it."""
    run_id, worktrees = run["id"], dict(run["worktrees"])

    async def claim(tx: Tx) -> bool:
        current = await runs.lock(tx, run_id)
        if current["worktrees"] != worktrees or not reclaimable(current, cutoff):
            return False  # messaged, resumed or already reclaimed meanwhile
        await runs.update_fields(tx, run_id, worktrees={})
        return True

    if not await svc.writer.run(claim):
        return False
    timeout = svc.settings.bash_timeout_seconds
    try:
        removed = await remove_run_worktrees(
            svc.engine,
            run,
            svc.writer,
            timeout,
            keep_unmerged_branch=True,
            sandbox=await sandbox_service.current(svc),
        )
    except BaseException:
        await svc.writer.run(lambda tx: _restore(tx, run_id, worktrees))
        raise
    for item in removed:
        if item["branch"]:
            key = "branches_deleted" if item["branch_deleted"] else "branches_kept"
            entry[key].append({"repo_id": item["repo_id"], "branch": item["branch"]})
    event = WorkspaceRemoved(
        reason="retention",
        bytes=size,
        worktrees=list(worktrees.values()),
        branches_kept=entry["branches_kept"],
        branches_deleted=entry["branches_deleted"],
    )
    await svc.writer.append(run_id, [event])
    return True


async def _restore(tx: Tx, run_id: str, worktrees: dict[str, str]) -> None:
    """Removal failed part-way: keep pointing at what may still be on disk."""
    current = await runs.lock(tx, run_id)
    if not current["worktrees"]:
        await runs.update_fields(tx, run_id, worktrees=worktrees)


class DailyGc:
    """The server's daily retention pass, as a background task of the app's lifespan."""

    def __init__(self, svc: Services, interval: float = DAY, first_delay: float = FIRST_DELAY):
        self._svc = svc
        self._interval = interval
        self._first_delay = first_delay
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="codeyard-retention")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _loop(self) -> None:
        await asyncio.sleep(self._first_delay)
        while True:
            try:
                result = await gc(self._svc)
            except Exception:  # logged; the next pass tries again
                log.exception("the daily retention pass failed")
            else:
                if result["runs"]:
                    log.info(
                        "retention freed %d bytes from %d runs",
                        result["freed_bytes"],
                        len(result["runs"]),
                    )
            await asyncio.sleep(self._interval)
