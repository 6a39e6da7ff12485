"""A turn's live inbox: operator messages reach an agent that takes input mid-turn."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from codeyard.executor.handle import RunHandle
from codeyard.store import runs
from codeyard.store.writer import Tx, Writer


class LiveInbox:
    """Operator messages offered to an agent while its turn runs (``mid_turn_input``).

    Messages stay in the run's durable queue until the agent confirms it took them in, so a
    crash or an early turn end leaves them for the next turn rather than losing them.
    """

    def __init__(self, engine: AsyncEngine, writer: Writer, handle: RunHandle) -> None:
        self._engine, self._writer, self._handle = engine, writer, handle
        self._offered = 0

    async def next(self) -> list[str]:
        while True:
            await self._handle.inbox.wait()
            self._handle.inbox.clear()
            async with self._engine.connect() as conn:
                run = await runs.get(conn, self._handle.run_id)
            queued = [m if isinstance(m, str) else m["text"] for m in run["pending_messages"]]
            fresh = queued[self._offered :]
            if fresh:
                self._offered += len(fresh)
                return fresh

    async def taken(self, count: int) -> None:
        run_id = self._handle.run_id

        async def job(tx: Tx) -> None:
            run = await runs.lock(tx, run_id)
            await runs.update_fields(tx, run_id, pending_messages=run["pending_messages"][count:])

        await self._writer.run(job)
        self._offered = max(0, self._offered - count)
