"""Taking checkpoints of a run's worktrees: automatic at each turn end, manual by API.

The commits are made by ``workspace.checkpoints`` on hidden refs; this module numbers them,
stores the row and announces ``checkpoint.created`` — for every provider alike.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

from codeyard import crashpoints
from codeyard.domain.errors import NotFound
from codeyard.domain.events import CheckpointCreated, utc_now
from codeyard.domain.ids import new_id
from codeyard.store import checkpoints, fencing, projects
from codeyard.store.writer import Tx, Writer
from codeyard.workspace.checkpoints import create_checkpoint_with_stats, delete_checkpoint_refs
from codeyard.workspace.git import git

T = TypeVar("T")
_locks: dict[str, asyncio.Lock] = {}


def checkpoint_ref(run_id: str, number: int) -> str:
    return f"refs/codeyard/{run_id}/{number}"


def public(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "run_id": row["run_id"],
        "number": row["number"],
        "turn": row["turn"],
        "kind": row["kind"],
        "description": row["description"],
        "commits": row["commits"],
        "diff_stats": row["diff_stats"],
        "created_at": row["created_at"],
    }


async def take_checkpoint(
    engine: AsyncEngine,
    writer: Writer,
    run: dict[str, Any],
    kind: str,
    description: str | None,
    *,
    run_stats: bool = False,
) -> dict[str, Any]:
    """Checkpoint every worktree of ``run``; one row, one ``checkpoint.created`` event.

    ``run_stats``: the checkpoint's diff stats become the run's too (same transaction), so a
    turn end needs no snapshot of its own for them.
    """
    row, _ = await checkpoint_then(engine, writer, run, kind, description, run_stats=run_stats)
    return row


async def _nothing(tx: Tx) -> None:
    return None


async def checkpoint_then(
    engine: AsyncEngine,
    writer: Writer,
    run: dict[str, Any],
    kind: str,
    description: str | None,
    then: Callable[[Tx], Awaitable[T]] = _nothing,  # type: ignore[assignment]
    *,
    run_stats: bool = False,
) -> tuple[dict[str, Any], T]:
    """:func:`take_checkpoint`, and ``then`` in the same transaction as its row (a turn's end).

    Exactly once across a crash: the commits go on the refs of the next free number first,
    then one transaction stores the row, its event and whatever ``then`` records. A crash in
    between leaves a ref but no row; the retried step takes the same number again and moves
    that ref to its own commit, so there is never a second checkpoint for one step, and never
    a step recorded as done without its checkpoint.
    """
    known: asyncio.Future[Callable[[Tx], Awaitable[T]]] = asyncio.Future()
    known.set_result(then)
    return await checkpoint_when(engine, writer, run, kind, description, known, run_stats=run_stats)


async def checkpoint_when(
    engine: AsyncEngine,
    writer: Writer,
    run: dict[str, Any],
    kind: str,
    description: str | None,
    then: Awaitable[Callable[[Tx], Awaitable[T]]],
    *,
    run_stats: bool = False,
) -> tuple[dict[str, Any], T]:
    """:func:`checkpoint_then` whose git work starts now and whose transaction waits for
    ``then`` (what to record with the row, known later): a turn end commits the worktree
    while the agent's process exits, and records both once it is gone. Until then the run's
    checkpoint lock is held, so no other checkpoint takes the number; cancelled while it
    waits, it leaves at most the ref a crash would leave (the next checkpoint moves it)."""
    run_id = run["id"]
    fence = fencing.current.get()
    async with _locks.setdefault(run_id, asyncio.Lock()):
        last, attempt = await checkpoints.last_and_attempt(engine, run_id)
        if fence is not None and fence.run_id == run_id:  # no git work for a lost attempt
            if attempt is None:
                raise NotFound(f"No run '{run_id}'. List runs with GET /api/runs.")
            fencing.check(fence, run_id, attempt)
        number = last["number"] + 1 if last else 1
        previous: dict[str, str] = last["commits"] if last else {}
        message = f"Codeyard checkpoint {number} of run {run['number']} ({kind})"
        if description:
            message += f"\n\n{description}"
        commits: dict[str, str] = {}
        total = {"files": 0, "insertions": 0, "deletions": 0}
        for repo_id, path in run["worktrees"].items():
            # The stats of the state just committed: the same snapshot, no other. A state the
            # previous checkpoint already holds (same files, same HEAD) keeps its commit.
            sha, stats = await create_checkpoint_with_stats(
                Path(path),
                checkpoint_ref(run_id, number),
                message,
                run["base_commits"][repo_id],
                previous.get(repo_id),
            )
            commits[repo_id] = sha
            total = {k: total[k] + stats[k] for k in total}
        row = {
            "id": new_id("chk"),
            "run_id": run_id,
            "number": number,
            "turn": run["turns"],
            "kind": kind,
            "description": description,
            "commits": commits,
            "diff_stats": total,
            "created_at": utc_now(),
        }

        record = await then

        async def job(tx: Tx) -> T:
            if run_stats:
                tx.set_run_values(run_id, {"diff_stats": total})
            await checkpoints.insert(tx, row)
            await tx.emit_one(run_id, CheckpointCreated(checkpoint=public(row)))
            return await record(tx)

        crashpoints.reached("checkpoint:ref-written")
        try:
            result = await writer.run(job)
        except fencing.StaleAttempt:  # the run moved on meanwhile: leave no ref behind
            for path in run["worktrees"].values():
                ref = checkpoint_ref(run_id, number)
                await git("update-ref", "-d", ref, cwd=Path(path), check=False)
            raise
        return public(row), result


def forget(run_id: str) -> None:
    _locks.pop(run_id, None)


async def delete_run_refs(engine: AsyncEngine, run: dict[str, Any]) -> None:
    """Drop a run's checkpoint refs in every repository (so git can collect their objects)."""
    async with engine.connect() as conn:
        repos = await projects.repos_of(conn, run["project_id"])
    for repo in repos:
        if repo["id"] in run["repo_ids"] and Path(repo["path"]).exists():
            await delete_checkpoint_refs(Path(repo["path"]), f"refs/codeyard/{run['id']}/")
    forget(run["id"])
