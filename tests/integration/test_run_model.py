"""Switching a run's model: the next turn is priced (and run) with the new one."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import anyio
import pytest

from codeyard.pricing.prices import cost_usd
from tests.conftest import Api, make_repo

pytestmark = pytest.mark.anyio
MILLION_IN = {"input_tokens": 1_000_000, "output_tokens": 0}


async def usage_events(api: Api, run_id: str) -> list[dict[str, Any]]:
    events = (await api.get(f"/api/runs/{run_id}/events", params={"limit": 500})).json()["data"]
    kinds = ("usage", "run.model_changed", "run.model_applied")
    return [e for e in events if e["type"] in kinds]


async def test_the_next_turn_uses_the_switched_model(sqlite_api: Api, tmp_path: Path) -> None:
    api = sqlite_api
    repo = make_repo(tmp_path / "r")
    body = {
        "prompt": "go",
        "repo_path": str(repo),
        "provider": "script",
        "model": "gpt-4.1-mini",
        "agent_options": {
            "scenario": {"steps": [{"usage": MILLION_IN}]},
            "on_message": [{"usage": MILLION_IN}],
        },
    }
    created = await api.post("/api/runs", json=body)
    assert created.status_code == 201, created.text
    run = created.json()
    await api.wait_status(run["id"], "review")
    assert (await api.get(f"/api/runs/{run['id']}/model")).json() == {
        "run_id": run["id"],
        "provider": "script",
        "model": "gpt-4.1-mini",
        "applies": "now",
    }

    switched = await api.client.put(
        f"/api/runs/{run['number']}/model", json={"model": "claude-sonnet-4-5"}
    )
    assert switched.status_code == 200, switched.text
    assert switched.json()["model"] == "claude-sonnet-4-5"
    sent = await api.post(f"/api/runs/{run['id']}/messages", json={"text": "again"})
    assert sent.status_code == 202, sent.text
    with anyio.fail_after(30):
        while True:
            events = await usage_events(api, run["id"])
            if len([e for e in events if e["type"] == "usage"]) == 2:
                break
            await asyncio.sleep(0.05)
    first, changed, second = events
    assert changed["type"] == "run.model_changed"
    assert changed["data"] == {"from": "gpt-4.1-mini", "to": "claude-sonnet-4-5", "applies": "now"}
    assert first["data"]["cost_usd"] == pytest.approx(cost_usd("gpt-4.1-mini", MILLION_IN))
    assert second["data"]["cost_usd"] == pytest.approx(cost_usd("claude-sonnet-4-5", MILLION_IN))
    assert first["data"]["cost_usd"] != second["data"]["cost_usd"]


async def test_bad_model_names_are_refused(sqlite_api: Api, tmp_path: Path) -> None:
    api = sqlite_api
    repo = make_repo(tmp_path / "r")
    body = {
        "prompt": "go",
        "repo_path": str(repo),
        "provider": "script",
        "agent_options": {"scenario": {"steps": []}},
    }
    run = (await api.post("/api/runs", json=body)).json()
    for bad in ("", "x" * 201, "--dangerously-skip", "a b"):
        resp = await api.client.put(f"/api/runs/{run['id']}/model", json={"model": bad})
        assert resp.status_code == 422, (bad, resp.text)
    cleared = await api.client.put(f"/api/runs/{run['id']}/model", json={"model": None})
    assert cleared.status_code == 200 and cleared.json()["model"] is None
    missing = await api.client.put("/api/runs/run_nope/model", json={"model": "m"})
    assert missing.status_code == 404


async def test_a_switch_mid_turn_reaches_the_next_model_call(
    sqlite_api: Api, tmp_path: Path
) -> None:
    """The script agent switches mid-turn (``mid_turn_model``) the way Claude Code does through
    ``set_model``: the usage after the switch, in the same turn, is the new model's. The turn
    holds between its two model calls on a question, so the switch lands in between."""
    api = sqlite_api
    repo = make_repo(tmp_path / "r")
    steps: list[dict[str, Any]] = [{"usage": MILLION_IN}, {"ask": "Go on?"}, {"usage": MILLION_IN}]
    body = {
        "prompt": "go",
        "repo_path": str(repo),
        "provider": "script",
        "model": "gpt-4.1-mini",
        "agent_options": {"scenario": {"steps": steps}},
    }
    run = (await api.post("/api/runs", json=body)).json()
    await api.wait_status(run["id"], "waiting")
    live = await api.get(f"/api/runs/{run['id']}/model")
    assert live.json()["applies"] == "next_model_call"
    switched = await api.client.put(
        f"/api/runs/{run['id']}/model", json={"model": "claude-sonnet-4-5"}
    )
    assert switched.status_code == 200, switched.text
    assert switched.json()["applies"] == "next_model_call"
    with anyio.fail_after(20):  # the agent confirms the switch while it waits
        while "run.model_applied" not in [e["type"] for e in await usage_events(api, run["id"])]:
            await anyio.sleep(0.05)
    answered = await api.post(f"/api/runs/{run['id']}/messages", json={"text": "yes"})
    assert answered.status_code == 202, answered.text
    await api.wait_status(run["id"], "review")
    first, changed, applied, second = await usage_events(api, run["id"])
    assert changed["data"]["applies"] == "next_model_call"
    assert applied["type"] == "run.model_applied"
    assert applied["data"] == {"model": "claude-sonnet-4-5", "turn": 1}
    assert first["data"]["cost_usd"] == pytest.approx(cost_usd("gpt-4.1-mini", MILLION_IN))
    assert second["data"]["cost_usd"] == pytest.approx(cost_usd("claude-sonnet-4-5", MILLION_IN))
    # A switch back once the turn is over applies now, with no agent to tell.
    back = await api.client.put(f"/api/runs/{run['id']}/model", json={"model": "gpt-4.1-mini"})
    assert back.json()["applies"] == "now"
    assert [e["type"] for e in await usage_events(api, run["id"])][-1] == "run.model_changed"
