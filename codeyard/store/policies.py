"""Policies, policy sets, approvals and the decision audit log: plain rows."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, bindparam, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from codeyard.domain.errors import NotFound
from codeyard.domain.events import utc_now
from codeyard.store import schema, wakeups
from codeyard.store.pages import decode_cursor, page
from codeyard.store.records import ApprovalRecord
from codeyard.store.statement import RowWrites, Statement
from codeyard.store.writer import Tx

PO, PS, AP, PD = schema.policies, schema.policy_sets, schema.approvals, schema.policy_decisions
#: Written or read on every tool call that asks (``store.statement``).
_APPROVALS, _DECISIONS = RowWrites(AP), RowWrites(PD)
_RUN_SCOPED: Statement[tuple[Any, ...]] = Statement(
    select(PO).where(PO.c.scope_run_id == bindparam("run_id"))
)
_APPROVAL: Statement[tuple[Any, ...]] = Statement(
    select(AP).where(AP.c.id == bindparam("approval_id"))
)


def _d(row: Row[Any]) -> dict[str, Any]:
    return dict(row._mapping)


# --- policies -------------------------------------------------------------------------------


async def list_policies(
    conn: AsyncConnection, *, include_run_scoped: bool = False
) -> list[dict[str, Any]]:
    stmt = select(PO).order_by(PO.c.priority.desc(), PO.c.created_at, PO.c.id)
    if not include_run_scoped:
        stmt = stmt.where(PO.c.scope_run_id.is_(None))
    return [_d(r) for r in (await conn.execute(stmt)).all()]


async def policies_by_ids(conn: AsyncConnection, ids: list[str]) -> list[dict[str, Any]]:
    if not ids:
        return []
    rows = (await conn.execute(select(PO).where(PO.c.id.in_(ids)))).all()
    return [_d(r) for r in rows]


async def run_scoped_policies(conn: AsyncConnection, run_id: str) -> list[dict[str, Any]]:
    return await _RUN_SCOPED.mappings(conn, run_id=run_id)


async def any_run_scoped(conn: AsyncConnection) -> bool:
    """Whether any policy is scoped to a run."""
    stmt = select(PO.c.id).where(PO.c.scope_run_id.is_not(None)).limit(1)
    return (await conn.execute(stmt)).first() is not None


async def get_policy(conn: AsyncConnection, policy_id: str) -> dict[str, Any]:
    row = (await conn.execute(select(PO).where(PO.c.id == policy_id))).first()
    if row is None:
        raise NotFound(f"No policy '{policy_id}'. List them with GET /api/policies.")
    return _d(row)


async def insert_policy(tx: Tx, values: dict[str, Any]) -> None:
    await tx.conn.execute(PO.insert().values(**values))
    await wakeups.written(tx, wakeups.POLICIES)


async def update_policy(tx: Tx, policy_id: str, values: dict[str, Any]) -> None:
    await tx.conn.execute(
        update(PO).where(PO.c.id == policy_id).values(updated_at=utc_now(), **values)
    )
    await wakeups.written(tx, wakeups.POLICIES)


async def delete_policy(tx: Tx, policy_id: str) -> None:
    await tx.conn.execute(delete(PO).where(PO.c.id == policy_id))
    await wakeups.written(tx, wakeups.POLICIES)


# --- policy sets ----------------------------------------------------------------------------


async def list_sets(conn: AsyncConnection) -> list[dict[str, Any]]:
    return [
        _d(r) for r in (await conn.execute(select(PS).order_by(PS.c.created_at, PS.c.id))).all()
    ]


async def sets_by_ids(conn: AsyncConnection, ids: list[str]) -> list[dict[str, Any]]:
    if not ids:
        return []
    by_id = {r.id: _d(r) for r in (await conn.execute(select(PS).where(PS.c.id.in_(ids)))).all()}
    return [by_id[i] for i in ids if i in by_id]


async def get_set(conn: AsyncConnection, set_id: str) -> dict[str, Any]:
    row = (await conn.execute(select(PS).where(PS.c.id == set_id))).first()
    if row is None:
        raise NotFound(f"No policy set '{set_id}'. List them with GET /api/policy-sets.")
    return _d(row)


async def insert_set(tx: Tx, values: dict[str, Any]) -> None:
    await tx.conn.execute(PS.insert().values(**values))
    await wakeups.written(tx, wakeups.POLICIES)


async def update_set(tx: Tx, set_id: str, values: dict[str, Any]) -> None:
    await tx.conn.execute(
        update(PS).where(PS.c.id == set_id).values(updated_at=utc_now(), **values)
    )
    await wakeups.written(tx, wakeups.POLICIES)


async def delete_set(tx: Tx, set_id: str) -> None:
    await tx.conn.execute(delete(PS).where(PS.c.id == set_id))
    await wakeups.written(tx, wakeups.POLICIES)


# --- approvals ------------------------------------------------------------------------------


async def insert_approval(tx: Tx, values: dict[str, Any]) -> None:
    await _APPROVALS.insert(tx.conn, values)


async def get_approval(conn: AsyncConnection, approval_id: str) -> dict[str, Any]:
    row = await _APPROVAL.first_mapping(conn, approval_id=approval_id)
    if row is None:
        raise NotFound(f"No approval '{approval_id}'. List pending ones with GET /api/approvals.")
    return row


async def update_approval(tx: Tx, approval_id: str, values: dict[str, Any]) -> None:
    await _APPROVALS.update(tx.conn, approval_id, values)


async def list_approvals(
    conn: AsyncConnection, *, status: str | None, run_id: str | None, limit: int, cursor: str | None
) -> tuple[list[ApprovalRecord], str | None]:
    stmt = select(AP).order_by(AP.c.created_at.desc(), AP.c.id.desc()).limit(limit + 1)
    if status:
        stmt = stmt.where(AP.c.status == status)
    if run_id:
        stmt = stmt.where(AP.c.run_id == run_id)
    after = decode_cursor(cursor)
    if after is not None:
        stmt = stmt.where(
            (AP.c.created_at < after[0]) | ((AP.c.created_at == after[0]) & (AP.c.id < after[1]))
        )
    rows = [ApprovalRecord.of(_d(r)) for r in (await conn.execute(stmt)).all()]
    return page(rows, limit, key=lambda r: [r.created_at, r.id])


async def get_approval_record(conn: AsyncConnection, approval_id: str) -> ApprovalRecord:
    """:func:`get_approval`, typed."""
    return ApprovalRecord.of(await get_approval(conn, approval_id))


async def pending_of_run(conn: AsyncConnection, run_id: str) -> list[dict[str, Any]]:
    stmt = (
        select(AP).where(AP.c.run_id == run_id, AP.c.status == "pending").order_by(AP.c.created_at)
    )
    return [_d(r) for r in (await conn.execute(stmt)).all()]


# --- decisions ------------------------------------------------------------------------------


async def insert_decision(tx: Tx, values: dict[str, Any]) -> None:
    await _DECISIONS.insert(tx.conn, values)


async def list_decisions(
    conn: AsyncConnection, *, run_id: str | None, limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    stmt = select(PD).order_by(PD.c.id.desc()).limit(limit + 1)
    if run_id:
        stmt = stmt.where(PD.c.run_id == run_id)
    after = decode_cursor(cursor)
    if after is not None:
        stmt = stmt.where(PD.c.id < int(after))
    rows = [_d(r) for r in (await conn.execute(stmt)).all()]
    return page(rows, limit, key=lambda r: r["id"])
