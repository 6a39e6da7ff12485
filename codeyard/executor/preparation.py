"""A new run's preparation (``preparing``: its worktrees, branch and port lease) and the early
start of its first turn.

Apart from the turn loop (``executor.turns``) because it happens once per run, before any turn,
and carries its own ordering: the first turn's agent is spawned as soon as the worktrees exist,
while the preparation and the turn's start are written in one transaction beside it
(:meth:`Preparer.record_start`); the turn loop holds the agent's calls into the run until then.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from codeyard.agents import timing
from codeyard.domain.events import ErrorEvent
from codeyard.domain.status import RunStatus
from codeyard.executor.handle import RunHandle
from codeyard.executor.turn_options import OptionParts, TurnOptions
from codeyard.preview import leases
from codeyard.run_workspace.pool import WorktreePool
from codeyard.run_workspace.prepare import prepare_worktrees
from codeyard.store import runs
from codeyard.store.writer import Tx, Writer

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Early:
    """A new run's first turn, known before it is recorded (``create``, the run's prompt):
    its options' parts were read beside preparation's git work (``reading``), and its agent
    starts as soon as the worktrees exist, while the preparation and the turn's start are
    written (one transaction). ``run``: the row as preparation left it, not yet stored."""

    run: dict[str, Any]
    reading: asyncio.Future[OptionParts]


async def fail_run(tx: Tx, run_id: str, reason: str) -> None:
    """The run fails (preparation or a turn): its error, then ``failed``."""
    await tx.emit_one(run_id, ErrorEvent(message=reason, detail=None))
    await runs.set_status(tx, run_id, RunStatus.FAILED, reason)


class Preparer:
    """Prepares new runs' worktrees and records them (with the first turn's start, when its
    agent started early). ``begin_turn``: the turn loop's start of a turn, in a transaction."""

    def __init__(
        self,
        engine: AsyncEngine,
        writer: Writer,
        options: TurnOptions,
        worktree_root: Path,
        bash_timeout: float,
        pool: WorktreePool | None,
        begin_turn: Callable[[Tx, RunHandle], Awaitable[object]],
    ) -> None:
        self._engine = engine
        self._writer = writer
        self._options = options
        self._worktree_root = worktree_root
        self._bash_timeout = bash_timeout
        self._pool = pool
        self._begin_turn = begin_turn

    async def prepare(
        self,
        run: dict[str, Any],
        leasing: asyncio.Future[leases.Lease],
        reading: asyncio.Future[OptionParts] | None,
    ) -> dict[str, Any] | None:
        """Create the worktrees (``preparing``): the run as prepared (its branch and worktrees,
        written by :meth:`record_prepared`); a failure fails the run and returns None.

        The branch and worktree paths are on the run row before anything is made (so a crash
        while preparing leaves nothing delete, discard or the next prepare cannot find).
        ``leasing``: the run's port lease being taken meanwhile, ``reading``: the first turn's
        options; a failed run gives the lease up."""
        run_id = run["id"]
        if run["status"] != RunStatus.PREPARING:  # not yet written by the attempt's take
            await self._writer.run(lambda tx: runs.set_status(tx, run_id, RunStatus.PREPARING))

        async def record_intent(branch: str, intent: dict[str, Any]) -> None:
            await self._writer.run(
                lambda tx: runs.update_fields(tx, run_id, branch=branch, workspace_intent=intent)
            )

        try:
            branch, worktrees = await prepare_worktrees(
                self._engine,
                run,
                self._worktree_root,
                self._writer,
                self._bash_timeout,
                record_intent,
                sandbox=await self._options.sandbox_for(run),
                pool=self._pool,
            )
        except Exception as exc:  # reported on the run, which fails
            log.warning("preparing run %s failed: %s", run_id, exc)
            reason = f"Could not prepare the workspace: {exc}"

            async def fail(tx: Tx) -> None:  # everything made was taken down again
                await runs.update_fields(tx, run_id, branch=run["branch"], workspace_intent=None)
                await leases.release(tx, run_id)
                await fail_run(tx, run_id, reason)

            pending: list[asyncio.Future[Any]] = [leasing, *([reading] if reading else [])]
            await asyncio.wait(pending)  # taken (or failed) before the lease is given up
            await self._writer.run(fail)
            return None
        timing.mark_of(run_id, "prepared")
        return {**run, "branch": branch, "worktrees": worktrees, "workspace_intent": None}

    @staticmethod
    async def record_prepared(tx: Tx, run: dict[str, Any]) -> None:
        await runs.update_fields(
            tx,
            run["id"],
            branch=run["branch"],
            worktrees=run["worktrees"],
            workspace_intent=None,
            crash_resumes=0,  # progress: a prepared run is not stuck
        )

    async def record_start(self, handle: RunHandle, run: dict[str, Any]) -> None:
        """An early-started turn's preparation and start, in one transaction."""

        async def job(tx: Tx) -> object:
            await self.record_prepared(tx, run)
            return await self._begin_turn(tx, handle)

        await self._writer.run(job)
