"""``RunWorkflow``'s failover bookkeeping (issue 16) on a real Temporal dev server, in process.

The workflow is the real one, sandboxed as a worker host runs it. Only its activities are the
test's: ``place`` on the shared queue and ``drive`` on each host's queue, registered under the
workflow's activity names and scripted per case to act like a host that drives the run, one
that began it (beat) and then went silent (killed mid-turn), one whose poller takes the drive
and never beats (a poll left behind by a killed predecessor of the host), and one nobody
polls. Each case checks which hosts each placement was told to exclude and which lost host
each take-over was told of. Nothing else is mocked: the real hosts behind these activities
(placement, the take-over, the notice naming the lost host) are covered by
``test_temporal_scale_out.py`` (slow).

The heartbeat and pickup timeouts are cut to 1 s (the sandbox imports the workflow module, and
so reads them from ``codeyard.temporal.contracts``, anew for every workflow run); each case
checks in the workflow's history that the drives were scheduled with them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Literal

import anyio
import pytest
from temporalio import activity
from temporalio.client import Client, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from codeyard.temporal import contracts
from codeyard.temporal.contracts import (
    SHARED_QUEUE,
    WORKFLOW_NAME,
    DriveInput,
    DriveResult,
    PlaceInput,
    host_queue,
    workflow_id,
)
from codeyard.temporal.workflow import RunWorkflow
from tests.support.temporal import TemporalDevServer

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]

TIMEOUT = timedelta(seconds=1)
#: One namespace per case: every case uses the workflow's own queue names.
NAMESPACES = ("began", "mute", "unpolled", "first-unpolled")

#: How a scripted host treats the drive it is given: "drives" it to the end (beating its
#: attempt, as the real ``drive`` does at once), "dies" (beats, then goes silent: killed
#: mid-turn), stays "mute" (its poller took the drive and never beats), or is "unpolled".
Act = Literal["drives", "dies", "mute", "unpolled"]


@pytest.fixture(scope="module")
def temporal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TemporalDevServer]:
    server = TemporalDevServer(Path(tmp_path_factory.mktemp("temporal")), NAMESPACES)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _fast_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(contracts, "HEARTBEAT_TIMEOUT", TIMEOUT)
    monkeypatch.setattr(contracts, "HOST_PICKUP_TIMEOUT", TIMEOUT)


class Hosts:
    """The scripted activities: ``place`` answers with ``placed`` in turn, recording what it
    was told to exclude; each host's ``drive`` acts as ``acts`` says."""

    def __init__(self, placed: list[str], acts: dict[str, Act]) -> None:
        self.placed = placed
        self.acts = acts
        self.excluded: list[list[str]] = []
        self.driven = asyncio.Event()

    @activity.defn(name="place")
    async def place(self, job: PlaceInput) -> str:
        self.excluded.append(list(job.exclude))
        if len(self.excluded) > len(self.placed):
            raise ApplicationError(f"placed once more than scripted: {job}", non_retryable=True)
        return self.placed[len(self.excluded) - 1]

    def drive_on(self, host: str) -> Callable[[DriveInput], Awaitable[DriveResult]]:
        @activity.defn(name="drive")
        async def drive(job: DriveInput) -> DriveResult:
            if self.acts[host] != "mute":
                activity.heartbeat(job.attempt)
            if self.acts[host] == "drives":
                self.driven.set()
                return DriveResult(job.run_id, host, "review")
            await asyncio.Event().wait()  # silent until the worker stops (cancels it)
            raise AssertionError("unreachable")

        return drive


async def connect(temporal: TemporalDevServer, namespace: str) -> Client:
    """A client once the dev server's frontend is healthy (its port opens before)."""
    with anyio.fail_after(30):
        while True:
            try:
                return await Client.connect(temporal.address, namespace=namespace)
            except RuntimeError as exc:
                if "not healthy yet" not in str(exc):
                    raise
            await asyncio.sleep(0.1)


async def run_through(
    temporal: TemporalDevServer, namespace: str, hosts: Hosts
) -> list[tuple[str, int, str]]:
    """Submit a run, wait until a host drove it to the end, then finish its workflow; the
    drives it scheduled, from its history: (host, attempt, the lost host it was told of)."""
    client = await connect(temporal, namespace)
    async with contextlib.AsyncExitStack() as stack:
        shared = Worker(
            client, task_queue=SHARED_QUEUE, workflows=[RunWorkflow], activities=[hosts.place]
        )
        await stack.enter_async_context(shared)
        for host, act in hosts.acts.items():
            if act != "unpolled":
                own = Worker(client, task_queue=host_queue(host), activities=[hosts.drive_on(host)])
                await stack.enter_async_context(own)
        handle: WorkflowHandle[RunWorkflow, str] = await client.start_workflow(
            WORKFLOW_NAME,
            "run1",
            id=workflow_id("run1"),
            task_queue=SHARED_QUEUE,
            start_signal="submit",
            result_type=str,
        )
        ended = asyncio.ensure_future(handle.result())
        driven = asyncio.ensure_future(hosts.driven.wait())
        try:
            with anyio.fail_after(30):
                await asyncio.wait([ended, driven], return_when=asyncio.FIRST_COMPLETED)
            if ended.done():  # the workflow ended with no host driving the run: say how
                pytest.fail(f"the workflow ended early: {ended.exception()!r}; {vars(hosts)}")
            await handle.signal(RunWorkflow.finish)
            assert await ended == "finished"
        finally:
            driven.cancel()
            if not ended.done():
                ended.cancel()
                await handle.terminate()
    drives: list[tuple[str, int, str]] = []
    async for event in handle.fetch_history_events():
        if not event.HasField("activity_task_scheduled_event_attributes"):
            continue
        scheduled = event.activity_task_scheduled_event_attributes
        if scheduled.activity_type.name == "drive":
            # The cut timeouts took effect in the sandbox.
            assert scheduled.heartbeat_timeout.ToTimedelta() == TIMEOUT
            assert scheduled.schedule_to_start_timeout.ToTimedelta() == TIMEOUT
            [job] = await client.data_converter.decode(scheduled.input.payloads, [DriveInput])
            host = scheduled.task_queue.name.removeprefix(host_queue(""))
            drives.append((host, job.attempt, job.lost_host))
    return drives


@pytest.mark.parametrize("h1", ["mute", "unpolled"])
async def test_a_take_over_that_never_began_leaves_the_lost_host_named_and_is_excluded(
    temporal: TemporalDevServer, h1: Act
) -> None:
    """The CI case: h2 ran the run and was killed; h1, placed to take over, never began (its
    poller took the drive and never beat, or nobody polled its queue); h3 takes over and is
    told h2, which ran the run, was lost, not h1."""
    hosts = Hosts(["h2", "h1", "h3"], {"h2": "dies", "h1": h1, "h3": "drives"})
    drives = await run_through(temporal, h1, hosts)
    assert (hosts.excluded, drives) == (
        [[], ["h2"], ["h2", "h1"]],
        [("h2", 1, ""), ("h1", 2, "h2"), ("h3", 3, "h2")],
    )


async def test_a_take_over_host_that_began_then_went_silent_is_named_as_lost(
    temporal: TemporalDevServer,
) -> None:
    hosts = Hosts(["h2", "h1", "h3"], {"h2": "dies", "h1": "dies", "h3": "drives"})
    drives = await run_through(temporal, "began", hosts)
    assert (hosts.excluded, drives) == (
        [[], ["h2"], ["h2", "h1"]],
        [("h2", 1, ""), ("h1", 2, "h2"), ("h3", 3, "h1")],
    )


async def test_the_runs_own_host_that_never_takes_its_drive_is_named_as_lost(
    temporal: TemporalDevServer,
) -> None:
    """The first host lost holds the run's worktree even if it never began this drive (the run
    was placed there before, or the host died before picking it up): a take-over must restore
    from it, so it is named, and stays named past a take-over that never began either."""
    hosts = Hosts(["h2", "h1", "h3"], {"h2": "unpolled", "h1": "unpolled", "h3": "drives"})
    drives = await run_through(temporal, "first-unpolled", hosts)
    assert (hosts.excluded, drives) == (
        [[], ["h2"], ["h2", "h1"]],
        [("h2", 1, ""), ("h1", 2, "h2"), ("h3", 3, "h2")],
    )
