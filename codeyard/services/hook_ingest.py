"""Claude Code hooks as an extra event source for a run whose CLI Codeyard did not start.

The person creates a run to hold the record (``POST /api/runs`` with ``draft: true``), points
the CLI's hooks at ``POST /api/runs/{id}/hook`` (or ``/api/hooks/claude``, which finds the run
by the payload's ``session_id``), and the run's event log, transcript, stream and analytics
show what that CLI did. A run Codeyard is driving itself refuses hooks (409): its own adapter
already records every step, and two sources would duplicate them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from codeyard.agents.claude import hooks
from codeyard.domain.errors import Conflict, NotFound
from codeyard.domain.status import ACTIVE, RunStatus
from codeyard.services.context import Services
from codeyard.store import runs, schema
from codeyard.store.writer import Tx


async def _by_session(svc: Services, session_id: Any) -> str:
    if not isinstance(session_id, str) or not session_id:
        raise NotFound(
            "Say which run the hook is for: ?run=<id or number>, or a payload whose session_id "
            "belongs to a run (POST /api/runs/{id}/hook records a first SessionStart)."
        )
    R = schema.runs
    async with svc.engine.connect() as conn:
        found = (
            await conn.execute(select(R.c.id).where(R.c.session_id == session_id).limit(1))
        ).scalar_one_or_none()
    if found is None:
        raise NotFound(
            f"No run has session '{session_id}'. Send this CLI's hooks to "
            "POST /api/runs/{id}/hook of the run that should record them."
        )
    return str(found)


async def ingest(svc: Services, run_ref: str | None, payload: dict[str, Any]) -> dict[str, Any]:
    run_id = run_ref or await _by_session(svc, payload.get("session_id"))
    async with svc.engine.connect() as conn:
        run = await runs.get(conn, run_id)
    if RunStatus(run["status"]) in ACTIVE:
        raise Conflict(
            f"Run {run['number']} is {run['status']}: Codeyard drives its agent and records "
            "every step itself. Hooks are for a CLI started outside Codeyard; give it a draft "
            "run of its own.",
            current_status=run["status"],
        )
    events = hooks.normalize(payload)
    session_id = payload.get("session_id")

    async def job(tx: Tx) -> None:
        await runs.lock(tx, run["id"])
        if events:
            await tx.emit(run["id"], events)
        if isinstance(session_id, str) and session_id and run["session_id"] != session_id:
            await runs.update_fields(tx, run["id"], session_id=session_id)

    await svc.writer.run(job)
    return {
        "run_id": run["id"],
        "hook": payload.get("hook_event_name"),
        "recorded": [e.type for e in events],
    }
