"""The background features (see :mod:`codeyard.background`): their modules are imported with
this one, when they start, not while the server starts."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from fastapi import FastAPI

from codeyard.cli_socket import CliSocket
from codeyard.cluster.leadership import Leadership
from codeyard.services import checks as checks_service
from codeyard.services import github as github_service
from codeyard.services import github_app as github_app_service
from codeyard.services import github_poll, pr_sync, retention
from codeyard.services import managed_docs as managed_docs_service
from codeyard.services.context import Services
from codeyard.services.subscribers import Subscribers
from codeyard.tickets import follower as ticket_follower
from codeyard.workflows.engine import WorkflowEngine


async def start(app: FastAPI, services: Services) -> Callable[[], Awaitable[None]]:
    """Start every feature; what stops them, in reverse order. A failure stops those that
    started and is raised."""
    stack = contextlib.AsyncExitStack()
    try:
        await _start(app, services, stack)
    except BaseException:
        await stack.aclose()
        raise
    return stack.aclose


async def _start(app: FastAPI, services: Services, stack: contextlib.AsyncExitStack) -> None:
    app.state.subscribers = subscribers = Subscribers(services)
    # Once per cluster, not per API server (issue 16): the elected server runs these.
    app.state.leadership = leadership = _singletons(services, subscribers)
    await leadership.start()
    stack.push_async_callback(leadership.stop)
    # Changelog entries and code indexes follow landed runs (issue 22).
    _task(stack, managed_docs_service.follow_landings(services))
    # Tickets follow their runs, and work queues advance on them (issue 19).
    _task(stack, ticket_follower.follow_runs(services))
    # Workflow executions (issue 20): interrupted ones wait for an explicit resume. Stopped
    # before the executor shuts down: shutdown is not cancel.
    app.state.workflows = workflows = WorkflowEngine(services)
    await workflows.start()
    stack.push_async_callback(workflows.stop)
    # Local checks after each turn, and their fix loop (issue 21).
    _task(stack, checks_service.follow_turns(services))
    # A run whose pull request is open: pushed to it after each turn (issue 21).
    _task(stack, pr_sync.follow_turns(services))
    app.state.github_inbox = inbox = github_service.Inbox(services)
    inbox.start()
    stack.push_async_callback(inbox.stop)
    # A connected GitHub App's installation token, renewed before it expires (issue 21).
    _task(stack, github_app_service.keep_token(services))
    # The CLI's Unix socket: password and two-factor resets, OS permissions as the auth (22).
    if services.settings.cli_socket:
        cli_socket = CliSocket(services)
        await cli_socket.start()
        stack.push_async_callback(cli_socket.stop)


def _task(stack: contextlib.AsyncExitStack, loop: Coroutine[Any, Any, None]) -> None:
    """Run ``loop`` as a task until the features stop (then cancel it and wait for it)."""
    task = asyncio.create_task(loop)

    async def stop() -> None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    stack.push_async_callback(stop)


def _singletons(services: Services, subscribers: Subscribers) -> Leadership:
    """Retention, notification delivery and analytics rollups, the GitHub sweeper and poller:
    background work that must run once per cluster (``codeyard.cluster.leadership``)."""
    leadership = Leadership(services.engine)
    daily_gc = retention.DailyGc(services)
    sweeper, poll = github_service.Sweeper(services), github_poll.PollLoop(services)

    async def start_gc() -> None:
        daily_gc.start()

    async def start_sweeper() -> None:
        sweeper.start()

    async def start_poll() -> None:
        if github_poll.should_poll(services.settings):  # no webhooks: one poller for all
            poll.start()

    leadership.add("retention", start_gc, daily_gc.stop)
    leadership.add("subscribers", subscribers.start, subscribers.stop)
    leadership.add("github-sweeper", start_sweeper, sweeper.stop)
    leadership.add("github-poller", start_poll, poll.stop)
    return leadership
