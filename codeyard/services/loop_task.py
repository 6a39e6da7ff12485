"""A service's background loop as one task per object, which the app's features start and stop.

A module of its own because loops in two modules use it: GitHub's webhook inbox and sweeper
(``services.github``) and its poller (``services.github_poll``).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib

__all__ = ["LoopTask"]


class LoopTask(abc.ABC):
    """One background task per object: ``start`` runs :meth:`_loop`, ``stop`` cancels it."""

    name = "codeyard-loop"
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=self.name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @abc.abstractmethod
    async def _loop(self) -> None: ...
