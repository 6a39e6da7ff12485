"""SQL for notification tables. Writes take the writer's ``Tx``; reads take a connection.

Most installs have no notification target at all (no push subscription, device or channel),
and then no event calls for the notifier's reads of the run, the admins and the targets
(issue 15: three statements per notifiable event). :func:`any_targets` answers from memory
while this process hears every write of a target: each one here (:func:`add_subscription`,
:func:`add_device`, :func:`add_channel`, :func:`remove_subscription`, :func:`remove_target`,
the one door for target writes) announces it (``store.wakeups``, topic
``notification_targets``: this process is woken after the commit, others through PostgreSQL's
``NOTIFY`` on their ``LISTEN`` connection), which drops the answer. While a write might go
unheard (``wakeups.hearing`` false) the tables are read every time.
"""

from __future__ import annotations

import functools
import hashlib
from typing import Any

from sqlalchemy import delete, literal, or_, select, union_all, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from codeyard.domain.events import utc_now
from codeyard.store import schema, wakeups
from codeyard.store.upsert import insert_ignore
from codeyard.store.writer import Tx

SUBS, DEV, CH = schema.push_subscriptions, schema.devices, schema.notification_channels
PREFS, RN, OUT = schema.notification_prefs, schema.run_notify, schema.notification_outbox
LOG, TOK = schema.notification_deliveries, schema.action_tokens
DEFAULT_PREFS: dict[str, Any] = {
    "events": ["approval", "budget", "run.input", "run.finished", "run.failed", "run.attention"],
    "quiet_start": None,
    "quiet_end": None,
    "timezone": "UTC",
}


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@functools.cache
def _any_statement() -> Any:
    """One row if any target exists, else none (built once)."""
    return select(literal(1)).where(or_(*(select(t.c.id).exists() for t in (SUBS, DEV, CH))))


async def _read_any(conn: AsyncConnection) -> bool:
    return (await conn.execute(_any_statement())).first() is not None


_ANY = wakeups.Known(wakeups.NOTIFICATION_TARGETS, _read_any)


async def any_targets(engine: AsyncEngine) -> bool:
    """Whether any user has a push subscription, device or channel (``wakeups.Known``: from
    memory while every write is heard)."""
    return await _ANY.get(engine)


async def _announce_targets(tx: Tx) -> None:
    """In a job that added or removed a target: every process's answer is dropped (this one's
    after the commit, the others' when PostgreSQL delivers the announcement)."""
    await wakeups.written(tx, wakeups.NOTIFICATION_TARGETS)


async def add_subscription(tx: Tx, values: dict[str, Any]) -> None:
    """A browser's push subscription (one per endpoint: the same endpoint again replaces it)."""
    await tx.conn.execute(delete(SUBS).where(SUBS.c.endpoint_hash == values["endpoint_hash"]))
    await tx.conn.execute(SUBS.insert().values(**values))
    await _announce_targets(tx)


async def remove_subscription(tx: Tx, endpoint_hash: str, user_id: str) -> int:
    result = await tx.conn.execute(
        delete(SUBS).where(SUBS.c.endpoint_hash == endpoint_hash, SUBS.c.user_id == user_id)
    )
    if result.rowcount:
        await _announce_targets(tx)
    return int(result.rowcount or 0)


async def add_device(tx: Tx, row: dict[str, Any]) -> None:
    """A native device (one per platform token: the same token again replaces it)."""
    await tx.conn.execute(delete(DEV).where(DEV.c.token_hash == row["token_hash"]))
    await tx.conn.execute(DEV.insert().values(**row))
    await _announce_targets(tx)


async def add_channel(tx: Tx, row: dict[str, Any]) -> None:
    await tx.conn.execute(CH.insert().values(**row))
    await _announce_targets(tx)


async def prefs(conn: AsyncConnection, user_id: str) -> dict[str, Any]:
    row = (await conn.execute(select(PREFS).where(PREFS.c.user_id == user_id))).first()
    if row is None:
        return dict(DEFAULT_PREFS)
    return {k: row._mapping[k] for k in DEFAULT_PREFS}


async def save_prefs(tx: Tx, user_id: str, values: dict[str, Any]) -> None:
    await tx.conn.execute(delete(PREFS).where(PREFS.c.user_id == user_id))
    await tx.conn.execute(PREFS.insert().values(user_id=user_id, updated_at=utc_now(), **values))


async def run_notify(conn: AsyncConnection, run_id: str) -> bool | None:
    return (await conn.execute(select(RN.c.notify).where(RN.c.run_id == run_id))).scalar()


async def set_run_notify(tx: Tx, run_id: str, notify: bool) -> None:
    await tx.conn.execute(delete(RN).where(RN.c.run_id == run_id))
    await tx.conn.execute(RN.insert().values(run_id=run_id, notify=notify, updated_at=utc_now()))


async def targets_of(conn: AsyncConnection, user_ids: list[str]) -> list[tuple[str, str]]:
    """Every (user_id, target key) a notification for these users goes to: web push
    subscriptions, then devices, then channels, in one statement."""
    kinds = ((SUBS, "webpush"), (DEV, "device"), (CH, "channel"))
    parts = [
        select(literal(rank).label("kind"), table.c.user_id, table.c.id).where(
            table.c.user_id.in_(user_ids)
        )
        for rank, (table, _prefix) in enumerate(kinds)
    ]
    rows = await conn.execute(union_all(*parts).order_by("kind"))
    return [(u, f"{kinds[k][1]}:{i}") for k, u, i in rows.all()]


async def add_outbox(tx: Tx, rows: list[dict[str, Any]]) -> None:
    await insert_ignore(tx.conn, OUT, rows, ["event_id", "target", "user_id"])


async def sent_alerts(conn: AsyncConnection, tag: str) -> list[dict[str, Any]]:
    """Approval alerts already delivered under ``tag`` (to be replaced when it is answered)."""
    rows = await conn.execute(
        select(OUT.c.target, OUT.c.user_id).where(
            OUT.c.tag == tag,
            OUT.c.kind.in_(("approval", "budget")),
            OUT.c.status.in_(("sent", "sending")),
        )
    )
    return [dict(r._mapping) for r in rows.all()]


async def alert_receipt(conn: AsyncConnection, tag: str, target: str) -> dict[str, Any] | None:
    """What the receiver said it made for the alert sent under ``tag`` to ``target`` (a Slack
    message's channel and ts), so its replacement can edit that message in place."""
    rows = await conn.execute(
        select(OUT.c.payload)
        .where(
            OUT.c.tag == tag,
            OUT.c.target == target,
            OUT.c.kind.in_(("approval", "budget")),
            OUT.c.status == "sent",
        )
        .order_by(OUT.c.id.desc())
    )
    for (payload,) in rows.all():
        receipt = (payload or {}).get("receipt")
        if isinstance(receipt, dict):
            return receipt
    return None


async def keep_receipt(
    tx: Tx, outbox_id: int, payload: dict[str, Any], receipt: dict[str, Any]
) -> None:
    """Keep the receipt in the row's JSON payload (no schema change; Notification ignores it)."""
    await tx.conn.execute(
        update(OUT).where(OUT.c.id == outbox_id).values(payload={**payload, "receipt": receipt})
    )


async def due(conn: AsyncConnection, now: str, limit: int) -> list[dict[str, Any]]:
    rows = await conn.execute(
        select(OUT)
        .where(OUT.c.status == "pending", OUT.c.next_attempt_at <= now)
        .order_by(OUT.c.next_attempt_at, OUT.c.id)
        .limit(limit)
    )
    return [dict(r._mapping) for r in rows.all()]


async def next_due(conn: AsyncConnection) -> str | None:
    stmt = select(OUT.c.next_attempt_at).where(OUT.c.status == "pending")
    return (await conn.execute(stmt.order_by(OUT.c.next_attempt_at).limit(1))).scalar()


async def claim(tx: Tx, outbox_id: int) -> bool:
    """Mark a pending row as being sent (False if another worker or a restart got it)."""
    result = await tx.conn.execute(
        update(OUT)
        .where(OUT.c.id == outbox_id, OUT.c.status == "pending")
        .values(status="sending", attempts=OUT.c.attempts + 1)
    )
    return result.rowcount == 1


async def finish(tx: Tx, outbox_id: int, **values: Any) -> None:
    await tx.conn.execute(update(OUT).where(OUT.c.id == outbox_id).values(**values))


async def release_unfinished(tx: Tx) -> int:
    """At start: rows a crash left in ``sending`` go back to ``pending`` (sent again, same id)."""
    result = await tx.conn.execute(
        update(OUT).where(OUT.c.status == "sending").values(status="pending")
    )
    return int(result.rowcount or 0)


async def log_delivery(tx: Tx, values: dict[str, Any]) -> None:
    await tx.conn.execute(LOG.insert().values(at=utc_now(), **values))


async def deliveries(
    conn: AsyncConnection, user_id: str, target: str | None, limit: int
) -> list[dict[str, Any]]:
    stmt = select(LOG).where(LOG.c.user_id == user_id)
    if target:
        stmt = stmt.where(LOG.c.target == target)
    rows = await conn.execute(stmt.order_by(LOG.c.id.desc()).limit(limit))
    return [dict(r._mapping) for r in rows.all()]


async def outbox_of(conn: AsyncConnection, run_id: str) -> list[dict[str, Any]]:
    rows = await conn.execute(select(OUT).where(OUT.c.run_id == run_id).order_by(OUT.c.id))
    return [dict(r._mapping) for r in rows.all()]


async def target_row(conn: AsyncConnection, target: str) -> dict[str, Any] | None:
    prefix, _, ident = target.partition(":")
    table = {"webpush": SUBS, "device": DEV, "channel": CH}.get(prefix)
    if table is None:
        return None
    row = (await conn.execute(select(table).where(table.c.id == ident))).first()
    return None if row is None else dict(row._mapping)


async def remove_target(tx: Tx, target: str) -> None:
    prefix, _, ident = target.partition(":")
    table = {"webpush": SUBS, "device": DEV, "channel": CH}[prefix]
    removed = await tx.conn.execute(delete(table).where(table.c.id == ident))
    if removed.rowcount:
        await _announce_targets(tx)


async def touch_target(tx: Tx, target: str) -> None:
    prefix, _, ident = target.partition(":")
    table = {"webpush": SUBS, "device": DEV}.get(prefix)
    if table is not None:
        await tx.conn.execute(
            update(table).where(table.c.id == ident).values(last_success_at=utc_now())
        )


async def list_rows(conn: AsyncConnection, table: Any, user_id: str) -> list[dict[str, Any]]:
    rows = await conn.execute(
        select(table).where(table.c.user_id == user_id).order_by(table.c.created_at)
    )
    return [dict(r._mapping) for r in rows.all()]


async def record_token(tx: Tx, nonce: str, approval_id: str, user_id: str, expires: str) -> None:
    await tx.conn.execute(
        TOK.insert().values(
            nonce=nonce, approval_id=approval_id, user_id=user_id, expires_at=expires
        )
    )


async def use_token(tx: Tx, nonce: str, approval_id: str, user_id: str) -> bool:
    result = await tx.conn.execute(
        update(TOK)
        .where(
            TOK.c.nonce == nonce,
            TOK.c.approval_id == approval_id,
            TOK.c.user_id == user_id,
            TOK.c.used_at.is_(None),
        )
        .values(used_at=utc_now())
    )
    return result.rowcount == 1


async def token_unused(conn: AsyncConnection, nonce: str) -> bool:
    row = (await conn.execute(select(TOK.c.used_at).where(TOK.c.nonce == nonce))).first()
    return row is not None and row[0] is None


async def prune(tx: Tx, before: str) -> int:
    """Forget finished outbox rows, delivery log entries and action tokens older than
    ``before`` (pending rows stay whatever their age)."""
    done = ("sent", "skipped", "failed")
    removed = 0
    for stmt in (
        delete(OUT).where(OUT.c.status.in_(done), OUT.c.created_at < before),
        delete(LOG).where(LOG.c.at < before),
        delete(TOK).where(TOK.c.expires_at < before),
    ):
        removed += int((await tx.conn.execute(stmt)).rowcount or 0)
    return removed
