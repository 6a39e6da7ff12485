"""Workflow tables: definitions with versions, executions, and each execution's event log."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from codeyard.domain.errors import NotFound
from codeyard.domain.events import utc_now
from codeyard.store import schema, wakeups
from codeyard.store.writer import Tx

W, V, X, E = (
    schema.workflows,
    schema.workflow_versions,
    schema.workflow_executions,
    schema.workflow_events,
)
ACTIVE = ("running", "waiting")
#: The event the notifications follow (``notifications.workflows``): announced when written.
APPROVAL_REQUESTED = "workflow.approval.requested"
FINISHED = ("completed", "failed", "cancelled")


def _row(row: Any) -> dict[str, Any]:
    return dict(row._mapping)


async def insert_workflow(tx: Tx, values: dict[str, Any]) -> None:
    await tx.conn.execute(insert(W).values(**values))
    await tx.conn.execute(
        insert(V).values(
            workflow_id=values["id"],
            version=values["version"],
            definition=values["definition"],
            source=values["source"],
            created_at=values["updated_at"],
        )
    )


async def update_workflow(tx: Tx, workflow_id: str, values: dict[str, Any]) -> None:
    await tx.conn.execute(update(W).where(W.c.id == workflow_id).values(**values))
    await tx.conn.execute(
        insert(V).values(
            workflow_id=workflow_id,
            version=values["version"],
            definition=values["definition"],
            source=values["source"],
            created_at=values["updated_at"],
        )
    )


async def delete_workflow(tx: Tx, workflow_id: str) -> None:
    """The definition and its versions; executions keep their own snapshot and log."""
    await tx.conn.execute(W.delete().where(W.c.id == workflow_id))
    await tx.conn.execute(V.delete().where(V.c.workflow_id == workflow_id))


async def get_workflow(conn: AsyncConnection, workflow_id: str) -> dict[str, Any]:
    row = (await conn.execute(select(W).where(W.c.id == workflow_id))).first()
    if row is None:
        raise NotFound(f"Workflow {workflow_id} does not exist; list them with GET /api/workflows.")
    return _row(row)


async def find_by_name(conn: AsyncConnection, name: str) -> dict[str, Any] | None:
    row = (await conn.execute(select(W).where(W.c.name == name).limit(1))).first()
    return _row(row) if row is not None else None


async def list_workflows(conn: AsyncConnection) -> list[dict[str, Any]]:
    rows = (await conn.execute(select(W).order_by(W.c.name, W.c.id))).all()
    return [_row(r) for r in rows]


async def versions(conn: AsyncConnection, workflow_id: str) -> list[dict[str, Any]]:
    rows = (
        await conn.execute(
            select(V.c.version, V.c.created_at)
            .where(V.c.workflow_id == workflow_id)
            .order_by(V.c.version)
        )
    ).all()
    return [_row(r) for r in rows]


async def insert_execution(tx: Tx, values: dict[str, Any]) -> None:
    await tx.conn.execute(insert(X).values(**values))


async def get_execution(conn: AsyncConnection, execution_id: str) -> dict[str, Any]:
    row = (await conn.execute(select(X).where(X.c.id == execution_id))).first()
    if row is None:
        raise NotFound(f"Workflow execution {execution_id} does not exist.")
    return _row(row)


async def list_executions(
    conn: AsyncConnection, workflow_id: str, status: list[str] | None, limit: int
) -> list[dict[str, Any]]:
    stmt = select(X).where(X.c.workflow_id == workflow_id)
    if status:
        stmt = stmt.where(X.c.status.in_(status))
    rows = (await conn.execute(stmt.order_by(X.c.created_at.desc(), X.c.id).limit(limit))).all()
    return [_row(r) for r in rows]


async def ids_in(conn: AsyncConnection, statuses: tuple[str, ...]) -> list[str]:
    rows = (await conn.execute(select(X.c.id).where(X.c.status.in_(statuses)))).all()
    return [r.id for r in rows]


async def count_active(conn: AsyncConnection, workflow_id: str) -> int:
    stmt = select(func.count()).where(X.c.workflow_id == workflow_id, X.c.status.in_(ACTIVE))
    return int((await conn.execute(stmt)).scalar_one())


async def emit(tx: Tx, execution_id: str, type_: str, data: dict[str, Any]) -> dict[str, Any]:
    """Append one event (numbered per execution) in the caller's transaction. An approval
    request is announced (``store.wakeups``): on PostgreSQL to every process at commit; the
    caller wakes this process's followers once it committed."""
    seq = (
        await tx.conn.execute(
            update(X)
            .where(X.c.id == execution_id)
            .values(last_seq=X.c.last_seq + 1, updated_at=utc_now())
            .returning(X.c.last_seq)
        )
    ).scalar_one()
    ts = utc_now()
    await tx.conn.execute(
        insert(E).values(execution_id=execution_id, seq=seq, type=type_, ts=ts, data=data)
    )
    if type_ == APPROVAL_REQUESTED:
        await wakeups.announce(tx.conn, wakeups.WORKFLOW_APPROVALS)
    return {"seq": seq, "type": type_, "ts": ts, "data": data}


async def set_status(
    tx: Tx, execution_id: str, status: str, reason: str | None, **values: Any
) -> None:
    now = utc_now()
    finished = {"finished_at": now} if status in FINISHED else {}
    await tx.conn.execute(
        update(X)
        .where(X.c.id == execution_id)
        .values(status=status, status_reason=reason, updated_at=now, **finished, **values)
    )


async def read_events(
    conn: AsyncConnection, execution_id: str, after: int = 0, limit: int | None = None
) -> list[dict[str, Any]]:
    stmt = (
        select(E.c.seq, E.c.type, E.c.ts, E.c.data)
        .where(E.c.execution_id == execution_id, E.c.seq > after)
        .order_by(E.c.seq)
    )
    if limit is not None:
        stmt = stmt.limit(limit)
    rows = (await conn.execute(stmt)).all()
    return [
        {
            "seq": r.seq,
            "type": r.type,
            "ts": r.ts,
            "data": json.loads(r.data) if isinstance(r.data, str) else r.data,
        }
        for r in rows
    ]
