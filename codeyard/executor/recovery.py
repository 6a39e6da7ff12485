"""Start-up after a crash: stop what the dead server left running, interrupt the runs it was
working on (their pending approvals stay pending), and resume them when ``auto_resume`` is on.

Order matters: leftover process groups are killed (and gone) before any run is marked
interrupted, so a resumed run never shares its worktree with a copy of its own last step.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from codeyard.agents.process import GroupRecord, still_running, stop_leftovers
from codeyard.domain.status import RunStatus
from codeyard.store import approvals as approval_door
from codeyard.store import processes, runs, schema
from codeyard.store import settings as settings_store
from codeyard.store.writer import Tx, Writer

log = logging.getLogger(__name__)
S = RunStatus
WORKING = frozenset({S.PREPARING, S.RUNNING, S.WAITING})
#: Crash-resumes in a row (without progress) after which ``auto_resume`` leaves a run alone.
MAX_CRASH_RESUMES = 3
#: Seconds before the n-th crash-resume in a row: bounded back-off. Even the first waits a
#: moment, so that start-up answers its first request before a hundred runs prepare at once
#: (with no wait, restart to healthy took 3.5 s with 100 runs resuming, against ~1.9 s).
BACKOFF = (0.5, 1.0, 2.0)
RESTART_REASON = "server restarted"
GAVE_UP = (
    "server restarted; not resumed automatically: it was interrupted by "
    f"{MAX_CRASH_RESUMES} restarts in a row without progress (resume it by hand)"
)


class RunProcessRecorder:
    """Records a run's process groups in ``run_processes`` (``agents.process.recorder``)."""

    def __init__(self, writer: Writer, run_id: str) -> None:
        self._writer, self._run_id = writer, run_id

    async def started(self, record: GroupRecord) -> None:
        async def job(tx: Tx) -> None:
            await processes.add(
                tx, self._run_id, record.pgid, record.start_ticks, record.boot_id, record.kind
            )

        await self._writer.run(job)

    async def ended(self, record: GroupRecord) -> None:
        async def job(tx: Tx) -> None:
            await processes.remove(tx, self._run_id, record.pgid, record.start_ticks)

        await self._writer.run(job)


@dataclass(slots=True)
class Recovered:
    """What start-up found and did (logged; the bench and tests read it)."""

    killed: list[int] = field(default_factory=list)
    interrupted: list[str] = field(default_factory=list)
    #: (run id, seconds to wait first) for runs to resume now.
    resume: list[tuple[str, float]] = field(default_factory=list)
    gave_up: list[str] = field(default_factory=list)
    seconds: float = 0.0
    cpu_seconds: float = 0.0


def _record(row: dict[str, object]) -> GroupRecord:
    return GroupRecord(
        int(str(row["pgid"])), int(str(row["start_ticks"])), str(row["boot_id"]), str(row["kind"])
    )


async def forget_finished(engine: AsyncEngine, writer: Writer, run_id: str) -> None:
    """After a run's task ends: drop records of its groups that are gone (a group stopped on a
    path that could not await its own ``untrack``), so stale rows never outlive their ids.
    Called under a fence (a worker host, for the attempt it drove), nothing is dropped once
    the run moved to another attempt (``StaleAttempt``): its records are the new taker's."""
    rows = await processes.of_run(engine, run_id)
    if not rows:
        return
    alive = set(still_running([_record(r) for r in rows]))
    gone = [int(str(r["id"])) for r in rows if _record(r) not in alive]

    async def forget(tx: Tx) -> None:
        await tx.check_fence(run_id)
        await processes.forget(tx, gone)

    await writer.run(forget)


async def recover(engine: AsyncEngine, writer: Writer) -> Recovered:
    started, cpu = time.perf_counter(), time.process_time()
    out = Recovered()
    async with engine.connect() as conn:
        recorded = await processes.every(conn)
    records = [_record(r) for r in recorded]
    out.killed = await stop_leftovers(records)
    await writer.run(lambda tx: processes.forget(tx, [int(str(r["id"])) for r in recorded]))

    async with engine.connect() as conn:
        auto = bool((await settings_store.load(conn)).get("auto_resume"))
        stranded = await runs.ids_in(conn, WORKING)
        stopped = (
            await conn.execute(
                select(schema.runs.c.id)
                .where(
                    schema.runs.c.status == str(S.INTERRUPTED),
                    schema.runs.c.resume_at_start.is_(True),
                )
                .order_by(schema.runs.c.number)
            )
        ).all()
    # One transaction for all of them: a transaction per run was most of the recovery's time
    # with 100 runs (and a restart is healthy only once it is done).
    verdicts = await writer.run(_interrupt_job(stranded, auto)) if stranded else []
    for run_id, verdict in zip(stranded, verdicts, strict=True):
        out.interrupted.append(run_id)
        if verdict is None:
            out.gave_up.append(run_id)
        elif auto:
            out.resume.append((run_id, verdict))
    if auto:  # stopped cleanly last time (no crash): resumed without counting
        out.resume += [(row.id, 0.0) for row in stopped]
    out.seconds = time.perf_counter() - started
    out.cpu_seconds = time.process_time() - cpu
    if out.killed or out.interrupted:
        log.warning(
            "recovered from an unclean stop in %.3f s (%.3f s CPU): killed %d leftover "
            "processes, interrupted %d runs, resuming %d, gave up on %d",
            out.seconds,
            out.cpu_seconds,
            len(out.killed),
            len(out.interrupted),
            len(out.resume),
            len(out.gave_up),
        )
    return out


def _interrupt_job(run_ids: list[str], auto: bool) -> Callable[[Tx], Awaitable[list[float | None]]]:
    async def job(tx: Tx) -> list[float | None]:
        return [await _interrupt(tx, run_id, auto) for run_id in run_ids]

    return job


async def _interrupt(tx: Tx, run_id: str, auto: bool) -> float | None:
    """Mark a run the dead server was working on ``interrupted``; pending approvals stay
    pending. Returns the back-off before resuming it, or None when auto-resume gives up."""
    run = await runs.lock(tx, run_id)
    await approval_door.release_unfinished(tx, run_id)
    crashes = int(run["crash_resumes"] or 0)
    if auto and crashes >= MAX_CRASH_RESUMES:
        await runs.set_status(tx, run_id, S.INTERRUPTED, GAVE_UP, resume_at_start=False)
        await approval_door.recount(tx, run_id)
        return None
    await runs.set_status(
        tx,
        run_id,
        S.INTERRUPTED,
        RESTART_REASON,
        resume_at_start=True,
        crash_resumes=crashes + 1 if auto else crashes,
    )
    await approval_door.recount(tx, run_id)
    return BACKOFF[min(crashes, len(BACKOFF) - 1)]


async def requeue(tx: Tx, run_id: str) -> bool:
    """``interrupted → queued`` for an automatic resume; False if the run moved meanwhile."""
    run = await runs.lock(tx, run_id)
    if run["status"] != S.INTERRUPTED or not run["resume_at_start"]:
        return False
    await runs.set_status(tx, run_id, S.QUEUED, "resumed automatically", resume_at_start=False)
    return True
