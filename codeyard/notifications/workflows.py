"""A second outbox source: workflow approval steps (``workflow.approval.requested``).

Workflow events live in their own log (``workflow_events``, numbered per execution, with a
global id), not in the run event log the :class:`~.derive.Notifier` follows, so this source
follows that log the same way: a cursor in ``consumer_cursors`` moved in the same writer
transaction as the outbox rows it derives, starting at the end on a database that never ran it.
The rows then go through the ordinary delivery worker (channels, retries, quiet hours).

It looks when an approval request is written: the request is announced (``store.wakeups``,
by this process after its commit, and on PostgreSQL by a ``NOTIFY`` any process's request
sends), so it does not read the log every second (issue 15). Only while an announcement might
go unheard (``wakeups.hearing`` false: PostgreSQL's ``LISTEN`` connection not up) does it look
every ``poll_seconds`` again.

The outbox is keyed by (event id, target, user); to keep the two logs' id spaces apart a
workflow event's row carries the *negated* event id, and the execution id in ``run_id`` (the
column names the object the alert is about; nothing joins it to ``runs``). Who hears: the
execution's creator and every admin, if their preferences want ``approval`` alerts. The kind
is ``workflow.approval``: not answerable from the notification (a decision is a step decision,
``POST …/executions/{id}/steps/{key}/decide``, made in the app), so no one-tap token is minted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from codeyard.domain.errors import Conflict
from codeyard.notifications import store
from codeyard.notifications.messages import Notification
from codeyard.store import schema, wakeups
from codeyard.store.consumers import move_cursor, read_cursor
from codeyard.store.writer import Tx, Writer

log = logging.getLogger(__name__)
WE, WX, USERS = schema.workflow_events, schema.workflow_executions, schema.users
TYPE = "workflow.approval.requested"  # workflows.store.APPROVAL_REQUESTED
KIND = "workflow.approval"
#: The per-user preference that opts in (the same as for a run's approvals).
PREFERENCE = "approval"


def message(execution: dict[str, Any], data: dict[str, Any]) -> Notification:
    """The alert for one approval request of an execution. Pure."""
    name = str((execution.get("definition") or {}).get("name") or execution["id"])
    key, attempt = str(data.get("key") or ""), int(data.get("attempt") or 0)
    again = f" (again, attempt {attempt + 1})" if attempt else ""
    body = " ".join(str(data.get("message") or "").split())
    return Notification(
        kind=KIND,
        title=f"Workflow {name[:60]}: step '{key}' needs approval{again}",
        body=body if len(body) <= 180 else body[:179] + "…",
        tag=f"wfapproval-{execution['id']}-{key}-{attempt}",
        run_id=execution["id"],
        path=f"/workflows/executions/{execution['id']}",
        urgent=True,
        extra={"execution_id": execution["id"], "step": key, "attempt": attempt},
    )


class WorkflowApprovalNotifier:
    """Follows ``workflow_events`` for approval requests; rows into the outbox, exactly once."""

    name = "notifier.workflows"
    chunk = 500

    def __init__(
        self,
        engine: AsyncEngine,
        writer: Writer,
        on_new: Callable[[], None],
        poll_seconds: float = 1.0,
    ) -> None:
        self.engine = engine
        self.writer = writer
        self.on_new = on_new
        self.poll_seconds = poll_seconds
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._unfollow: Callable[[], None] | None = None
        self._reading = asyncio.Lock()
        #: The stored cursor as last written or read (None: not read yet), and the id up to
        #: which nothing more is to be done (>= the cursor).
        self._cursor: int | None = None
        self._covered = 0

    def start(self) -> None:
        self._unfollow = wakeups.follow(self.engine, wakeups.WORKFLOW_APPROVALS, self.wake)
        self._task = asyncio.create_task(self._loop(), name="codeyard-notifier-workflows")

    async def stop(self) -> None:
        unfollow, self._unfollow = self._unfollow, None
        if unfollow is not None:
            unfollow()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def wake(self) -> None:
        """An approval request was written (or announcements start or stop being heard)."""
        self._wake.set()

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            failed = True  # then retried after poll_seconds
            try:
                await self.catch_up()
                failed = False
            except (Conflict, OSError) as exc:
                log.warning("%s: %s; retrying", self.name, exc)
            except Exception:  # keep following the log; the cursor makes retrying safe
                log.exception("%s failed to apply events; retrying", self.name)
            if wakeups.hearing(self.engine) and not failed:
                await self._wake.wait()
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_seconds)

    async def catch_up(self) -> int:
        """Derive rows for every approval request after the cursor; returns how many.

        A poll that finds the log where it last looked costs one query (its highest id); the
        cursor moves only with approval requests (or past a long run of other events)."""
        async with self._reading:
            total = 0
            while True:
                async with self.engine.connect() as conn:
                    high = int((await conn.execute(select(func.max(WE.c.id)))).scalar() or 0)
                    if self._cursor is not None and high <= self._covered:
                        return total
                    cursor = await read_cursor(conn, self.name)
                    if cursor is None:  # first run: the past is not announced
                        await self.writer.run(self._move(high, high, []))
                        self._cursor = self._covered = high
                        return total
                    if cursor != self._cursor:  # first read, or another process moved it
                        self._cursor, self._covered = cursor, cursor
                    start = max(cursor, self._covered)
                    if high <= start:
                        return total
                    events = (
                        await conn.execute(
                            select(WE.c.id, WE.c.execution_id, WE.c.ts, WE.c.data)
                            .where(WE.c.id > start, WE.c.id <= high, WE.c.type == TYPE)
                            .order_by(WE.c.id)
                            .limit(self.chunk)
                        )
                    ).all()
                    upto = events[-1].id if len(events) == self.chunk else high
                    if not events and upto - cursor < self.chunk:
                        self._covered = upto
                        return total
                    rows = await self._rows(conn, events)
                await self.writer.run(self._move(cursor, upto, rows))
                self._cursor = self._covered = upto
                if rows:
                    self.on_new()
                total += len(events)

    @staticmethod
    def _move(cursor: int, upto: int, rows: list[dict[str, Any]]) -> Any:
        async def job(tx: Tx) -> None:
            await move_cursor(tx, WorkflowApprovalNotifier.name, cursor, upto)
            if rows:
                await store.add_outbox(tx, rows)

        return job

    async def _rows(self, conn: AsyncConnection, events: Sequence[Any]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        admins = [
            r[0] for r in (await conn.execute(select(USERS.c.id).where(USERS.c.role == "admin")))
        ]
        for ev in events:
            found = (await conn.execute(select(WX).where(WX.c.id == ev.execution_id))).first()
            if found is None:
                continue
            execution = dict(found._mapping)
            msg = message(execution, dict(ev.data or {}))
            users = sorted({execution.get("created_by") or "", *admins})
            wanted = [u for u in users if PREFERENCE in (await store.prefs(conn, u))["events"]]
            for user_id, target in await store.targets_of(conn, wanted) if wanted else []:
                out.append(
                    {
                        "event_id": -int(ev.id),
                        "run_id": execution["id"],
                        "user_id": user_id,
                        "target": target,
                        "kind": msg.kind,
                        "tag": msg.tag[:80],
                        "payload": msg.as_dict(),
                        "status": "pending",
                        "attempts": 0,
                        "next_attempt_at": ev.ts,
                        "created_at": ev.ts,
                    }
                )
        return out
