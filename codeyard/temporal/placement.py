"""Which worker host a queued run goes to: a live host that offers its provider, the least
loaded first, ties spread by rendezvous hashing on the run id."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from codeyard.domain.status import ACTIVE, RunStatus
from codeyard.store import fencing, runs, schema
from codeyard.store import workers as worker_rows
from codeyard.store.writer import Tx, Writer
from codeyard.workers.registry import STALE_AFTER, age

S = RunStatus


def able_hosts(
    rows: list[dict[str, Any]], live: list[str], provider: str, now: datetime
) -> list[str]:
    """Of the ``live`` hosts, those whose fresh ``workers`` row offers ``provider`` (pure).

    A live host with no row yet (still registering) is not excluded on that ground alone
    when no host has a row: placement must not stall while workers start."""
    fresh = {
        str(r["host"]): r
        for r in rows
        if str(r["host"]) in live and age(str(r["heartbeat_at"]), now) <= STALE_AFTER
    }
    if not fresh:
        return list(live)
    return sorted(
        host
        for host, row in fresh.items()
        if ((row.get("capabilities") or {}).get("providers") or {})
        .get(provider, {})
        .get("available")
    )


async def place(engine: AsyncEngine, writer: Writer, run_id: str, live: list[str]) -> str:
    """The least-loaded host of ``live`` that can serve the run, recorded on the run row;
    "" (and the run failed, saying why) when no live host can.

    A host can serve a run when its ``workers`` row is fresh and says the run's provider
    is available there. Ties go to the host that ranks first for this run id (rendezvous
    hashing), so runs spread over idle hosts instead of piling on the first poller."""
    async with engine.connect() as conn:
        run = await runs.get(conn, run_id)
        rows = [r for r in await worker_rows.list_all(conn) if r["kind"] == "temporal"]
        counted = await conn.execute(
            select(schema.runs.c.worker_host, func.count())
            .where(
                schema.runs.c.worker_host.in_(live),
                schema.runs.c.status.in_([str(s) for s in ACTIVE]),
                schema.runs.c.id != run_id,
            )
            .group_by(schema.runs.c.worker_host)
        )
        load = {str(host): int(n) for host, n in counted}
    candidates = able_hosts(rows, live, str(run["provider"]), datetime.now(UTC))
    # Written for the run as read (its attempt): a job fenced on one run, which the writer lets
    # other runs' appends pass while it waits for the job-order lock (``HostRuntime.drive``).
    with fencing.acting_for(run):
        if not candidates:
            reason = (
                f"No live worker can run provider '{run['provider']}' "
                f"(live workers: {', '.join(live) or 'none'}); install it on a worker host."
            )

            async def fail(tx: Tx) -> None:
                current = await runs.lock(tx, run_id)
                if S(current["status"]) == S.QUEUED:
                    await runs.set_status(tx, run_id, S.FAILED, reason)

            await writer.run(fail)
            return ""

        def rank(host: str) -> tuple[int, str]:
            return load.get(host, 0), hashlib.sha256(f"{run_id}/{host}".encode()).hexdigest()

        host = min(candidates, key=rank)
        await writer.run(lambda tx: runs.update_fields(tx, run_id, worker_host=host))
    return host
