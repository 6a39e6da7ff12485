"""What the agent contract suite and the per-CLI tests share: running an agent through the API,
the process table, asks, pause and resume, cancel.

Each test points its CLI at the fake model server with an isolated ``HOME``; this module knows
nothing about any one CLI.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import anyio
import pytest

from codeyard.agents.base import Provider
from codeyard.testing.fake_llm import FakeLLM
from tests.clis.support import (
    processes_in,
    wait_for_process,
    wait_model_calls,
    worktree,
)
from tests.conftest import Api

WAIT = 60.0
#: A command that runs until it is killed (some agents refuse a bare ``sleep``).
BLOCKING = "tail -f /dev/null"


def require(provider: Provider) -> None:
    """Skip when the CLI cannot run here; in CI (``CI=true``) fail instead."""
    problem = provider.problem()
    if problem is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{provider.name} must run in CI: {problem}")
    pytest.skip(f"{provider.name} cannot run here: {problem}")


async def create(
    api: Api,
    repo: Path,
    provider: str,
    model: str | None,
    options: dict[str, Any],
    prompt: str,
    **extra: Any,
) -> dict[str, Any]:
    body = {
        "prompt": prompt,
        "repo_path": str(repo),
        "provider": provider,
        "model": model,
        "agent_options": options,
        **extra,
    }
    resp = await api.post("/api/runs", json=body)
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


async def policy_set(api: Api, *rules: dict[str, Any]) -> str:
    policy = await api.post("/api/policies", json={"name": "acp test", "rules": list(rules)})
    assert policy.status_code == 201, policy.text
    body = {"name": "acp test", "policy_ids": [policy.json()["id"]]}
    pset = await api.post("/api/policy-sets", json=body)
    assert pset.status_code == 201, pset.text
    return str(pset.json()["id"])


async def pending_approval(api: Api, run_id: str, seen: set[str]) -> dict[str, Any]:
    """The run's next pending approval not in ``seen`` (read at each of the run's events)."""

    async def read() -> dict[str, Any] | None:
        url = f"/api/approvals?status=pending&run_id={run_id}"
        rows = [r for r in (await api.get(url)).json()["data"] if r["id"] not in seen]
        return dict(rows[0]) if rows else None

    found = await api.until(run_id, read, WAIT)
    if found is None:
        raise TimeoutError(f"no new pending approval of run {run_id} within {WAIT} s")
    seen.add(found["id"])
    return found


async def resolve(api: Api, approval: dict[str, Any], decision: str, reason: str = "") -> None:
    body = {"decision": decision, "reason": reason or None}
    resp = await api.post(f"/api/approvals/{approval['id']}/resolve", json=body)
    assert resp.status_code == 200, resp.text


async def cancel_leaves_no_process(api: Api, run: dict[str, Any], fake: FakeLLM) -> None:
    """Cancel a run whose agent is blocked in ``BLOCKING``; nothing may survive in its tree."""
    await wait_model_calls(fake, 1)
    tree = worktree(api, run)
    await wait_for_process(tree, BLOCKING)
    blocked = [pid for pid, cmd in processes_in(tree) if BLOCKING in cmd]
    resp = await api.post(f"/api/runs/{run['id']}/cancel")
    assert resp.status_code == 200, resp.text
    with anyio.fail_after(30):
        await api.wait_status(run["id"], "cancelled", timeout=30)
        await api.services.executor.wait_stopped(run["id"])
    assert processes_in(tree) == [], "no process of the cancelled turn may survive"
    # Not even one that left the worktree: the blocked command itself is gone (or a zombie).
    assert [pid for pid in blocked if _alive(pid)] == []


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"


async def pause_and_resume(
    api: Api, run: dict[str, Any], fake: FakeLLM, calls: int, gone_when_paused: bool = False
) -> dict[str, Any]:
    """Pause a run mid-turn (in its model call number ``calls``, which hangs), check its
    processes are gone (already when it reads ``paused`` if ``gone_when_paused``), resume it;
    return the run at rest after the resumed turn."""
    await wait_model_calls(fake, calls)
    tree = worktree(api, run)
    assert processes_in(tree), "the agent should be running in the worktree"
    resp = await api.post(f"/api/runs/{run['id']}/pause")
    assert resp.status_code == 200, resp.text
    paused = await api.wait_status(run["id"], "paused", timeout=WAIT)
    assert paused["session_id"], "the session id is kept for resume"
    if gone_when_paused:
        assert processes_in(tree) == []
    await api.services.executor.wait_stopped(run["id"])
    assert processes_in(tree) == []
    resp = await api.post(f"/api/runs/{run['id']}/resume", json={})
    assert resp.status_code == 200, resp.text
    done = await api.wait_status(run["id"], "review", "failed", timeout=WAIT)
    assert done["status"] == "review", done
    assert done["session_id"] == paused["session_id"]
    return done
