"""Background features, started once the server has answered (issue 15).

The server's core (storage, the writer, the executor, terminals) starts before the first
request is served. The features in :mod:`codeyard.background.features` follow the event log or
run on timers: ticket and work-queue follow-up, workflow executions, after-turn checks and the
pull-request push loop, changelog and code-index updates, the GitHub inbox, sweeper, poller and
App token, retention, analytics rollups, notifications and the CLI's socket. Importing their
modules was a good part of what a server imported before it could answer its first request, so
``codeyard serve`` imports and starts them after that first answer, or ``after`` seconds from
start-up when no request comes: they start on their own a moment later, as before.

Routes that use a feature (workflows, notifications) await :meth:`Background.ready` first.
Embedders and tests that build the app with ``create_app()`` start them inside the lifespan
(``after=None``), as every server did before.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
from collections.abc import Awaitable, Callable

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from codeyard.services.context import Services

__all__ = ["AnsweredMiddleware", "Background"]

#: ``codeyard serve``: the features start this long after start-up when no request came first.
SERVE_AFTER_SECONDS = 1.0
#: The module that imports and starts the features (imported when they start).
FEATURES = "codeyard.background.features"
#: What it imports, loaded one module per event-loop turn before it, so that a request arriving
#: meanwhile waits for one module's import at most (``tests/unit/test_startup_imports.py`` keeps
#: this in step with ``features.py``).
MODULES = (
    "codeyard.cli_socket",
    "codeyard.cluster.leadership",
    "codeyard.services.checks",
    "codeyard.services.github",
    "codeyard.services.github_app",
    "codeyard.services.github_poll",
    "codeyard.services.managed_docs",
    "codeyard.services.pr_sync",
    "codeyard.services.retention",
    "codeyard.services.subscribers",
    "codeyard.tickets.follower",
    "codeyard.workflows.engine",
)

log = logging.getLogger(__name__)

Stop = Callable[[], Awaitable[None]]


class Background:
    """When the background features start, and the handle that stops them."""

    def __init__(self, after: float | None) -> None:
        #: Seconds from start-up after which they start if no request was answered by then;
        #: ``None``: in the lifespan, before the first request.
        self.after = after
        #: Set when the server has answered its first HTTP request (:class:`AnsweredMiddleware`).
        self.answered = asyncio.Event()
        #: Set once the features have started (or failed to): the executor takes no run before
        #: (``LocalExecutor.hold_work_until``), so no turn ends unseen by the followers.
        self.started = asyncio.Event()
        self._task: asyncio.Task[Stop] | None = None

    async def begin(self, app: FastAPI, services: Services) -> None:
        """Start them now (``after`` is None: a failure fails the start-up, as it did) or
        schedule their start."""
        self._task = asyncio.create_task(self._start(app, services), name="codeyard-background")
        if self.after is None:
            await asyncio.shield(self._task)

    async def _start(self, app: FastAPI, services: Services) -> Stop:
        if self.after is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.answered.wait(), self.after)
        try:
            for name in MODULES:
                importlib.import_module(name)
                await asyncio.sleep(0)
            features = importlib.import_module(FEATURES)
            stop: Stop = await features.start(app, services)
        except Exception:
            log.exception("Background features failed to start")
            raise
        finally:
            self.started.set()
        return stop

    async def ready(self) -> None:
        """Return once the features run (starting them now if they were waiting for the first
        answer: the request asking may be that first one); their start-up error, raised."""
        self.answered.set()
        if self._task is None:
            raise RuntimeError("The server's background features were never started")
        await asyncio.shield(self._task)

    async def stop(self) -> None:
        """Stop what started (in reverse order), or the start still waiting."""
        task, self._task = self._task, None
        if task is None:
            return
        if not task.done():
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        if task.cancelled() or task.exception() is not None:
            return
        await task.result()()


class AnsweredMiddleware:
    """Sets :attr:`Background.answered` once the first HTTP request has been answered."""

    def __init__(self, app: ASGIApp, background: Background) -> None:
        self.app = app
        self.background = background

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        answered = self.background.answered
        if answered.is_set() or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            answered.set()
