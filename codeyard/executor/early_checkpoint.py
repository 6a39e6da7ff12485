"""A turn-end checkpoint begun before the agent's process has exited."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

from codeyard.run_workspace.checkpointing import checkpoint_when
from codeyard.store.writer import Tx, Writer

T = TypeVar("T")


class EarlyCheckpoint:
    """A turn-end checkpoint begun when the agent reports its turn's end, before its process
    has exited (bench/overhead.py: the exit and the checkpoint's git work took ~150 ms in
    series), or earlier, when it begins what may be its last words (``Concluding``). Its
    row, ``checkpoint.created`` and the turn's end are recorded together once the adapter has
    finished, so ``turn.completed`` still follows both the checkpoint and the agent's exit;
    the lock of ``checkpoint_when`` keeps other checkpoints out meanwhile."""

    def __init__(self, engine: AsyncEngine, writer: Writer, run: dict[str, Any]) -> None:
        loop = asyncio.get_running_loop()
        self._then: asyncio.Future[Callable[[Tx], Awaitable[Any]]] = loop.create_future()
        self._task = asyncio.ensure_future(
            checkpoint_when(engine, writer, run, "turn", None, self._then, run_stats=True)
        )
        # A dropped checkpoint's git failure is nobody's news ("exception never retrieved").
        self._task.add_done_callback(lambda f: f.cancelled() or f.exception())

    async def record(self, end: Callable[[Tx], Awaitable[T]]) -> tuple[dict[str, Any], T]:
        self._then.set_result(end)
        row, ended = await self._task
        return row, ended

    async def drop(self) -> None:
        """Give it up (the turn failed, was cancelled, or went on): its git processes are
        stopped and reaped; a ref it wrote is moved by the next checkpoint of that number."""
        self._task.cancel()
        await asyncio.wait([self._task])  # its outcome is not ours to raise


async def drop_if_any(early: EarlyCheckpoint | None) -> None:
    if early is not None:
        await early.drop()
