"""The activities a worker host serves: ``place`` (shared queue), ``drive`` and ``deliver``
(its own queue). Each hands the work to the host runtime's loop and waits; ``drive`` heartbeats
from this loop meanwhile, so a turn busy with git or disk never starves the heartbeat.
"""

from __future__ import annotations

import asyncio
import contextlib

from temporalio import activity
from temporalio.exceptions import ApplicationError

from codeyard.temporal.contracts import HEARTBEAT_EVERY, Delivery, DriveInput, DriveResult
from codeyard.temporal.host import HostRuntime, NotLiveHere


class HostActivities:
    def __init__(self, runtime: HostRuntime) -> None:
        self.runtime = runtime

    @property
    def host(self) -> str:
        return self.runtime.config.host

    @activity.defn(name="place")
    async def place(self, run_id: str) -> str:
        """Take a run that holds no worktree yet (or lost its host): it will live here."""
        activity.logger.info("run %s placed on %s", run_id, self.host)
        return self.host

    @activity.defn(name="drive")
    async def drive(self, job: DriveInput) -> DriveResult:
        work = self.runtime.call(self.runtime.drive(job))
        beat = asyncio.create_task(_heartbeat(job.attempt))
        try:
            return await work
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat

    @activity.defn(name="deliver")
    async def deliver(self, item: Delivery) -> bool:
        try:
            return await self.runtime.call(self.runtime.deliver(item))
        except NotLiveHere as exc:  # retryable: the drive may be starting on this host
            raise ApplicationError(str(exc), type="NotLiveHere") from exc


async def _heartbeat(attempt: int) -> None:
    while True:
        activity.heartbeat(attempt)
        await asyncio.sleep(HEARTBEAT_EVERY)
