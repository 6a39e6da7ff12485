"""The analytics consumer: keeps ``usage_hourly``, ``tool_hourly`` and ``run_usage`` current.

It follows the event log through :class:`codeyard.store.consumers.LogConsumer` (cursor moved in
the same transaction as the increments), so the rollups are exact after any crash or restart,
and aggregate queries read a few thousand rows instead of millions of events.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from codeyard.analytics.fold import (
    DIMS,
    RUN_MEASURES,
    TYPES,
    USAGE_MEASURES,
    FoldInput,
    Increments,
    RunDims,
    fold,
)
from codeyard.store import schema
from codeyard.store.consumers import LogConsumer, LoggedEvent
from codeyard.store.upsert import upsert_add
from codeyard.store.writer import Tx

R, E = schema.runs, schema.events


def run_dims(row: Any) -> RunDims:
    repos = row.repo_ids or []
    return RunDims(
        project_id=row.project_id or "",
        repo_id=str(repos[0]) if repos else "",
        provider=row.provider or "",
        model=row.model or "",
        agent_id=row.agent_id or "",
        user_id=row.created_by or "",
    )


class Rollup(LogConsumer):
    name = "analytics"
    types = TYPES
    #: Nobody waits on the rollups: one transaction per second at most while agents talk,
    #: not one per message batch.
    gather_seconds = 1.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._dims: dict[str, RunDims] = {}
        self._call_tools: dict[str, str] = {}
        self._session_models: dict[str, str] = {}

    async def _load_dims(self, conn: AsyncConnection, run_ids: set[str]) -> None:
        missing = [r for r in run_ids if r not in self._dims]
        for start in range(0, len(missing), 500):
            part = missing[start : start + 500]
            stmt = select(
                R.c.id,
                R.c.project_id,
                R.c.repo_ids,
                R.c.provider,
                R.c.model,
                R.c.agent_id,
                R.c.created_by,
            ).where(R.c.id.in_(part))
            for row in (await conn.execute(stmt)).all():
                self._dims[row.id] = run_dims(row)
        if len(self._dims) > 50_000:  # bounded caches: both are re-read when needed
            self._dims = {k: self._dims[k] for k in run_ids if k in self._dims}
            self._session_models = {k: v for k, v in self._session_models.items() if k in run_ids}

    async def _load_calls(self, conn: AsyncConnection, events: Sequence[LoggedEvent]) -> None:
        """Tool names of calls made before a restart, for results read after it."""
        seen = {
            f"{e.run_id}/{json.loads(e.data).get('call_id')}"
            for e in events
            if e.type == "tool.call"
        }
        orphan_runs = {
            e.run_id
            for e in events
            if e.type == "tool.result"
            and (key := f"{e.run_id}/{json.loads(e.data).get('call_id')}") not in seen
            and key not in self._call_tools
        }
        for run_id in orphan_runs:
            rows = await conn.execute(
                select(E.c.data).where(E.c.run_id == run_id, E.c.type == "tool.call")
            )
            for (data_json,) in rows:
                data = json.loads(data_json)
                self._call_tools.setdefault(
                    f"{run_id}/{data.get('call_id')}", str(data.get("tool") or "?")
                )

    async def _load_models(self, conn: AsyncConnection, events: Sequence[LoggedEvent]) -> None:
        """Session models of runs whose session started before a restart."""
        seen = {e.run_id for e in events if e.type == "agent.session"}
        need = {
            e.run_id
            for e in events
            if e.type == "usage"
            and e.run_id not in seen
            and e.run_id not in self._session_models
            and not json.loads(e.data).get("model")
        }
        for run_id in need:
            self._session_models[run_id] = ""  # looked up once, even when there is none
            rows = await conn.execute(
                select(E.c.data)
                .where(E.c.run_id == run_id, E.c.type == "agent.session")
                .order_by(E.c.id.desc())
            )
            for (data_json,) in rows:
                model = json.loads(data_json).get("model")
                if model:
                    self._session_models[run_id] = str(model)
                    break

    async def prepare(self, conn: AsyncConnection, events: Sequence[LoggedEvent]) -> Increments:
        await self._load_dims(conn, {e.run_id for e in events})
        await self._load_calls(conn, events)
        await self._load_models(conn, events)
        inputs = [FoldInput(e.run_id, e.type, e.ts, e.data) for e in events]
        return fold(inputs, self._dims, self._call_tools, self._session_models)

    async def apply(self, tx: Tx, inc: Increments) -> None:
        await apply_increments(tx.conn, inc)


async def apply_increments(conn: AsyncConnection, inc: Increments) -> None:
    usage_rows = [
        {"hour": hour, **dict(zip(DIMS, dims, strict=True)), **values}
        for (hour, dims), values in inc.usage.items()
    ]
    await upsert_add(conn, schema.usage_hourly, usage_rows, ["hour", *DIMS], list(USAGE_MEASURES))
    tool_rows = [
        {
            "hour": hour,
            **dict(zip(DIMS, dims, strict=True)),
            "tool": tool,
            "le_ms": le,
            "calls": calls,
            "failures": failures,
        }
        for (hour, dims, tool, le), (calls, failures) in inc.tools.items()
    ]
    await upsert_add(
        conn,
        schema.tool_hourly,
        tool_rows,
        ["hour", *DIMS, "tool", "le_ms"],
        ["calls", "failures"],
    )
    run_rows = [
        {"run_id": run_id, "model": model, **values} for (run_id, model), values in inc.runs.items()
    ]
    await upsert_add(conn, schema.run_usage, run_rows, ["run_id", "model"], list(RUN_MEASURES))
