"""Prices on every turn, ``GET /api/models`` and provider discovery, through the HTTP API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from tests.conftest import Api

pytestmark = pytest.mark.anyio

# claude-sonnet-4-5 in the vendored map: 3e-6 in, 1.5e-5 out, 3e-7 cache read, 3.75e-6 write.
SONNET = {"in": 3e-6, "out": 1.5e-5, "read": 3e-7, "write": 3.75e-6}


async def start(api: Api, repo: Path, steps: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    body = {
        "prompt": "Work",
        "repo_path": str(repo),
        "provider": "script",
        "agent_options": {"scenario": {"steps": steps}, "permission_mode": "auto"},
        **extra,
    }
    resp = await api.post("/api/runs", json=body)
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


async def events(api: Api, run_id: str, kind: str) -> list[dict[str, Any]]:
    resp = await api.get(f"/api/runs/{run_id}/events?types={kind}&limit=500")
    return [e["data"] for e in resp.json()["data"]]


async def test_usage_without_a_cost_is_priced_from_the_map(sqlite_api: Api, git_repo: Path) -> None:
    api = sqlite_api
    steps = [
        {"usage": {"input_tokens": 1000, "output_tokens": 200, "cache_read_tokens": 5000}},
        {"usage": {"input_tokens": 10, "output_tokens": 10, "cost_usd": 0.25}},
        {"usage": {"input_tokens": 100, "cache_write_tokens": 100, "model": "gpt-5-codex"}},
        {"usage": {"input_tokens": 100, "output_tokens": 100, "model": "no-such-model"}},
    ]
    run = await start(api, git_repo, steps, model="claude-sonnet-4-5")
    done = await api.wait_status(run["id"], "review")
    first = 1000 * SONNET["in"] + 200 * SONNET["out"] + 5000 * SONNET["read"]
    third = 100 * 1.25e-6 + 100 * 1.25e-6  # gpt-5-codex: cache writes cost as input
    usage = await events(api, run["id"], "usage")
    assert [u["cost_source"] for u in usage] == ["price_map", "reported", "price_map", None]
    assert usage[0]["cost_usd"] == pytest.approx(first)
    assert usage[1]["cost_usd"] == 0.25
    assert usage[2]["cost_usd"] == pytest.approx(third)
    assert usage[3]["cost_usd"] is None
    total = first + 0.25 + third
    assert done["usage"]["cost_usd"] == pytest.approx(total, abs=1e-6)
    assert done["usage"]["input_tokens"] == 1210
    (end,) = await events(api, run["id"], "turn.completed")
    assert end["cost_usd"] == pytest.approx(total, abs=1e-6)
    telemetry = (await api.get(f"/api/runs/{run['id']}/telemetry")).json()
    assert telemetry["usage"]["cost_usd"] == pytest.approx(total, abs=1e-6)
    today = (await api.get("/api/usage?period=day")).json()
    assert today["total"]["cost_usd"] == pytest.approx(total, abs=1e-6)


async def test_a_computed_cost_counts_against_the_run_budget(
    sqlite_api: Api, git_repo: Path
) -> None:
    api = sqlite_api
    # 1000 in + 1000 out on claude-sonnet-4-5 = $0.018 > the $0.01 budget: no cost_usd given.
    steps = [{"usage": {"input_tokens": 1000, "output_tokens": 1000}}, {"bash": "echo later"}]
    run = await start(api, git_repo, steps, model="claude-sonnet-4-5", budget_usd=0.01)
    with anyio.fail_after(20):
        while True:
            resp = await api.get(f"/api/approvals?status=pending&run_id={run['id']}")
            rows = resp.json()["data"]
            if rows:
                break
            await anyio.sleep(0.02)
    (stop,) = rows
    assert stop["kind"] == "budget" and stop["input"]["cap"] == "run"
    assert stop["input"]["spent_usd"] == pytest.approx(0.018)
    assert await events(api, run["id"], "tool.result") == []


async def test_models_lists_prices_and_aliases(sqlite_api: Api) -> None:
    body = (await sqlite_api.get("/api/models")).json()
    assert body["next_cursor"] is None
    by_id = {m["id"]: m for m in body["data"]}
    assert {m["provider"] for m in body["data"]} == {"anthropic", "openai", "gemini", "dashscope"}
    sonnet = by_id["claude-sonnet-4-5"]
    assert sonnet == {
        "id": "claude-sonnet-4-5",
        "provider": "anthropic",
        "input_cost_per_token": 3e-6,
        "output_cost_per_token": 1.5e-5,
        "cache_read_input_token_cost": 3e-7,
        "cache_creation_input_token_cost": 3.75e-6,
        "max_input_tokens": 200000,
        "max_output_tokens": 64000,
        "aliases": [],
    }
    assert "gemini/gemini-2.5-pro" in by_id["gemini-2.5-pro"]["aliases"]
    assert "opus" in next(m for m in body["data"] if "opus" in m["aliases"])["aliases"]


@pytest.mark.parametrize(
    ("provider", "vendors"),
    [
        ("claude-code", {"anthropic"}),
        ("codex", {"openai"}),
        ("gemini", {"gemini"}),
        ("copilot", {"anthropic", "openai", "gemini", "dashscope"}),
        ("opencode", {"anthropic", "openai", "gemini", "dashscope"}),
        ("qwen", {"anthropic", "openai", "gemini", "dashscope"}),
        ("codex-acp", {"openai"}),
        ("claude-acp", {"anthropic"}),
    ],
)
async def test_models_of_a_provider(sqlite_api: Api, provider: str, vendors: set[str]) -> None:
    resp = await sqlite_api.get(f"/api/models?provider={provider}")
    assert resp.status_code == 200
    assert {m["provider"] for m in resp.json()["data"]} == vendors


async def test_an_empty_provider_lists_every_model(sqlite_api: Api) -> None:
    every = (await sqlite_api.get("/api/models")).json()["data"]
    assert (await sqlite_api.get("/api/models?provider=")).json()["data"] == every


async def test_models_of_an_unknown_provider_is_a_422_naming_the_valid_ones(
    sqlite_api: Api,
) -> None:
    resp = await sqlite_api.get("/api/models?provider=cursor")
    assert resp.status_code == 422
    assert resp.headers["content-type"].startswith("application/problem+json")
    problem = resp.json()
    assert problem["status"] == 422 and "cursor" in problem["detail"]
    for name in ("claude-code", "codex", "gemini", "copilot", "opencode"):
        assert name in problem["detail"] and name in problem["valid"]
    assert problem["errors"][0]["loc"] == ["query", "provider"]


async def test_models_and_providers_need_credentials(sqlite_api: Api) -> None:
    transport = httpx.ASGITransport(app=sqlite_api.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as anon:
        assert (await anon.get("/api/models")).status_code == 401
        assert (await anon.get("/api/providers")).status_code == 401


async def test_providers_report_where_their_program_is(sqlite_api: Api) -> None:
    data = (await sqlite_api.get("/api/providers")).json()["data"]
    by_name = {p["name"]: p for p in data}
    assert by_name["script"]["path"] is None  # built in: no program
    claude = by_name["claude-code"]
    if claude["available"]:
        assert claude["path"] and Path(claude["path"]).is_file()
        assert claude["path"].endswith("claude")
