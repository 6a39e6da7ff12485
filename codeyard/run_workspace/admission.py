"""How many runs prepare (and, with the local executor, start) at once on this host.

A burst of runs waits its turn in order instead of a thousand git processes, writer jobs and
event-loop steps at once; the bound is ``preparation_concurrency`` (0: twice the CPUs).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
from collections import deque
from collections.abc import AsyncIterator, Callable

__all__ = ["PREPARATIONS", "Preparations", "limit_preparations", "start_slot"]


class Preparations:
    """At most ``limit`` preparations (or, for the local executor, run starts) at once in this
    process, the others waiting first come first served (``asyncio.Semaphore`` lets a newcomer
    take a slot freed while its waiters have not yet woken; here a freed slot goes straight to
    the oldest waiter)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0
        self._waiting: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        return sum(1 for f in self._waiting if not f.done())

    async def take(self) -> Callable[[], None]:
        """Wait in line for a slot; returns ``release``, which gives it up (once: calling it
        again does nothing)."""
        if self.active < self.limit and not self.waiting:
            self.active += 1
        else:
            turn = asyncio.get_running_loop().create_future()
            self._waiting.append(turn)
            try:
                await turn
            except BaseException:
                if turn.done() and not turn.cancelled():  # handed the slot as it was cancelled
                    self._release()
                else:
                    self._waiting.remove(turn)
                raise
        held = True

        def release() -> None:
            nonlocal held
            if held:
                held = False
                self._release()

        return release

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[Callable[[], None]]:
        """Hold a slot (waiting in line for one); yields ``release``, to give it up early."""
        release = await self.take()
        try:
            yield release
        finally:
            release()

    def _release(self) -> None:
        while self._waiting:  # the slot passes to the oldest waiter still waiting
            turn = self._waiting.popleft()
            if not turn.done():
                turn.set_result(None)
                return
        self.active -= 1


def _default_limit() -> int:
    return 2 * (os.cpu_count() or 1)


#: This host's bound (one executor per host: the API server's, or a Temporal worker's).
PREPARATIONS = Preparations(_default_limit())


#: Gives up the start slot the current run holds (taken by the local executor as the run left
#: the queue; a task copies it from the context it was created in): :func:`prepare_worktrees`
#: calls it when it gives up its preparation slot.
start_slot: contextvars.ContextVar[Callable[[], None] | None] = contextvars.ContextVar(
    "start_slot", default=None
)


def limit_preparations(limit: int) -> None:
    """Configure the bound (``preparation_concurrency``; 0: twice the CPUs) at start-up."""
    PREPARATIONS.limit = limit if limit > 0 else _default_limit()
