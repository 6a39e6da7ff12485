"""A model switch reaching a running turn (``mid_turn_model`` providers, issue 18).

``PUT /api/runs/{id}/model`` stores the model on the run and nudges the live run; the turn then
reads the row (the durable truth, as for queued messages) and hands the new model to the
agent, which switches before its next model call. Once the agent confirms, ``run.model_applied``
goes into the turn's event stream, through the same sink as the agent's own events, so the
usage that follows is priced with the new model.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from codeyard.agents.base import AdapterItem
from codeyard.domain.events import RunModelApplied
from codeyard.executor.handle import RunHandle
from codeyard.store import runs


class LiveModel:
    """The model of one running turn, and the switches asked for while it runs."""

    def __init__(
        self,
        engine: AsyncEngine,
        handle: RunHandle,
        turn: int,
        model: str | None,
        put: Callable[[AdapterItem], Awaitable[None]],
    ) -> None:
        self._engine, self._handle, self._turn = engine, handle, turn
        self.current = model
        self._put = put
        # A nudge left from before this turn is kept: if the row was read before that switch,
        # ``next`` finds the difference; if after, it finds none and waits on.

    async def next(self) -> str | None:
        """Wait for a switch to a model other than the one the agent uses now."""
        while True:
            await self._handle.model_nudge.wait()
            self._handle.model_nudge.clear()
            async with self._engine.connect() as conn:
                model: str | None = (await runs.get(conn, self._handle.run_id))["model"]
            if model != self.current:
                return model

    async def applied(self, model: str | None) -> None:
        self.current = model
        await self._put(RunModelApplied(model=model, turn=self._turn))


class SerialPut:
    """One door into a turn's sink for the adapter's items and for events that a side task of
    the agent reports (a confirmed model switch): the sink holds items between awaits."""

    def __init__(self, put: Callable[[AdapterItem], Awaitable[None]]) -> None:
        self._put = put
        self._lock = asyncio.Lock()

    async def __call__(self, item: AdapterItem) -> None:
        async with self._lock:
            await self._put(item)
