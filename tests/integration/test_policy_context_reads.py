"""A run's policy context is read once, then kept until a policy, policy set, project or agent
profile is written (issue 15: two reads or more at every tool call that reaches a decision).
A write through the API is heard at its commit: the next decision reads the rules again and
follows them. The app over httpx, SQLite and PostgreSQL (another server's write is announced
the same way: ``store.wakeups``, as ``tests/integration/test_cluster_once.py`` checks).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from codeyard.domain.policy import PolicyContext, evaluate
from codeyard.domain.tools import ToolRequest
from codeyard.policy import context as policy_context
from codeyard.store import runs
from tests.conftest import Api
from tests.integration.test_approvals import start
from tests.support.sql import statements
from tests.support.waits import eventually

pytestmark = pytest.mark.anyio

ECHO = {"tool": "Bash", "command": "^echo ", "action": "allow"}
DENY = {"tool": "Bash", "command": "^echo ", "action": "deny", "reason": "not now"}


def _reads_rules(sql: str) -> bool:
    return any(f"FROM {table}" in sql for table in ("policies", "policy_sets", "projects"))


async def _context(api: Api, run: dict[str, Any]) -> PolicyContext:
    async with api.services.engine.connect() as conn:
        return await policy_context.build(conn, run, "default")


def _action(ctx: PolicyContext) -> str:
    return evaluate(ToolRequest("c1", "Bash", "execute", {"command": "echo hi"}, {}), ctx).action


async def test_the_context_is_kept_until_a_policy_is_written(api: Api, git_repo: Path) -> None:
    policy = await api.post("/api/policies", json={"name": "p", "rules": [ECHO]})
    assert policy.status_code == 201, policy.text
    policy_id = policy.json()["id"]
    pset = await api.post("/api/policy-sets", json={"name": "s", "policy_ids": [policy_id]})
    started = await start(api, git_repo, {"say": "hi"}, policy_set_ids=[pset.json()["id"]])
    await api.wait_status(started["id"], "review")
    async with api.services.engine.connect() as conn:
        run = await runs.get(conn, started["id"])

    assert _action(await _context(api, run)) == "allow"  # read (and kept)
    alike = {**run, "id": "run_alike"}  # another run with the same sets, agent and project
    with statements(api.services.engine, _reads_rules) as sent:
        for _ in range(3):
            assert _action(await _context(api, run)) == "allow"
        # No policy is scoped to any run: a run's first decision reads nothing either.
        assert _action(await _context(api, alike)) == "allow"
    assert sent == []

    resp = await api.request(
        "PUT", f"/api/policies/{policy_id}", json={"name": "p", "rules": [DENY]}
    )
    assert resp.status_code == 200, resp.text

    async def denied() -> bool:
        return _action(await _context(api, run)) == "deny"

    assert await eventually(denied, timeout=10)
    with statements(api.services.engine, _reads_rules) as sent:
        assert _action(await _context(api, run)) == "deny"
    assert sent == []  # kept again


async def test_a_project_write_drops_what_is_kept(api: Api, git_repo: Path) -> None:
    """A policy set added to the run's project (as "remember for the project" does) applies to
    the run's next decision."""
    started = await start(api, git_repo, {"say": "hi"})
    await api.wait_status(started["id"], "review")
    async with api.services.engine.connect() as conn:
        run = await runs.get(conn, started["id"])
    assert _action(await _context(api, run)) == "ask"
    policy = await api.post("/api/policies", json={"name": "p", "rules": [DENY]})
    body = {"name": "s", "policy_ids": [policy.json()["id"]]}
    pset = await api.post("/api/policy-sets", json=body)
    assert _action(await _context(api, run)) == "ask"  # kept again, without the new set
    sets = {"policy_set_ids": [pset.json()["id"]]}
    resp = await api.request("PATCH", f"/api/projects/{run['project_id']}", json=sets)
    assert resp.status_code == 200, resp.text

    async def denied() -> bool:
        return _action(await _context(api, run)) == "deny"

    assert await eventually(denied, timeout=10)


async def test_a_policy_remembered_for_a_run_applies_to_that_run_only(
    api: Api, git_repo: Path
) -> None:
    started = await start(api, git_repo, {"say": "hi"})
    await api.wait_status(started["id"], "review")
    async with api.services.engine.connect() as conn:
        run = await runs.get(conn, started["id"])
    other = {**run, "id": "run_other"}
    assert _action(await _context(api, run)) == "ask"
    assert _action(await _context(api, other)) == "ask"
    body = {"rules": [{"tool": "Bash", "command": "^echo ", "action": "deny"}]}
    resp = await api.request("PUT", f"/api/runs/{run['id']}/policy", json=body)
    assert resp.status_code == 200, resp.text

    async def denied() -> bool:
        return _action(await _context(api, run)) == "deny"

    assert await eventually(denied, timeout=10)
    assert _action(await _context(api, other)) == "ask"
    with statements(api.services.engine, _reads_rules) as sent:
        assert _action(await _context(api, run)) == "deny"
        assert _action(await _context(api, other)) == "ask"
    assert sent == []  # both kept
