"""The run lifecycle through the HTTP API, on SQLite and PostgreSQL, with real git repos."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Api

pytestmark = pytest.mark.anyio


def scenario(*steps: dict[str, Any]) -> dict[str, Any]:
    return {"scenario": {"steps": list(steps)}}


async def create(api: Api, repo: Path, *steps: dict[str, Any], **extra: Any) -> dict[str, Any]:
    body = {
        "prompt": "Add a greeting",
        "repo_path": str(repo),
        "provider": "script",
        "agent_options": scenario(*steps),
        **extra,
    }
    resp = await api.post("/api/runs", json=body)
    assert resp.status_code == 201, resp.text
    return resp.json()


async def test_run_goes_from_queued_to_review_with_real_work(api: Api, git_repo: Path) -> None:
    run = await create(
        api,
        git_repo,
        {"think": "planning"},
        {"say": "Writing the file"},
        {"write": {"path": "hello.txt", "content": "hi\n"}},
        {"edit": {"path": "hello.txt", "old": "hi", "new": "hello"}},
        {"bash": "cat hello.txt && echo done"},
        {"tasks": [{"content": "write file", "status": "completed"}]},
        {"usage": {"input_tokens": 100, "output_tokens": 20, "cost_usd": 0.01}},
    )
    assert run["status"] == "queued" and run["number"] >= 1
    done = await api.wait_status(run["id"], "review")
    assert done["branch"] == f"codeyard/{run['number']}-add-a-greeting"
    assert done["turns"] == 1
    assert done["diff_stats"] == {"files": 1, "insertions": 1, "deletions": 0}
    assert done["usage"]["input_tokens"] == 100 and done["usage"]["cost_usd"] == pytest.approx(0.01)
    # The work happened in the worktree on the run branch, not in the user's checkout.
    assert not (git_repo / "hello.txt").exists()
    worktree = Path(api.services.settings.worktree_root)
    files = list(worktree.rglob("hello.txt"))
    assert len(files) == 1 and files[0].read_text() == "hello\n"
    branch = subprocess.run(
        ["git", "-C", str(files[0].parent), "branch", "--show-current"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert branch == done["branch"]

    events = (await api.get(f"/api/runs/{run['id']}/events?limit=500")).json()["data"]
    types = [e["type"] for e in events]
    assert types[0] == "run.created"
    statuses = [(e["data"]["from"], e["data"]["to"]) for e in events if e["type"] == "run.status"]
    assert statuses == [("queued", "preparing"), ("preparing", "running"), ("running", "review")]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)

    cmds = (await api.get(f"/api/runs/{run['number']}/commands")).json()["data"]
    assert cmds[0]["command"] == "cat hello.txt && echo done" and cmds[0]["exit_code"] == 0
    assert "done" in cmds[0]["output_tail"]
    assert (await api.get(f"/api/runs/{run['id']}/tasks")).json()["tasks"][0][
        "status"
    ] == "completed"
    logs = (await api.get(f"/api/runs/{run['id']}/logs")).text
    assert "$ cat hello.txt && echo done" in logs and "hello" in logs
    transcript = (await api.get(f"/api/runs/{run['id']}/transcript")).json()["items"]
    assert [i["kind"] for i in transcript][:3] == ["user", "thinking", "assistant"]
    telemetry = (await api.get(f"/api/runs/{run['id']}/telemetry")).json()
    assert telemetry["tools"]["Bash"]["calls"] == 1 and telemetry["turns"] == 1
    snap = (await api.get(f"/api/runs/{run['id']}/snapshot")).json()
    assert snap["run"]["status"] == "review" and snap["last_event_id"] == events[-1]["id"]
    timeline = (await api.get(f"/api/runs/{run['id']}/timeline")).json()["items"]
    assert any(i["type"] == "status" and i["to"] == "review" for i in timeline)


async def test_denied_step_and_failing_command_are_reported(api: Api, git_repo: Path) -> None:
    run = await create(
        api,
        git_repo,
        {"write": {"path": "x.txt", "content": "x"}, "deny": True},
        {"bash": "exit 3"},
    )
    await api.wait_status(run["id"], "review")
    events = (
        await api.get(f"/api/runs/{run['id']}/events?types=tool.result,policy.decision")
    ).json()["data"]
    decisions = [e["data"]["decision"] for e in events if e["type"] == "policy.decision"]
    assert decisions == ["deny", "allow"]
    results = [e["data"] for e in events if e["type"] == "tool.result"]
    assert results[0]["ok"] is False and "Denied" in results[0]["error"]
    assert results[1]["ok"] is False and results[1]["exit_code"] == 3
    assert not list(Path(api.services.settings.worktree_root).rglob("x.txt"))


async def test_fail_step_fails_run_and_resume_continues_after_it(api: Api, git_repo: Path) -> None:
    run = await create(api, git_repo, {"say": "one"}, {"fail": "tool exploded"}, {"say": "after"})
    failed = await api.wait_status(run["id"], "failed")
    assert failed["status_reason"] == "tool exploded"
    resp = await api.post(f"/api/runs/{run['id']}/resume", json={})
    assert resp.status_code == 200 and resp.json()["status"] == "queued"
    await api.wait_status(run["id"], "review")
    items = (await api.get(f"/api/runs/{run['id']}/transcript")).json()["items"]
    said = [i["text"] for i in items if i["kind"] == "assistant"]
    assert said == ["one", "after"]


async def test_ask_waits_for_an_operator_message(api: Api, git_repo: Path) -> None:
    run = await create(api, git_repo, {"ask": "Which name?"}, {"say": "ok"})
    waiting = await api.wait_status(run["id"], "waiting")
    assert waiting["status_reason"] == "question"
    resp = await api.post(f"/api/runs/{run['id']}/messages", json={"text": "Ada"})
    assert resp.status_code == 202
    await api.wait_status(run["id"], "review")
    said = [
        i["text"]
        for i in (await api.get(f"/api/runs/{run['id']}/transcript")).json()["items"]
        if i["kind"] == "assistant"
    ]
    assert said == ["Which name?", "Thanks: Ada", "ok"]


async def test_message_in_review_starts_next_turn_in_same_worktree(
    api: Api, git_repo: Path
) -> None:
    options = {
        **scenario({"write": {"path": "a.txt", "content": "1"}}),
        "on_message": [{"bash": "test -f a.txt && echo still-here"}],
    }
    resp = await api.post(
        "/api/runs",
        json={
            "prompt": "Add a greeting",
            "repo_path": str(git_repo),
            "provider": "script",
            "agent_options": options,
        },
    )
    run = resp.json()
    first = await api.wait_status(run["id"], "review")
    resp = await api.post(f"/api/runs/{run['id']}/messages", json={"text": "Now check it"})
    assert resp.status_code == 202 and resp.json()["status"] == "queued"
    second = await api.wait_status(run["id"], "review")
    assert second["turns"] == 2 and second["branch"] == first["branch"]
    items = (await api.get(f"/api/runs/{run['id']}/transcript")).json()["items"]
    assert [i["text"] for i in items if i["kind"] == "user"] == ["Add a greeting", "Now check it"]
    cmds = (await api.get(f"/api/runs/{run['id']}/commands")).json()["data"]
    assert cmds[-1]["exit_code"] == 0 and "still-here" in cmds[-1]["output_tail"]


async def test_turn_completed_reports_that_turns_usage(api: Api, git_repo: Path) -> None:
    options = {
        **scenario({"usage": {"input_tokens": 10, "output_tokens": 1, "cost_usd": 0.5}}),
        "on_message": [{"usage": {"input_tokens": 7, "output_tokens": 2, "cost_usd": 0.25}}],
    }
    run = (
        await api.post(
            "/api/runs",
            json={
                "prompt": "p",
                "repo_path": str(git_repo),
                "provider": "script",
                "agent_options": options,
            },
        )
    ).json()
    await api.wait_status(run["id"], "review")
    await api.post(f"/api/runs/{run['id']}/messages", json={"text": "again"})
    done = await api.wait_status(run["id"], "review")
    ends = (await api.get(f"/api/runs/{run['id']}/events?types=turn.completed")).json()["data"]
    assert [e["data"]["usage"]["input_tokens"] for e in ends] == [10, 7]
    assert [e["data"]["cost_usd"] for e in ends] == [0.5, 0.25]
    assert done["usage"]["input_tokens"] == 17 and done["usage"]["cost_usd"] == pytest.approx(0.75)


async def test_pause_resume_and_cancel(api: Api, git_repo: Path) -> None:
    run = await create(api, git_repo, {"say": "start"}, {"sleep": 30}, {"say": "end"})
    await api.wait_status(run["id"], "running")
    paused = (await api.post(f"/api/runs/{run['id']}/pause")).json()
    assert paused["status"] == "paused"
    again = await api.post(f"/api/runs/{run['id']}/pause")
    assert again.status_code == 409 and again.json()["current_status"] == "paused"
    resumed = (await api.post(f"/api/runs/{run['id']}/resume", json={})).json()
    assert resumed["status"] == "queued"
    await api.wait_status(run["id"], "running")
    cancelled = (await api.post(f"/api/runs/{run['id']}/cancel")).json()
    assert cancelled["status"] == "cancelled"


async def test_draft_start_list_filters_archive_and_cursor(api: Api, git_repo: Path) -> None:
    drafts = [
        await create(api, git_repo, {"say": str(i)}, draft=True, title=f"draft {i}")
        for i in range(3)
    ]
    assert all(d["status"] == "draft" for d in drafts)
    page1 = (await api.get("/api/runs?limit=2")).json()
    assert [r["number"] for r in page1["data"]] == [drafts[2]["number"], drafts[1]["number"]]
    page2 = (await api.get(f"/api/runs?limit=2&cursor={page1['next_cursor']}")).json()
    assert [r["number"] for r in page2["data"]] == [drafts[0]["number"]] and page2[
        "next_cursor"
    ] is None
    assert (await api.post(f"/api/runs/{drafts[0]['id']}/start")).json()["status"] == "queued"
    await api.wait_status(drafts[0]["id"], "review")
    only_drafts = (await api.get("/api/runs?status=draft")).json()["data"]
    assert {r["id"] for r in only_drafts} == {drafts[1]["id"], drafts[2]["id"]}
    assert (await api.get("/api/runs?q=DRAFT 1")).json()["data"][0]["id"] == drafts[1]["id"]
    await api.post(f"/api/runs/{drafts[1]['id']}/archive")
    listed = {r["id"] for r in (await api.get("/api/runs")).json()["data"]}
    assert drafts[1]["id"] not in listed
    archived = (await api.get("/api/runs?archived=true")).json()["data"]
    assert [r["id"] for r in archived] == [drafts[1]["id"]]
    assert (await api.get(f"/api/runs/{drafts[1]['number']}")).json()["archived"] is True


async def test_delete_removes_worktree_branch_and_events(api: Api, git_repo: Path) -> None:
    run = await create(api, git_repo, {"write": {"path": "f.txt", "content": "x"}})
    done = await api.wait_status(run["id"], "review")
    assert (await api.delete(f"/api/runs/{run['id']}")).status_code == 204
    assert (await api.get(f"/api/runs/{run['id']}")).status_code == 404
    branches = subprocess.run(
        ["git", "-C", str(git_repo), "branch", "--list", done["branch"]],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert branches.strip() == ""
    refs = subprocess.run(
        ["git", "-C", str(git_repo), "for-each-ref", "refs/codeyard/"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert refs == ""
    assert not list(Path(api.services.settings.worktree_root).rglob("f.txt"))


async def test_follow_up_starts_from_parent_branch_and_retry_from_source(
    api: Api, git_repo: Path
) -> None:
    run = await create(
        api,
        git_repo,
        {"write": {"path": "p.txt", "content": "parent"}},
        {"bash": "git add -A && git commit -qm parent-work"},
    )
    await api.wait_status(run["id"], "review")
    child = (
        await api.post(
            f"/api/runs/{run['id']}/follow-up",
            json={"prompt": "Continue", "agent_options": scenario({"bash": "cat p.txt"})},
        )
    ).json()
    assert child["parent_run_id"] == run["id"]
    await api.wait_status(child["id"], "review")
    cmds = (await api.get(f"/api/runs/{child['id']}/commands")).json()["data"]
    assert cmds[0]["exit_code"] == 0 and "parent" in cmds[0]["output_tail"]
    retry = (await api.post(f"/api/runs/{run['id']}/retry")).json()
    assert retry["prompt"] == run["prompt"] and retry["base_commits"] == run["base_commits"]
