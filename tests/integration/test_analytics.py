"""Analytics from the event log: rollups that reconcile, survive restarts and filter correctly.

Runs use the `script` provider, whose usage, message and tool steps take the same path (sink →
writer → event log → rollup consumer) as real agents' events.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest

from codeyard.config import Settings
from codeyard.pricing import cost_usd
from tests.conftest import Api, make_repo, open_api

pytestmark = pytest.mark.anyio

SONNET = "claude-sonnet-4-5"


async def run_script(api: Api, repo: Path, *steps: dict[str, Any], **extra: Any) -> str:
    body = {
        "prompt": "Work",
        "repo_path": str(repo),
        "provider": "script",
        "agent_options": {"scenario": {"steps": list(steps)}},
        **extra,
    }
    resp = await api.post("/api/runs", json=body)
    assert resp.status_code == 201, resp.text
    run_id = str(resp.json()["id"])
    await api.wait_status(run_id, "review", "failed")
    return run_id


async def settle(api: Api) -> None:
    """Apply everything committed so far (the consumer also does this on its own)."""
    await api.app.state.subscribers.rollup.catch_up()


async def test_totals_reconcile_with_the_events_and_flag_a_cost_gap(
    api: Api, git_repo: Path
) -> None:
    priced = {"input_tokens": 1000, "output_tokens": 200, "cache_read_tokens": 5000}
    honest = cost_usd(SONNET, priced)
    assert honest is not None
    first = await run_script(
        api,
        git_repo,
        {"say": "hello"},
        {"usage": {**priced, "model": SONNET}},  # priced by Codeyard
        {"write": {"path": "a.txt", "content": "a"}},
        {"edit": {"path": "a.txt", "old": "not there", "new": "b"}},  # fails
        {"usage": {**priced, "model": SONNET, "cost_usd": honest}},  # reported, agrees
    )
    planted = await run_script(
        api,
        git_repo,
        # The CLI reports ten times what the tokens cost: the gap must be flagged.
        {"usage": {**priced, "model": SONNET, "cost_usd": round(honest * 10, 6)}},
    )
    await settle(api)

    ov = (await api.get("/api/analytics/overview?range=today")).json()
    assert ov["runs"] == 2 and ov["active_runs"] == 0
    assert ov["input_tokens"] == 3000 and ov["output_tokens"] == 600
    assert ov["cache_read_tokens"] == 15000
    assert ov["usage_events"] == 3 and ov["reported_events"] == 2
    assert ov["cost_usd"] == pytest.approx(honest * 12, rel=1e-6)
    assert ov["computed_cost_usd"] == pytest.approx(honest * 3, rel=1e-6)
    assert ov["reported_cost_usd"] == pytest.approx(honest * 11, rel=1e-6)
    assert ov["cache_hit_rate"] == pytest.approx(15000 / 18000, abs=1e-4)
    assert ov["agent_messages"] >= 1
    assert ov["finished_runs"] == 2 and ov["success_rate"] == 1.0  # both in review
    # The repo filter (repo ids are a JSON list on the run) takes another path: same answer.
    repo_id = (await api.get(f"/api/runs/{first}")).json()["repo_ids"][0]
    by_repo = (await api.get(f"/api/analytics/overview?range=today&repo={repo_id}")).json()
    assert {k: by_repo[k] for k in ("runs", "finished_runs", "input_tokens")} == {
        "runs": 2,
        "finished_runs": 2,
        "input_tokens": 3000,
    }
    assert (await api.get("/api/analytics/overview?range=today&repo=nope")).json()["runs"] == 0

    models = (await api.get("/api/analytics/models?range=today")).json()["data"]
    (sonnet,) = [m for m in models if m["model"] == SONNET]
    assert sonnet["usage_events"] == 3 and sonnet["cost_usd"] == pytest.approx(honest * 12)
    assert sonnet["runs"] == 2 and sonnet["minutes"] > 0
    assert sonnet["cost_per_run"] == pytest.approx(honest * 6, rel=1e-4)

    runs = {r["id"]: r for r in (await api.get("/api/analytics/runs")).json()["data"]}
    assert runs[planted]["cost_mismatch"] is True
    assert runs[first]["cost_mismatch"] is False
    assert runs[first]["tool_calls"] == 2 and runs[first]["tool_failures"] == 1

    tools = (await api.get("/api/analytics/tools?range=7d")).json()["data"]
    by_tool = {t["tool"]: t for t in tools}
    assert by_tool["Write"]["count"] == 1 and by_tool["Write"]["failure_rate"] == 0.0
    assert by_tool["Edit"]["failures"] == 1 and by_tool["Edit"]["failure_rate"] == 1.0
    assert by_tool["Write"]["p50_ms"] is not None
    assert by_tool["Write"]["p50_ms"] <= by_tool["Write"]["p99_ms"]

    resp = await api.get("/api/analytics/models?range=today", headers={"Accept": "text/csv"})
    assert resp.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(resp.text)))
    assert [r["model"] for r in rows if r["model"] == SONNET] == [SONNET]
    assert float(rows[0]["cost_usd"]) == pytest.approx(honest * 12, rel=1e-6)


async def test_filters_and_days_in_the_viewers_time_zone(api: Api, git_repo: Path) -> None:
    await run_script(api, git_repo, {"usage": {"input_tokens": 10, "model": SONNET}})
    await settle(api)
    assert (await api.get("/api/analytics/overview?provider=codex")).json()["input_tokens"] == 0
    assert (await api.get("/api/analytics/overview?provider=script")).json()["input_tokens"] == 10
    days = (await api.get("/api/analytics/token-usage?range=7d&tz=Pacific/Kiritimati")).json()
    assert sum(d["input_tokens"] for d in days["data"]) == 10
    bad = await api.get("/api/analytics/overview?tz=Mars/Olympus")
    assert bad.status_code == 400 and "IANA" in bad.json()["detail"]
    missing = await api.get("/api/analytics/pricing")
    assert missing.status_code == 400
    prices = (await api.get(f"/api/analytics/pricing?models={SONNET},nope-1")).json()["data"]
    assert prices[0]["id"] == SONNET and prices[1]["id"] is None


async def test_a_restart_and_a_replay_never_count_twice(
    sqlite_settings: Settings, git_repo: Path
) -> None:
    async for api in open_api(sqlite_settings):
        await run_script(api, git_repo, {"usage": {"input_tokens": 7, "model": SONNET}})
        await settle(api)
        await settle(api)  # nothing new: nothing added
        before = (await api.get("/api/analytics/overview?range=all")).json()
        assert before["input_tokens"] == 7
    async for api in open_api(sqlite_settings):
        await settle(api)
        after = (await api.get("/api/analytics/overview?range=all")).json()
        assert after["input_tokens"] == 7 and after["usage_events"] == 1
        await run_script(api, git_repo, {"usage": {"input_tokens": 5, "model": SONNET}})
        await settle(api)
        assert (await api.get("/api/analytics/overview?range=all")).json()["input_tokens"] == 12


async def test_policy_decisions_by_repo(api: Api, git_repo: Path, tmp_path: Path) -> None:
    """Decisions are counted per rule and tool, and a repo filter keeps only that repo's runs
    (on PostgreSQL too, where the runs' JSON repo list cannot be grouped by directly)."""
    other = make_repo(tmp_path / "other", {"README.md": "other\n"})
    first = await run_script(api, git_repo, {"write": {"path": "a.txt", "content": "a"}})
    await run_script(
        api,
        other,
        {"write": {"path": "b.txt", "content": "b"}},
        {"write": {"path": "c.txt", "content": "c"}},
    )
    repo_id = (await api.get(f"/api/runs/{first}")).json()["repo_ids"][0]

    def writes(rows: list[dict[str, Any]]) -> int:
        return sum(r["allow"] + r["ask"] + r["deny"] for r in rows if r["tool"] == "Write")

    everything = (await api.get("/api/analytics/policy-decisions?range=all")).json()["data"]
    assert writes(everything) == 3
    one_repo = await api.get(f"/api/analytics/policy-decisions?range=all&repo={repo_id}")
    assert one_repo.status_code == 200, one_repo.text
    assert writes(one_repo.json()["data"]) == 1


async def test_run_minutes_are_read_from_run_seconds_kept_with_finished_at(
    api: Api, git_repo: Path
) -> None:
    """The status door writes ``run_seconds`` with ``finished_at``; analytics sums it, and
    parses the dates only for a row without it (both give the same minutes)."""
    from datetime import datetime

    from sqlalchemy import select, update

    from codeyard.store import schema

    run_id = await run_script(api, git_repo, {"usage": {"input_tokens": 10, "model": SONNET}})
    await settle(api)
    engine = api.app.state.services.engine
    runs = schema.runs
    async with engine.connect() as conn:
        row = (await conn.execute(select(runs).where(runs.c.id == run_id))).one()
    fmt = "%Y-%m-%dT%H:%M:%S.%fZ"
    elapsed = datetime.strptime(row.finished_at, fmt) - datetime.strptime(row.started_at, fmt)
    assert row.run_seconds == pytest.approx(elapsed.total_seconds(), abs=1e-3)

    async def minutes() -> float:
        models = (await api.get("/api/analytics/models?range=today")).json()["data"]
        return float(next(m for m in models if m["model"] == SONNET)["minutes"])

    kept = await minutes()
    for value, expected in ((None, kept), (600.0, 10.0)):
        async with engine.begin() as conn:
            await conn.execute(update(runs).where(runs.c.id == run_id).values(run_seconds=value))
        assert await minutes() == pytest.approx(expected, abs=1e-3)
