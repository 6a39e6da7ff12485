"""Settings, disk usage and retention: old worktrees go, unmerged work and active runs stay."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from codeyard.cli.testing import invoke
from codeyard.config import Settings
from codeyard.services.retention import DailyGc
from tests.conftest import Api, make_repo, open_api

pytestmark = pytest.mark.anyio

OLD = "2020-01-01T00:00:00.000Z"


def branches(repo: Path) -> list[str]:
    out = subprocess.run(
        ["git", "-C", str(repo), "branch", "--format=%(refname:short)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sorted(out.split())


async def put(api: Api, body: dict[str, Any]) -> httpx.Response:
    return await api.request("PUT", "/api/settings", json=body)


async def test_settings_defaults_update_and_persistence(api: Api, settings: Settings) -> None:
    resp = await api.get("/api/settings")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body.pop("sandbox_status")["mode"] == "on"  # read-only (test_sandbox_api.py)
    assert body == {
        "max_concurrent_runs": 4,
        "worktree_root": str(settings.worktree_root),
        "retention_days": None,
        "default_agent_id": None,
        "approval_timeout_hours": 10.0,
        "budgets": {"daily_usd": None, "monthly_usd": None},
        "auto_resume": False,
        "gates": {},
        "sandbox": "on",
        "require_review_to_merge": False,
    }
    agent = await api.post("/api/agents", json={"name": "bot", "provider": "script"})
    changed = await put(
        api,
        {
            "retention_days": 7,
            "budgets": {"daily_usd": 5},
            "default_agent_id": agent.json()["id"],
            "auto_resume": True,
            "max_concurrent_runs": 2,
        },
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["retention_days"] == 7 and body["auto_resume"] is True
    assert body["budgets"] == {"daily_usd": 5.0, "monthly_usd": None}
    assert body["default_agent_id"] == agent.json()["id"] and body["max_concurrent_runs"] == 2
    # Fields left out keep their value; GET's own output can be sent back as is.
    body = (await put(api, {"budgets": {"monthly_usd": 50}})).json()
    assert body["budgets"] == {"daily_usd": 5.0, "monthly_usd": 50.0}
    again = await put(api, body)
    assert again.status_code == 200 and again.json() == body
    assert (await api.get("/api/settings")).json() == body
    body = (await put(api, {"retention_days": None})).json()
    assert body["retention_days"] is None and body["auto_resume"] is True


async def test_stored_settings_survive_a_restart(sqlite_settings: Settings) -> None:
    async for api in open_api(sqlite_settings):
        assert (await put(api, {"retention_days": 3, "max_concurrent_runs": 1})).status_code == 200
    async for api in open_api(sqlite_settings):
        body = (await api.get("/api/settings")).json()
        assert body["retention_days"] == 3 and body["max_concurrent_runs"] == 1
        assert len(api.services.executor._workers) == 1  # applied when the executor started


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"retention_days": 0}, "retention_days"),
        ({"retention_days": "soon"}, "retention_days"),
        ({"max_concurrent_runs": 0}, "max_concurrent_runs"),
        ({"max_concurrent_runs": None}, "max_concurrent_runs"),
        ({"approval_timeout_hours": 0}, "approval_timeout_hours"),
        ({"budgets": {"daily_usd": -1}}, "daily_usd"),
        ({"budgets": {"weekly_usd": 1}}, "weekly_usd"),
        ({"colour": "blue"}, "colour"),
        ({"worktree_root": "/tmp/elsewhere"}, "worktree_root"),
        ({"default_agent_id": "agt_missing"}, "default_agent_id"),
    ],
)
async def test_invalid_settings_are_refused(
    sqlite_api: Api, body: dict[str, Any], field: str
) -> None:
    before = (await sqlite_api.get("/api/settings")).json()
    resp = await put(sqlite_api, body)
    assert resp.status_code == 422, resp.text
    problem = resp.json()
    assert field in problem["detail"] and any(field in e["loc"] for e in problem["errors"])
    assert (await sqlite_api.get("/api/settings")).json() == before


async def run(api: Api, repo: Path, *steps: dict[str, Any]) -> dict[str, Any]:
    body = {
        "prompt": "Work",
        "repo_path": str(repo),
        "provider": "script",
        "agent_options": {"scenario": {"steps": list(steps)}},
    }
    resp = await api.post("/api/runs", json=body)
    assert resp.status_code == 201, resp.text
    created: dict[str, Any] = resp.json()
    return created


async def backdate(api: Api, *run_ids: str) -> None:
    async with api.services.engine.begin() as conn:
        for run_id in run_ids:
            await conn.execute(
                text("UPDATE runs SET finished_at = :old WHERE id = :id"),
                {"old": OLD, "id": run_id},
            )


def worktree(api: Api, number: int) -> Path:
    found = list(Path(api.services.settings.worktree_root).glob(f"*/{number}-*/*"))
    assert len(found) == 1, found
    return found[0]


async def test_gc_reclaims_old_worktrees_and_keeps_unmerged_work(api: Api, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "proj")
    commit = {"bash": "echo work > work.txt && git add -A && git commit -qm work"}
    unmerged = await run(api, repo, commit)
    merged = await run(api, repo, {"say": "nothing to change"})
    recent = await run(api, repo, {"write": {"path": "r.txt", "content": "r"}})
    active = await run(api, repo, {"ask": "Which one?"})
    for r in (unmerged, merged, recent):
        await api.wait_status(r["id"], "review")
    await api.wait_status(active["id"], "waiting")
    numbers = {r["number"]: r for r in (unmerged, merged, recent, active)}
    trees = {n: worktree(api, n) for n in numbers}
    await backdate(api, unmerged["id"], merged["id"])
    repo_id = unmerged["repo_ids"][0]
    patch = {"cleanup_script": "echo tidying; exit 5"}
    assert (await api.request("PATCH", f"/api/repos/{repo_id}", json=patch)).status_code == 200

    usage = (await api.get("/api/disk-usage")).json()
    assert usage["reclaimable_bytes"] == 0 and usage["retention_days"] is None
    assert (await put(api, {"retention_days": 7})).status_code == 200
    usage = (await api.get("/api/disk-usage")).json()
    [project] = usage["projects"]
    by_number = {r["number"]: r for r in project["runs"]}
    assert set(by_number) == set(numbers)
    assert all(r["bytes"] > 0 for r in by_number.values())
    assert project["bytes"] == usage["total_bytes"] == sum(r["bytes"] for r in project["runs"])
    old = [by_number[unmerged["number"]], by_number[merged["number"]]]
    assert [r["reclaimable"] for r in by_number.values()].count(True) == 2
    assert all(r["reclaimable"] and r["finished_at"] == OLD for r in old)
    assert usage["reclaimable_bytes"] == sum(r["bytes"] for r in old)
    assert by_number[active["number"]]["status"] == "waiting"

    dry = (await api.post("/api/gc", json={"dry_run": True})).json()
    assert dry["freed_bytes"] == usage["reclaimable_bytes"]
    assert all(p.exists() for p in trees.values())

    freed = (await api.post("/api/gc")).json()
    assert freed["retention_days"] == 7 and freed["errors"] == []
    assert sorted(r["run_id"] for r in freed["runs"]) == sorted([unmerged["id"], merged["id"]])
    assert freed["freed_bytes"] == usage["reclaimable_bytes"]
    assert not trees[unmerged["number"]].exists() and not trees[merged["number"]].exists()
    assert trees[recent["number"]].exists() and trees[active["number"]].exists()
    kept = {r["run_id"]: r for r in freed["runs"]}
    branch_of = {n: f"codeyard/{n}-work" for n in numbers}
    assert kept[unmerged["id"]]["branches_kept"] == [
        {"repo_id": repo_id, "branch": branch_of[unmerged["number"]]}
    ]
    assert kept[merged["id"]]["branches_deleted"] == [
        {"repo_id": repo_id, "branch": branch_of[merged["number"]]}
    ]
    gone = branch_of.pop(merged["number"])
    assert branches(repo) == sorted(["main", *branch_of.values()]) and gone not in branches(repo)

    after = (await api.get(f"/api/runs/{unmerged['id']}")).json()
    assert after["status"] == "review"  # the run and its history stay
    events = (await api.get(f"/api/runs/{unmerged['id']}/events?limit=500")).json()["data"]
    removed = [e["data"] for e in events if e["type"] == "workspace.removed"]
    assert removed and removed[0]["reason"] == "retention" and removed[0]["bytes"] > 0
    cleanup = [e["data"] for e in events if e["type"] == "tool.call"][-1]
    assert cleanup["tool"] == "cleanup_script"
    assert cleanup["title"] == "cleanup: echo tidying; exit 5"
    errors = [e["data"] for e in events if e["type"] == "error"]
    assert errors[-1]["message"] == "Cleanup script failed (exit 5)."
    assert "tidying" in errors[-1]["detail"]
    assert (await api.get(f"/api/runs/{unmerged['id']}/workspace")).status_code == 409

    usage = (await api.get("/api/disk-usage")).json()
    assert usage["reclaimable_bytes"] == 0
    assert {r["number"] for r in usage["projects"][0]["runs"]} == {
        recent["number"],
        active["number"],
    }
    assert (await api.post("/api/gc")).json()["runs"] == []  # nothing left to reclaim

    # A message brings the reclaimed run back on its kept branch, with its committed work.
    await api.request("PATCH", f"/api/repos/{repo_id}", json={"cleanup_script": None})
    await api.post(f"/api/runs/{unmerged['id']}/messages", json={"text": "again"})
    back = await api.wait_status(unmerged["id"], "review", "failed")
    assert back["status"] == "review", back["status_reason"]
    assert (worktree(api, unmerged["number"]) / "work.txt").read_text() == "work\n"
    await api.post(f"/api/runs/{active['id']}/cancel")


async def test_gc_without_retention_or_with_bad_input(sqlite_api: Api, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "keep")
    done = await run(sqlite_api, repo, {"say": "hi"})
    await sqlite_api.wait_status(done["id"], "review")
    await backdate(sqlite_api, done["id"])
    result = (await sqlite_api.post("/api/gc")).json()
    assert result["retention_days"] is None and result["runs"] == [] and result["freed_bytes"] == 0
    assert (await sqlite_api.post("/api/gc", json={"older_than_days": -1})).status_code == 422
    assert (await sqlite_api.post("/api/gc", json={"days": 1})).status_code == 422
    result = (await sqlite_api.post("/api/gc", json={"older_than_days": 30})).json()
    assert [r["run_id"] for r in result["runs"]] == [done["id"]] and result["freed_bytes"] > 0
    assert branches(repo) == ["main"]  # nothing was committed: the branch was merged, so it went


async def test_deleting_a_reclaimed_run_removes_its_kept_branch(
    sqlite_api: Api, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "later")
    done = await run(sqlite_api, repo, {"bash": "echo w > w.txt && git add -A && git commit -qm w"})
    done = await sqlite_api.wait_status(done["id"], "review")
    await backdate(sqlite_api, done["id"])
    result = (await sqlite_api.post("/api/gc", json={"older_than_days": 1})).json()
    assert result["runs"][0]["branches_kept"][0]["branch"] == done["branch"]
    assert branches(repo) == sorted(["main", done["branch"]])
    assert (await sqlite_api.delete(f"/api/runs/{done['id']}")).status_code == 204
    assert branches(repo) == ["main"]


async def test_the_daily_pass_reclaims_on_its_own(sqlite_api: Api, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "daily")
    done = await run(sqlite_api, repo, {"say": "hi"})
    await sqlite_api.wait_status(done["id"], "review")
    tree = worktree(sqlite_api, done["number"])
    await backdate(sqlite_api, done["id"])
    await put(sqlite_api, {"retention_days": 1})
    daily = DailyGc(sqlite_api.services, interval=0.05, first_delay=0)
    daily.start()
    try:
        deadline = asyncio.get_running_loop().time() + 30
        while tree.exists() and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
    finally:
        await daily.stop()
    assert not tree.exists()


def test_cli_gc_prints_what_was_freed() -> None:
    seen: list[httpx.Request] = []
    answer = {
        "retention_days": 14,
        "dry_run": False,
        "freed_bytes": 3 * 1024 * 1024,
        "runs": [
            {
                "run_id": "run_a",
                "number": 7,
                "status": "completed",
                "finished_at": OLD,
                "bytes": 3 * 1024 * 1024,
                "branches_kept": [{"repo_id": "repo_x", "branch": "codeyard/7-fix"}],
            }
        ],
        "errors": [],
    }

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=answer)

    result = invoke(
        ["gc", "--older-than", "14"],
        server="http://cy.test",
        token="tok",
        transport=httpx.MockTransport(handler),
    )
    assert result.exit_code == 0, result.output
    assert seen[0].url.path == "/api/gc"
    assert json.loads(seen[0].content) == {"dry_run": False, "older_than_days": 14}
    assert "#7" in result.stdout and "codeyard/7-fix" in result.stdout
    assert "Freed 3.0 MB from 1 run finished more than 14 days ago." in result.stdout

    answer.update(retention_days=None, runs=[], freed_bytes=0)
    result = invoke(
        ["gc"], server="http://cy.test", token="tok", transport=httpx.MockTransport(handler)
    )
    assert result.exit_code == 0 and "Retention is off" in result.stdout
