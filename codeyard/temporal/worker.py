"""``codeyard worker``: one host. Polls the shared queue (workflows, placement) and its own
queue (drives and deliveries of the runs whose worktrees it holds, and work in those worktrees:
workflow shell commands, the runs' checks)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from temporalio.client import Client
from temporalio.worker import Worker

from codeyard.temporal.activities import HostActivities
from codeyard.temporal.contracts import SHARED_QUEUE, STICKY_TIMEOUT, host_queue
from codeyard.temporal.host import HostConfig, HostRuntime
from codeyard.temporal.on_host import OnHostWorkflow
from codeyard.temporal.on_host_work import OnHostActivities
from codeyard.temporal.workflow import RunWorkflow

log = logging.getLogger(__name__)


async def serve_host(
    config: HostConfig,
    address: str,
    namespace: str = "default",
    ready: asyncio.Event | None = None,
) -> None:
    """Run a worker host until SIGTERM/SIGINT (or cancellation)."""
    runtime = HostRuntime(config)
    await runtime.start()
    try:
        client = await Client.connect(address, namespace=namespace)
        acts = HostActivities(runtime)
        shared = Worker(
            client,
            task_queue=SHARED_QUEUE,
            # CodeyardOnHost runs on the API servers' queue; here for those started on this one.
            workflows=[RunWorkflow, OnHostWorkflow],
            activities=[acts.place],
            identity=config.host,
            # A workflow's next task goes to the worker that ran its last one first; when that
            # worker died, this is how long it waits there before any worker may take it.
            sticky_queue_schedule_to_start_timeout=STICKY_TIMEOUT,
        )
        work = OnHostActivities(runtime)
        own = Worker(
            client,
            task_queue=host_queue(config.host),
            activities=[
                acts.drive,
                acts.deliver,
                work.shell,
                work.checks,
                work.trees,
                work.worktree,
            ],
            identity=config.host,
            max_concurrent_activities=200,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        async with shared, own:
            log.warning("worker %s polling %s and %s", config.host, SHARED_QUEUE, own.task_queue)
            if ready is not None:
                ready.set()
            print(f"codeyard worker {config.host} ready", flush=True)
            await stop.wait()
    finally:
        await runtime.stop()
