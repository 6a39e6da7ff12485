"""The notifier: event log → outbox rows (one per event x target x user), exactly once.

Runs as a :class:`~codeyard.store.consumers.LogConsumer`, so the outbox rows and the cursor
commit together; the unique key (event, target, user) makes even a replayed chunk harmless.
Who hears about a run: its creator and every admin ('' stands for the admin token). Per-user
preferences pick the kinds; a run's ``notify`` flag mutes it (false) or opts its finish and
failure in (true). Approval alerts are due only after the grace delay, and the worker skips
them if the approval was answered meanwhile.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from codeyard.notifications import store
from codeyard.notifications.messages import TYPES, Notification, from_event
from codeyard.store import schema
from codeyard.store.consumers import LogConsumer, LoggedEvent
from codeyard.store.writer import Tx

R, RN, USERS = schema.runs, schema.run_notify, schema.users
TS_FORMAT = "%Y-%m-%dT%H:%M:%S.%f"


def shift(ts: str, seconds: float) -> str:
    """An event timestamp (``…Z``, ms) moved by ``seconds``, in the same format."""
    moment = datetime.strptime(ts.rstrip("Z"), TS_FORMAT).replace(tzinfo=UTC)
    return (moment + timedelta(seconds=seconds)).strftime(TS_FORMAT)[:-3] + "Z"


class Notifier(LogConsumer):
    name = "notifier"
    types = TYPES
    start_at_end = True

    def __init__(self, *args: Any, grace_seconds: float, on_new: Callable[[], None]) -> None:
        super().__init__(*args)
        self.grace_seconds = grace_seconds
        self._on_new = on_new

    def applied_hook(self) -> None:
        self._on_new()

    def nothing_to_write(self, prepared: list[dict[str, Any]]) -> bool:
        # A status change nobody is told about costs no transaction (most of them: the
        # outbox key makes deriving one again after a restart harmless).
        return not prepared

    async def _run(self, conn: AsyncConnection, run_id: str) -> dict[str, Any] | None:
        """The run's row, with its ``notify`` flag (None: not set) in the same statement."""
        row = (
            await conn.execute(
                select(R.c.id, R.c.number, R.c.title, R.c.created_by, RN.c.notify)
                .outerjoin(RN, RN.c.run_id == R.c.id)
                .where(R.c.id == run_id)
            )
        ).first()
        return None if row is None else dict(row._mapping)

    async def _admins(self, conn: AsyncConnection) -> list[str]:
        rows = await conn.execute(select(USERS.c.id).where(USERS.c.role == "admin"))
        return [r[0] for r in rows.all()]

    async def prepare(
        self, conn: AsyncConnection, events: Sequence[LoggedEvent]
    ) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        admins: list[str] | None = None
        reachable: bool | None = None
        for ev in events:
            data = json.loads(ev.data)
            # Whether the event calls for a notification does not depend on the run's row
            # (only its text does): most status changes call for none and cost no query.
            if from_event(ev.type, data, {"id": ev.run_id}) is None:
                continue
            # With no target anywhere (no push subscription, device or channel: known from
            # memory, ``store.any_targets``) no one can be told: no read of the run, the
            # admins or the targets (an answered alert's replacement goes to a target too).
            if reachable is None:
                reachable = await store.any_targets(self.engine)
            if not reachable:
                break
            run = await self._run(conn, ev.run_id)
            if run is None:
                continue
            flag = run.pop("notify")
            msg = from_event(ev.type, data, run)
            if msg is None:
                continue
            if msg.kind == "approval.resolved":
                for sent in await store.sent_alerts(conn, msg.tag):
                    rows.append(self._row(ev, msg, sent["user_id"], sent["target"], ev.ts))
                continue
            if flag is False:
                continue
            if admins is None:
                admins = await self._admins(conn)
            users = sorted({run["created_by"] or "", *admins})
            # Who can be reached at all first: a user without a target needs no preferences
            # read (most users of a small install have none).
            targets = await store.targets_of(conn, users)
            wanted = set()
            for user_id in sorted({user for user, _target in targets}):
                prefs = await store.prefs(conn, user_id)
                opted_in = flag is True and msg.kind in ("run.finished", "run.failed")
                if msg.kind in prefs["events"] or opted_in:
                    wanted.add(user_id)
            due = ev.ts
            if msg.kind in ("approval", "budget"):
                due = shift(ev.ts, self.grace_seconds)
            for user_id, target in targets:
                if user_id in wanted:
                    rows.append(self._row(ev, msg, user_id, target, due))
        return rows

    @staticmethod
    def _row(
        ev: LoggedEvent, msg: Notification, user_id: str, target: str, due: str
    ) -> dict[str, Any]:
        return {
            "event_id": ev.id,
            "run_id": ev.run_id,
            "user_id": user_id,
            "target": target,
            "kind": msg.kind,
            "tag": msg.tag[:80],
            "payload": msg.as_dict(),
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": due,
            "created_at": ev.ts,
        }

    async def apply(self, tx: Tx, rows: list[dict[str, Any]]) -> None:
        await store.add_outbox(tx, rows)
