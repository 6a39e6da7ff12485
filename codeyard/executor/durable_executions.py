"""An optional executor capability: drive workflow executions durably, outside any one server.

The workflow engine keeps one implementation of what a step does (``workflows.steps``, writing
``workflow.*`` events) and of the order steps run in (the resolved graph's ``depends_on``). With
the local executor the API server's engine schedules the steps itself (an asyncio task per
execution, marked ``interrupted`` when that server stops). An executor that implements
:class:`DurableExecutions` schedules them instead, durably: it calls back into the engine
(:class:`ExecutionSteps`) on whichever API server takes the work, once per top-level step, and
once to finish. A step's callback is re-entrant (it folds the execution's log first), so the
executor may call it again after the server running it died. Pure declarations, no I/O.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


class StepError(Exception):
    """The step failed for good (its error is recorded in the log): do not call it again."""


class ExecutionSteps(Protocol):
    """What the engine offers the executor (``workflows.engine.WorkflowEngine``)."""

    async def run_top_step(self, execution_id: str, step_id: str) -> None:
        """Run one top-level step unless the log says it ended; raises :class:`StepError`."""
        ...

    async def finish_execution(self, execution_id: str, status: str, reason: str | None) -> None:
        """Record the end: ``completed`` (outputs rendered here), ``failed`` or ``cancelled``."""
        ...


@runtime_checkable
class DurableExecutions(Protocol):
    async def serve_executions(self, steps: ExecutionSteps) -> None:
        """Take execution work on this server until :meth:`stop_executions`."""
        ...

    async def stop_executions(self) -> None: ...

    async def start_execution(self, execution_id: str, deps: dict[str, list[str]]) -> None:
        """Start driving an execution whose top-level steps depend on each other as ``deps``
        says (idempotent: a second start of the same execution is ignored)."""
        ...

    async def cancel_execution(self, execution_id: str, reason: str) -> bool:
        """Stop every running step (their runs are cancelled); returns once it is recorded.
        False when the executor does not drive this execution (the engine records it)."""
        ...
