"""The activities a worker host serves: ``place`` (shared queue), ``drive`` and ``deliver``
(its own queue). Each hands the work to the host runtime's loop and waits; ``drive`` heartbeats
from this loop meanwhile (:func:`beating`, as the work in worktrees of ``on_host_work`` does),
so a turn busy with git or disk never starves the heartbeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable
from typing import Any, TypeVar

from temporalio import activity
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from codeyard.temporal.contracts import (
    HEARTBEAT_EVERY,
    LIVE_POLLER_SECONDS,
    SHARED_QUEUE,
    Delivery,
    DriveInput,
    DriveResult,
    PlaceInput,
)
from codeyard.temporal.host import HostRuntime

T = TypeVar("T")


class HostActivities:
    def __init__(self, runtime: HostRuntime) -> None:
        self.runtime = runtime

    @property
    def host(self) -> str:
        return self.runtime.config.host

    @activity.defn(name="place")
    async def place(self, job: PlaceInput) -> str:
        """Choose the host for a run that holds no worktree yet (or lost its host)."""
        live = await live_hosts(activity.client())
        candidates = [h for h in live if h not in job.exclude] or [self.host]
        host = await self.runtime.call(self.runtime.place(job.run_id, candidates))
        activity.logger.info("run %s placed on %s (of %s)", job.run_id, host, candidates)
        return host

    @activity.defn(name="drive")
    async def drive(self, job: DriveInput) -> DriveResult:
        return await beating(self.runtime.call(self.runtime.drive(job)), job.attempt)

    @activity.defn(name="deliver")
    async def deliver(self, item: Delivery) -> bool:
        return await self.runtime.call(self.runtime.deliver(item))


async def beating(work: Awaitable[T], *details: Any) -> T:
    """Await ``work`` (on the host runtime's loop) while this activity heartbeats ``details``
    from the worker's loop every :data:`HEARTBEAT_EVERY` seconds."""
    beat = asyncio.create_task(_heartbeat(details))
    try:
        return await work
    finally:
        beat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beat


async def _heartbeat(details: tuple[Any, ...]) -> None:
    while True:
        activity.heartbeat(*details)
        await asyncio.sleep(HEARTBEAT_EVERY)


async def live_hosts(client: Client) -> list[str]:
    """Hosts polling the shared queue's activities lately (a worker's identity is its host)."""
    request = DescribeTaskQueueRequest(
        namespace=client.namespace,
        task_queue=TaskQueue(name=SHARED_QUEUE),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
    )
    response = await client.workflow_service.describe_task_queue(request)
    now = time.time()
    return sorted(
        {
            p.identity
            for p in response.pollers
            if now - p.last_access_time.ToSeconds() < LIVE_POLLER_SECONDS
        }
    )
