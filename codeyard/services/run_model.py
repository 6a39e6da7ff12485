"""Switching a run's model: stored on the run, used from the next turn on.

Every adapter reads ``run["model"]`` when a turn starts, so the change needs no provider
support; a turn already running keeps its model (none of the CLIs switches mid-turn through
its structured channel).
"""

from __future__ import annotations

from typing import Any

from codeyard.domain.events import RunModelChanged
from codeyard.services.context import Services
from codeyard.store import runs
from codeyard.store.writer import Tx

ACTIVE = frozenset({"preparing", "running", "waiting"})


def view(run: dict[str, Any]) -> dict[str, Any]:
    return {
        "run_id": run["id"],
        "provider": run["provider"],
        "model": run["model"],
        "applies": "next_turn" if run["status"] in ACTIVE else "now",
    }


async def get(svc: Services, run_ref: str) -> dict[str, Any]:
    async with svc.engine.connect() as conn:
        return view(await runs.get(conn, run_ref))


async def switch(svc: Services, run_ref: str, model: str | None) -> dict[str, Any]:
    async with svc.engine.connect() as conn:
        run_id = (await runs.get(conn, run_ref))["id"]

    async def job(tx: Tx) -> dict[str, Any]:
        run = await runs.lock(tx, run_id)
        if run["model"] != model:
            await tx.emit(run_id, [RunModelChanged(from_=run["model"], to=model)])
            tx.set_run_values(run_id, {"model": model})
            run = {**run, "model": model}
        return view(run)

    return await svc.writer.run(job)
