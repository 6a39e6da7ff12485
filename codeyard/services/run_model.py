"""Switching a run's model: stored on the run, used from the next model call or turn on.

Every adapter reads ``run["model"]`` when a turn starts, so a switch between turns needs no
provider support. During a turn, providers with ``mid_turn_model`` (Claude Code, through its
``set_model`` control request; Gemini CLI through ACP ``session/set_model``) switch before
their next model call: the executor is nudged
after the switch is stored, and ``run.model_applied`` records when the agent took it. The rest
keep the running turn's model and use the new one from the next turn.
"""

from __future__ import annotations

from typing import Any, Literal

from codeyard.agents import registry
from codeyard.domain.errors import ValidationFailed
from codeyard.domain.events import RunModelChanged
from codeyard.executor.interface import ModelSwitch
from codeyard.services.context import Services
from codeyard.store import runs
from codeyard.store.writer import Tx

ACTIVE = frozenset({"preparing", "running", "waiting"})
Applies = Literal["now", "next_model_call", "next_turn"]


def _live_switch(provider: str) -> bool:
    try:
        return registry.get(provider).capabilities.mid_turn_model
    except ValidationFailed:  # a provider no longer installed: switches wait for a turn
        return False


def applies(run: dict[str, Any]) -> Applies:
    """When a switch made now takes effect (the run's status and provider say)."""
    if run["status"] not in ACTIVE:
        return "now"
    return "next_model_call" if _live_switch(run["provider"]) else "next_turn"


def view(run: dict[str, Any], when: Applies | None = None) -> dict[str, Any]:
    return {
        "run_id": run["id"],
        "provider": run["provider"],
        "model": run["model"],
        "applies": when or applies(run),
    }


async def get(svc: Services, run_ref: str) -> dict[str, Any]:
    async with svc.engine.connect() as conn:
        return view(await runs.get(conn, run_ref))


async def switch(svc: Services, run_ref: str, model: str | None) -> dict[str, Any]:
    async with svc.engine.connect() as conn:
        run_id = (await runs.get(conn, run_ref))["id"]

    async def job(tx: Tx) -> tuple[dict[str, Any], bool]:
        run = await runs.lock(tx, run_id)
        if run["model"] == model:
            return run, False
        when = applies(run)
        await tx.emit(run_id, [RunModelChanged(from_=run["model"], to=model, applies=when)])
        tx.set_run_values(run_id, {"model": model})
        return {**run, "model": model}, True

    run, changed = await svc.writer.run(job)
    when = applies(run)
    if (
        changed
        and when == "next_model_call"
        and not await svc.executor.signal(run_id, ModelSwitch())
    ):
        when = "next_turn"  # the turn ended meanwhile (or runs elsewhere): the next one uses it
    return view(run, when)
