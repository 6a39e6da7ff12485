"""Reviewing a run's work: diffs, checkpoints (list, take, restore, compare), and browsing its
worktree (list a directory, read a file). What reads or changes a worktree is done where it is
(``worktree_reads``, ``worktree_writes``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from codeyard.domain import events as ev
from codeyard.domain.errors import BadRequest, Conflict, InvalidTransition, NotFound
from codeyard.domain.status import RunStatus
from codeyard.run_workspace.checkpointing import public
from codeyard.run_workspace.on_host import OnWorktreeHost
from codeyard.run_workspace.worktree_dispatch import Here, in_worktrees
from codeyard.run_workspace.worktree_reads import DIFF, LIST, READ, BrowseJob, DiffJob, Diffs
from codeyard.run_workspace.worktree_writes import CHECKPOINT, RESTORE, CheckpointJob, RestoreJob
from codeyard.services import sandbox as sandbox_service
from codeyard.services.context import Services
from codeyard.store import checkpoints, projects, runs
from codeyard.store.writer import Tx
from codeyard.workspace.diff import diff_between

S = RunStatus
#: While the agent works, restoring would fight it; everything else may restore.
NO_RESTORE = frozenset({S.QUEUED, S.PREPARING, S.RUNNING, S.WAITING})


async def _run_with_worktrees(svc: Services, ref: str) -> dict[str, Any]:
    async with svc.engine.connect() as conn:
        run = await runs.get(conn, ref)
    if not run["worktrees"]:
        raise InvalidTransition(
            f"Run {run['number']} has no worktree (it has not started, or it was discarded or "
            "cleaned up), so there is nothing to diff or checkpoint.",
            current_status=run["status"],
        )
    return run


def _repos(run: dict[str, Any], repo_id: str | None) -> list[tuple[str, Path]]:
    items = [(rid, Path(p)) for rid, p in run["worktrees"].items()]
    if repo_id is None:
        return items
    chosen = [(rid, p) for rid, p in items if rid == repo_id]
    if not chosen:
        raise NotFound(f"Repository '{repo_id}' is not part of run {run['number']}.")
    return chosen


def _here(svc: Services) -> Here:
    return Here(svc.engine, svc.writer, lambda: sandbox_service.current(svc))


def _on_host(svc: Services, run: dict[str, Any]) -> bool:
    """Whether the run's worktrees are on a worker host's disk, not this server's."""
    return isinstance(svc.executor, OnWorktreeHost) and bool(run.get("worker_host"))


async def _live(
    svc: Services,
    run: dict[str, Any],
    chosen: list[tuple[str, Path]],
    against: dict[str, str],
    fmt: Literal["text", "json", "stats"],
    paths: list[str] | None = None,
    reverse: bool = False,
) -> Diffs:
    """Diffs of the live worktrees (``chosen``), read where they are (``worktree_reads``)."""
    job = DiffJob(
        {rid: str(p) for rid, p in chosen},
        {rid: against[rid] for rid, _ in chosen},
        fmt,
        paths,
        reverse,
    )
    return await in_worktrees(svc.executor, run, DIFF, job, _here(svc))


async def diff(
    svc: Services,
    ref: str,
    fmt: Literal["text", "json"],
    paths: list[str] | None,
    repo_id: str | None,
) -> str | list[dict[str, Any]]:
    """The worktree (committed + uncommitted + untracked) against the run's base commit."""
    run = await _run_with_worktrees(svc, ref)
    multi = len(run["worktrees"]) > 1
    chosen = _repos(run, repo_id)
    diffs = await _live(svc, run, chosen, run["base_commits"], fmt, paths)
    if fmt == "text":
        return "".join(diffs.texts[rid] for rid, _ in chosen)
    files: list[dict[str, Any]] = []
    for rid, _ in chosen:
        for item in diffs.files[rid]:
            files.append({**item, "repo_id": rid} if multi else item)
    return files


async def stats(svc: Services, ref: str) -> dict[str, int]:
    run = await _run_with_worktrees(svc, ref)
    total = {"files": 0, "insertions": 0, "deletions": 0}
    chosen = _repos(run, None)
    diffs = await _live(svc, run, chosen, run["base_commits"], "stats")
    for rid, _ in chosen:
        part = diffs.stats[rid]
        total = {k: total[k] + part[k] for k in total}
    return total


async def list_checkpoints(svc: Services, ref: str) -> list[dict[str, Any]]:
    async with svc.engine.connect() as conn:
        run = await runs.get(conn, ref)
        return [public(r) for r in await checkpoints.of_run(conn, run["id"])]


async def create_checkpoint(svc: Services, ref: str, description: str | None) -> dict[str, Any]:
    """Taken where the worktrees are (their host's process numbers it with its turn ends)."""
    run = await _run_with_worktrees(svc, ref)
    job = CheckpointJob(run["id"], dict(run["worktrees"]), "manual", description)
    return (await in_worktrees(svc.executor, run, CHECKPOINT, job, _here(svc))).checkpoint


async def _checkpoint_and_run(
    svc: Services, checkpoint_id: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    async with svc.engine.connect() as conn:
        checkpoint = await checkpoints.get(conn, checkpoint_id)
        run = await runs.get(conn, checkpoint["run_id"])
    return checkpoint, run


async def restore(svc: Services, checkpoint_id: str) -> dict[str, Any]:
    """Put the worktrees back to a checkpoint, after checkpointing the present (the undo)."""
    checkpoint, run = await _checkpoint_and_run(svc, checkpoint_id)
    if S(run["status"]) in NO_RESTORE:
        raise InvalidTransition(
            f"Run {run['number']} is {run['status']}: pause or cancel it before restoring "
            "a checkpoint.",
            current_status=run["status"],
        )
    if not run["worktrees"]:
        raise InvalidTransition(
            "The run's worktree is gone; nothing to restore into.", current_status=run["status"]
        )
    # Where the worktrees are: the undo checkpoint, the files put back, the stats after.
    job = RestoreJob(
        run["id"],
        dict(run["worktrees"]),
        dict(checkpoint["commits"]),
        f"Before restoring checkpoint {checkpoint['number']}",
    )
    done = await in_worktrees(svc.executor, run, RESTORE, job, _here(svc))
    before, fresh = done.undo, done.stats

    async def record(tx: Tx) -> None:
        await runs.update_fields(tx, run["id"], diff_stats=fresh)
        restored = ev.CheckpointRestored(
            checkpoint_id=checkpoint["id"],
            number=checkpoint["number"],
            undo_checkpoint_id=before["id"],
        )
        await tx.emit_one(run["id"], restored)

    await svc.writer.run(record)
    return {"restored": public(checkpoint), "undo_checkpoint": before, "diff_stats": fresh}


async def compare(
    svc: Services, checkpoint_id: str, against: str, fmt: Literal["text", "json"]
) -> Any:
    """A checkpoint against ``current`` (the worktree now), ``base``, or another checkpoint id."""
    checkpoint, run = await _checkpoint_and_run(svc, checkpoint_id)
    other: dict[str, str] = {}
    if against == "base":
        other = dict(run["base_commits"])
    elif against == "current":
        if not run["worktrees"]:
            raise InvalidTransition(
                "The run's worktree is gone; compare against 'base' or a checkpoint.",
                current_status=run["status"],
            )
        # From the worktree now to the checkpoint (what a restore would do), read where the
        # worktrees are.
        wt = run["worktrees"]
        chosen = [(rid, Path(wt[rid])) for rid in checkpoint["commits"] if rid in wt]
        diffs = await _live(svc, run, chosen, checkpoint["commits"], fmt, reverse=True)
        if fmt == "text":
            return "".join(diffs.texts[rid] for rid, _ in chosen)
        return [f for rid, _ in chosen for f in diffs.files[rid]]
    else:
        async with svc.engine.connect() as conn:
            second = await checkpoints.get(conn, against)
        if second["run_id"] != run["id"]:
            raise NotFound(f"Checkpoint '{against}' belongs to another run.")
        other = dict(second["commits"])
    # Commits only: read in the worktree (this server's disk) or the project's repository.
    local = run["worktrees"] and not _on_host(svc, run)
    repos_root = {rid: p for rid, p in _repos(run, None)} if local else {}
    out_text: list[str] = []
    out_json: list[dict[str, Any]] = []
    for rid, commit in checkpoint["commits"].items():
        repo = repos_root.get(rid) or await _repo_path(svc, rid)
        # From the other state to the checkpoint.
        if fmt == "text":
            out_text.append(await diff_between(repo, other[rid], commit, "text"))
        else:
            out_json.extend(dict(f) for f in await diff_between(repo, other[rid], commit, "json"))
    return "".join(out_text) if fmt == "text" else out_json


async def browse(
    svc: Services,
    ref: str,
    repo_id: str | None,
    path: str,
    *,
    depth: int | None = None,
    truncate: bool = False,
) -> dict[str, Any]:
    """A directory of the run's worktree, ``depth`` levels down (``depth`` given), or one file
    of it; paths are resolved inside the worktree (400 when they leave it)."""
    async with svc.engine.connect() as conn:
        run = await runs.get(conn, ref)
    if repo_id is not None and repo_id not in run["repo_ids"]:
        raise BadRequest(
            f"Repository '{repo_id}' is not part of run {run['number']}; its repositories: "
            f"{', '.join(run['repo_ids'])}.",
            repo_id=repo_id,
        )
    chosen = repo_id or next((r for r in run["repo_ids"] if r in run["worktrees"]), None)
    where = run["worktrees"].get(chosen) if chosen else None
    if chosen is None or where is None:
        raise Conflict(
            f"Run {run['number']} has no worktree to browse: it has not been prepared yet, or "
            "its worktree was removed (discard, delete or retention).",
            current_status=run["status"],
        )
    job = BrowseJob({chosen: where}, path, depth or 1, truncate)
    op = LIST if depth is not None else READ
    found = (await in_worktrees(svc.executor, run, op, job, _here(svc))).found
    return {"run_id": run["id"], "repo_id": chosen, **found}


async def _repo_path(svc: Services, repo_id: str) -> Path:
    async with svc.engine.connect() as conn:
        return Path((await projects.get_repo(conn, repo_id))["path"])
