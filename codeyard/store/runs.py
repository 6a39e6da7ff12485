"""Run rows: reading, inserting, and the one door that changes a run's status."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

from sqlalchemy import Row, bindparam, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from codeyard.domain.errors import NotFound
from codeyard.domain.events import RunStatusChanged, utc_now
from codeyard.domain.status import ACTIVE, RunStatus, check_transition, pull_request_open
from codeyard.store import schema
from codeyard.store.pages import decode_cursor, page
from codeyard.store.records import RunRecord
from codeyard.store.statement import Reader, RowWrites, Statement
from codeyard.store.writer import Tx

R = schema.runs
#: The hot statements on runs, sent without Core's work per execution (``store.statement``).
_WRITES = RowWrites(R)
_BY_ID: Statement[tuple[Any, ...]] = Statement(select(R).where(R.c.id == bindparam("run_id")))
_BY_NUMBER: Statement[tuple[Any, ...]] = Statement(
    select(R).where(R.c.number == bindparam("number"))
)
_NEXT_NUMBER: Statement[tuple[int]] = Statement(
    update(schema.counters)
    .where(schema.counters.c.name == "run_number")
    .values(value=schema.counters.c.value + 1)
    .returning(schema.counters.c.value)
)

#: Columns the API shows; the rest (worktrees, agent_state, pending_messages…) are internal.
PUBLIC_FIELDS = (
    "id",
    "number",
    "title",
    "prompt",
    "project_id",
    "repo_ids",
    "agent_id",
    "provider",
    "model",
    "status",
    "status_reason",
    "resolution",
    "source_ref",
    "base_commits",
    "branch",
    "worktrees",
    "parent_run_id",
    "delegation",
    "session_id",
    "turns",
    "usage",
    "budget_usd",
    "pending_approvals",
    "diff_stats",
    "pull_request",
    "archived",
    "labels",
    "created_by",
    "created_at",
    "started_at",
    "finished_at",
    "updated_at",
    "workspace_id",
)

EMPTY_USAGE = {
    "input_tokens": 0,
    "output_tokens": 0,
    "cache_read_tokens": 0,
    "cache_write_tokens": 0,
    "cost_usd": 0.0,
}


def public(run: dict[str, Any]) -> dict[str, Any]:
    return {k: run[k] for k in PUBLIC_FIELDS}


def _as_dict(row: Row[Any]) -> dict[str, Any]:
    return dict(row._mapping)


def _seconds_between(start: str | None, end: str) -> float | None:
    """``run_seconds``: kept with ``finished_at`` so analytics sums it instead of parsing
    20,000 timestamps per request (migration 0022)."""
    if not start:
        return None
    fmt = "%Y-%m-%dT%H:%M:%S.%fZ"
    try:
        return (datetime.strptime(end, fmt) - datetime.strptime(start, fmt)).total_seconds()
    except ValueError:
        return None


async def next_run_number(tx: Tx) -> int:
    row = await _NEXT_NUMBER.first(tx.conn)
    if row is None:
        raise NotFound("The run_number counter is missing.")
    return int(row[0])


async def insert(tx: Tx, values: dict[str, Any]) -> None:
    await _WRITES.insert(tx.conn, values)
    tx.register_run(values["id"], values["project_id"])


async def find(conn: Reader, ref: str | int) -> dict[str, Any] | None:
    """A run by id (``run_…``) or by number."""
    ref_s = str(ref)
    # ASCII digits only ("¹".isdigit() is true), and few enough to fit the column.
    numeric = ref_s.isascii() and ref_s.isdigit() and len(ref_s) <= 9
    if numeric:
        return await _BY_NUMBER.first_mapping(conn, number=int(ref_s))
    return await _BY_ID.first_mapping(conn, run_id=ref_s)


async def status_of(conn: Reader, run_id: str) -> tuple[str, str | None] | None:
    """The run's status and resolution (None: no such run): what a follower of every turn end
    needs to tell whether it has anything to do, without the whole row."""
    return await _STATUS_OF.first(conn, run_id=run_id)


_STATUS_OF: Statement[tuple[str, str | None]] = Statement(
    select(R.c.status, R.c.resolution).where(R.c.id == bindparam("run_id"))
)


async def get(conn: Reader, ref: str | int) -> dict[str, Any]:
    run = await find(conn, ref)
    if run is None:
        raise NotFound(f"No run '{ref}'. List runs with GET /api/runs.")
    return run


async def list_page(
    conn: AsyncConnection,
    *,
    status: list[str] | None = None,
    project_id: str | None = None,
    provider: str | None = None,
    archived: bool | None = False,
    q: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
    workspace_id: str | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    stmt = select(R).order_by(R.c.number.desc()).limit(limit + 1)
    if workspace_id:
        stmt = stmt.where(R.c.workspace_id == workspace_id)
    if status:
        stmt = stmt.where(R.c.status.in_(status))
    if project_id:
        stmt = stmt.where(R.c.project_id == project_id)
    if provider:
        stmt = stmt.where(R.c.provider == provider)
    if archived is not None:
        stmt = stmt.where(R.c.archived == archived)
    if q:
        like = f"%{q.lower()}%"
        stmt = stmt.where(or_(func.lower(R.c.title).like(like), func.lower(R.c.prompt).like(like)))
    after = decode_cursor(cursor)
    if after is not None:
        stmt = stmt.where(R.c.number < int(after))
    rows = [_as_dict(r) for r in (await conn.execute(stmt)).all()]
    return page(rows, limit, key=lambda r: r["number"])


async def get_record(conn: AsyncConnection, ref: str | int) -> RunRecord:
    """:func:`get`, typed: for read paths that only show the run."""
    return RunRecord.of(await get(conn, ref))


async def list_records(
    conn: AsyncConnection,
    *,
    status: list[str] | None = None,
    project_id: str | None = None,
    provider: str | None = None,
    archived: bool | None = False,
    q: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
    workspace_id: str | None = None,
) -> tuple[list[RunRecord], str | None]:
    """:func:`list_page`, typed (newest first)."""
    rows, next_cursor = await list_page(
        conn,
        workspace_id=workspace_id,
        status=status,
        project_id=project_id,
        provider=provider,
        archived=archived,
        q=q,
        limit=limit,
        cursor=cursor,
    )
    return [RunRecord.of(r) for r in rows], next_cursor


async def all_of_project(conn: AsyncConnection, project_id: str) -> list[dict[str, Any]]:
    rows = (await conn.execute(select(R).where(R.c.project_id == project_id))).all()
    return [_as_dict(r) for r in rows]


async def ids_in(conn: AsyncConnection, statuses: frozenset[RunStatus]) -> list[str]:
    """Run ids in the given statuses, oldest first (FIFO order for the queue)."""
    stmt = (
        select(R.c.id)
        .where(R.c.status.in_([str(s) for s in statuses]))
        .order_by(R.c.queued_at, R.c.number)
    )
    return [r.id for r in (await conn.execute(stmt)).all()]


async def lock(tx: Tx, run_id: str) -> dict[str, Any]:
    """Read a run inside a write job (the writer is serialized, so this is a consistent read)."""
    row = await _BY_ID.first_mapping(tx.conn, run_id=run_id)
    if row is None:
        raise NotFound(f"No run '{run_id}'.")
    return row


async def set_status(
    tx: Tx,
    run_id: str,
    to: RunStatus,
    reason: str | None = None,
    *,
    locked: dict[str, Any] | None = None,
    **values: Any,
) -> dict[str, Any]:
    """The one door for run status: check the table, write the row, append ``run.status``.

    Extra ``values`` are written with the status (e.g. ``turns``), in the same transaction.
    ``locked``: the row as this same job read it (:func:`lock`), with what it changed since,
    so it is not read again; it is updated in place. Returns the run as it is after the change.
    """
    await tx.check_fence(run_id)
    run = locked if locked is not None else await lock(tx, run_id)
    current = RunStatus(run["status"])
    check_transition(current, to, pr_open=pull_request_open(run.get("pull_request")))
    now = utc_now()
    changes: dict[str, Any] = {"status": str(to), "status_reason": reason, **values}
    if to == RunStatus.QUEUED:
        changes["queued_at"] = now
    if to == RunStatus.RUNNING and run["started_at"] is None:
        changes["started_at"] = now
    if to in (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.REVIEW):
        changes["finished_at"] = now
        changes["run_seconds"] = _seconds_between(run["started_at"], now)
    elif to in ACTIVE:
        changes["finished_at"] = None
        changes["run_seconds"] = None
    await _WRITES.update(tx.conn, run_id, {"updated_at": now, **changes})
    changed = RunStatusChanged(from_=str(current), to=str(to), reason=reason)
    await tx.emit_one(run_id, changed)
    run.update(changes, updated_at=now)
    return run


async def update_fields(tx: Tx, run_id: str, **values: Any) -> None:
    """Write non-status columns. ``status`` is refused here: use :func:`set_status`."""
    if "status" in values:
        raise ValueError("Run status changes go through set_status().")
    await tx.check_fence(run_id)
    await _WRITES.update(tx.conn, run_id, {"updated_at": utc_now(), **values})


async def begin_attempt(tx: Tx, run_id: str, *, only_in: RunStatus | None = None) -> int | None:
    """An executor takes the run: its attempt number goes up, and every write of an older
    attempt is refused from now on (``store.fencing``). Returns the new attempt, or None when
    the run is gone or (``only_in``) not in that status, so two takers cannot both win.

    A take fenced on the run (a worker host takes it for the attempt it found it on)
    succeeds only while the run is still on that attempt: None when another taker moved it
    past. The fence names the run the job writes to, which lets the
    PostgreSQL writer commit other runs' appends while the take waits (``store.writer``)."""
    fenced = tx.fence is not None and tx.fence.run_id == run_id
    stmt = _begin_attempt(only_in is not None, fenced)
    attempt = await stmt.scalar(
        tx.conn,
        run_id=run_id,
        status=str(only_in),
        attempt=tx.fence.attempt if tx.fence is not None else 0,
    )
    if attempt is None:
        return None
    await tx.note_attempt(run_id, int(attempt))
    return int(attempt)


@functools.cache
def _begin_attempt(in_status: bool, fenced: bool) -> Statement[tuple[int]]:
    """The attempt's increment, only while the run is in ``:status`` and (``fenced``) still
    on ``:attempt``; returns the new attempt."""
    stmt = update(R).where(R.c.id == bindparam("run_id"))
    if in_status:
        stmt = stmt.where(R.c.status == bindparam("status"))
    if fenced:
        stmt = stmt.where(R.c.attempt == bindparam("attempt"))
    return Statement(stmt.values(attempt=R.c.attempt + 1).returning(R.c.attempt))


async def remove(tx: Tx, run_id: str) -> None:
    await tx.conn.execute(delete(schema.events).where(schema.events.c.run_id == run_id))
    await tx.conn.execute(delete(schema.checkpoints).where(schema.checkpoints.c.run_id == run_id))
    await tx.conn.execute(delete(schema.run_sessions).where(schema.run_sessions.c.run_id == run_id))
    await tx.conn.execute(delete(schema.share_links).where(schema.share_links.c.run_id == run_id))
    await tx.conn.execute(delete(R).where(R.c.id == run_id))
    tx.forget_run(run_id)


async def creators_of_branch(conn: AsyncConnection, project_id: str, branch: str) -> list[Any]:
    """``created_by`` of every run of the project whose branch is ``branch``."""
    stmt = select(R.c.created_by).where(R.c.project_id == project_id, R.c.branch == branch)
    return [r.created_by for r in (await conn.execute(stmt)).all()]
