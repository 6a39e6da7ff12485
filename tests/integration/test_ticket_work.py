"""An agent working a ticket, reviews that gate landing, and work queues, end to end with the
script provider in real git repositories on SQLite."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.conftest import TOKEN, Api, make_repo
from tests.integration.test_tickets import make_project, ticket

pytestmark = pytest.mark.anyio


def show(repo: Path, ref_path: str) -> str:
    """A file as committed on a branch of the user's repository (git, independent of Codeyard)."""
    done = subprocess.run(
        ["git", "show", ref_path], cwd=repo, capture_output=True, text=True, check=False
    )
    return done.stdout if done.returncode == 0 else f"<missing: {done.stderr.strip()}>"


async def profile(api: Api, name: str, *steps: dict[str, Any]) -> str:
    body = {
        "name": name,
        "provider": "script",
        "permission_mode": "auto",  # these tests are about tickets, not approvals
        "provider_config": {"scenario": {"steps": list(steps)}},
    }
    resp = await api.post("/api/agents", json=body)
    assert resp.status_code == 201, resp.text
    agent_id: str = resp.json()["id"]
    return agent_id


async def assign(api: Api, number: int, agent_id: str) -> None:
    resp = await api.request(
        "PATCH", f"/api/projects/shop/tickets/{number}/assign", json={"agent_id": agent_id}
    )
    assert resp.status_code == 200, resp.text


async def wait_for(
    api: Api, path: str, key: str, *values: Any, timeout: float = 25
) -> dict[str, Any]:
    body: dict[str, Any] = {}
    with anyio.move_on_after(timeout):
        while True:
            body = (await api.get(path)).json()
            if body.get(key) in values:
                return body
            await anyio.sleep(0.05)
    raise AssertionError(f"{path} never had {key} in {values}: {body}")


async def test_ticket_agent_review_and_gated_merge(sqlite_api: Api, git_repo: Path) -> None:
    api = sqlite_api
    await make_project(api, git_repo)
    writer = await profile(api, "writer", {"write": {"path": "notes.txt", "content": "one\n"}})
    await ticket(api, "shop", title="Write notes", body="Put the notes in notes.txt.")
    await api.post("/api/projects/shop/tickets/1/comments", json={"body": "Keep it short."})
    not_yet = await api.get("/api/projects/shop/tickets/1/diff")
    assert not_yet.status_code == 409 and "agent/start" in not_yet.json()["detail"]
    await assign(api, 1, writer)

    started = await api.post("/api/projects/shop/tickets/1/agent/start")
    assert started.status_code == 201, started.text
    run = started.json()
    assert run["agent_id"] == writer and run["title"] == "#1 Write notes"
    assert "Put the notes in notes.txt." in run["prompt"] and "Keep it short." in run["prompt"]
    again = await api.post("/api/projects/shop/tickets/1/agent/start")
    assert again.status_code in (201, 409)  # 409 while it works; a fast run may be done
    await api.wait_status(run["id"], "review")
    ticket_now = await wait_for(api, "/api/projects/shop/tickets/1", "status", "in_review")
    assert ticket_now["current_run_id"] == run["id"]
    status = (await api.get("/api/projects/shop/tickets/1/agent/status")).json()
    assert status["run"]["id"] == run["id"] and status["working"] is False

    stats = await api.get("/api/projects/shop/tickets/1/diff/stats")
    assert stats.json() == {"files": 1, "insertions": 1, "deletions": 0}
    assert "+one" in (await api.get("/api/projects/shop/tickets/1/diff")).text

    # With the gate on, landing needs an approving review.
    await api.request("PUT", "/api/settings", json={"require_review_to_merge": True})
    refused = await api.post("/api/projects/shop/tickets/1/worktree/merge")
    assert refused.status_code == 409 and refused.json()["review_required"] is True
    assert "/approve" in refused.json()["detail"]
    plain = await api.post(f"/api/runs/{run['id']}/resolve", json={"action": "merge"})
    assert plain.status_code == 409  # the plain run route has the same gate

    off_diff = await api.post(
        "/api/projects/shop/tickets/1/reviews",
        json={"verdict": "commented", "comments": [{"path": "other.py", "line": 1, "body": "?"}]},
    )
    assert off_diff.status_code == 422 and "notes.txt" in off_diff.json()["detail"]
    asked = await api.post(
        "/api/projects/shop/tickets/1/reviews",
        json={
            "verdict": "changes_requested",
            "body": "Almost.",
            "comments": [{"path": "notes.txt", "line": 1, "body": "Say two."}],
        },
    )
    assert asked.status_code == 201, asked.text
    assert asked.json()["sent_to_agent"] is True
    await api.wait_status(run["id"], "queued", "preparing", "running", "review")
    done = await api.wait_status(run["id"], "review")
    assert done["turns"] == 2
    said = await api.get(f"/api/runs/{run['id']}/events", params={"types": "agent.message"})
    texts = [e["data"].get("text", "") for e in said.json()["data"]]
    assert any("notes.txt:1: Say two." in t for t in texts), texts

    approved = await api.post(f"/api/runs/{run['id']}/approve", json={"notes": "Fine."})
    assert approved.status_code == 201 and approved.json()["verdict"] == "approved"
    reviews = (await api.get("/api/projects/shop/tickets/1/reviews")).json()["data"]
    assert [r["verdict"] for r in reviews] == ["changes_requested", "approved"]
    assert reviews[0]["comments"][0] == {
        "path": "notes.txt",
        "line": 1,
        "side": "right",
        "body": "Say two.",
    }

    merged = await api.post(
        "/api/projects/shop/tickets/1/worktree/merge", json={"strategy": "squash"}
    )
    assert merged.status_code == 200, merged.text
    assert merged.json()["resolution"] == "merged"
    assert show(git_repo, "main:notes.txt") == "one\n"
    assert (await api.get("/api/projects/shop/tickets/1")).json()["status"] == "done"


async def test_queue_runs_dependent_tickets_from_each_merge_and_pauses_on_failure(
    sqlite_api: Api, git_repo: Path
) -> None:
    api = sqlite_api
    await make_project(api, git_repo)
    # Each ticket's agent reads what the previous ticket landed: only a run started from the
    # previous merge finds the file.
    steps = {
        1: [{"write": {"path": "a.txt", "content": "from one\n"}}],
        2: [{"bash": "cat a.txt > b.txt"}],
        3: [{"bash": "cat b.txt > c.txt"}],
        4: [{"fail": "the tests are red"}],
        5: [{"write": {"path": "e.txt", "content": "five\n"}}],
    }
    for n, scenario in steps.items():
        await ticket(api, "shop", title=f"Step {n}", blocked_by=[n - 1] if n in (2, 3, 5) else [])
        await assign(api, n, await profile(api, f"agent {n}", *scenario))

    made = await api.post(
        "/api/projects/shop/discover/queues", json={"name": "chain", "tickets": [1, 2, 3]}
    )
    assert made.status_code == 201, made.text
    queue = made.json()
    base = f"/api/projects/shop/discover/queues/{queue['id']}"
    assert [i["state"] for i in queue["items"]] == ["pending"] * 3
    started = await api.post(f"{base}/start")
    assert started.status_code == 200 and started.json()["status"] in ("running", "done")
    finished = await wait_for(api, base, "status", "done", "paused", timeout=60)
    assert finished["status"] == "done", (finished["paused_reason"], finished["items"])
    assert [i["state"] for i in finished["items"]] == ["done"] * 3
    assert show(git_repo, "main:b.txt") == "from one\n"
    assert show(git_repo, "main:c.txt") == "from one\n"
    listed = (await api.get("/api/projects/shop/tickets", params={"status": "done"})).json()
    assert sorted(t["number"] for t in listed["data"]) == [1, 2, 3]

    second = await api.post(
        "/api/projects/shop/discover/queues", json={"name": "red", "tickets": [4, 5]}
    )
    base2 = f"/api/projects/shop/discover/queues/{second.json()['id']}"
    await api.post(f"{base2}/start")
    paused = await wait_for(api, base2, "status", "paused", "done", timeout=30)
    assert paused["status"] == "paused", (paused["paused_reason"], paused["items"])
    assert "ticket #4" in paused["paused_reason"] and "red" in paused["paused_reason"]
    assert [i["state"] for i in paused["items"]] == ["failed", "pending"]  # #5 waits for #4
    failed_run = paused["items"][0]["run_id"]
    events = await api.get(f"/api/runs/{failed_run}/events", params={"types": "queue.paused"})
    assert [e["data"]["ticket"] for e in events.json()["data"]] == [4]
    assert (await api.request("DELETE", base2)).status_code == 204  # paused, not running

    # The same queue again, resumed by skipping the failed ticket: #5 runs and lands.
    third = await api.post(
        "/api/projects/shop/discover/queues", json={"name": "red2", "tickets": [4, 5]}
    )
    base3 = f"/api/projects/shop/discover/queues/{third.json()['id']}"
    await api.post(f"{base3}/start")
    await wait_for(api, base3, "status", "paused", timeout=30)
    not_failed = await api.post(f"{base3}/items/5/skip")
    assert not_failed.status_code == 409  # #5 has not failed
    assert "is 'pending' in this queue" in not_failed.json()["detail"]
    skipped = await api.post(f"{base3}/items/4/skip")
    assert skipped.status_code == 200, skipped.text
    settled = await wait_for(api, base3, "status", "done", "paused", timeout=30)
    assert [i["state"] for i in settled["items"]] == ["skipped", "done"], settled["items"]
    assert show(git_repo, "main:e.txt") == "five\n"


async def read_sse(api: Api, query: str, until: str, timeout: float = 20) -> list[dict[str, Any]]:
    """SSE messages of ``GET /api/events?{query}`` up to the first ``until`` event, read by
    calling the ASGI app directly (httpx's ASGI transport does not stream)."""
    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/api/events",
        "raw_path": b"/api/events",
        "query_string": query.encode(),
        "headers": [(b"authorization", f"Bearer {TOKEN}".encode()), (b"host", b"localhost")],
        "client": ("127.0.0.1", 1),
        "server": ("localhost", 80),
        "root_path": "",
    }
    buffer, messages, done = "", [], anyio.Event()
    status: list[int] = []

    async def receive() -> dict[str, Any]:
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal buffer
        if message["type"] == "http.response.start":
            status.append(message["status"])
        if message["type"] != "http.response.body":
            return
        buffer += message.get("body", b"").decode()
        while "\r\n\r\n" in buffer or "\n\n" in buffer:
            sep = "\r\n\r\n" if "\r\n\r\n" in buffer else "\n\n"
            block, buffer = buffer.split(sep, 1)
            fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
            if "data" in fields:
                messages.append({"event": fields.get("event"), **json.loads(fields["data"])})
                if fields.get("event") == until:
                    done.set()

    with anyio.fail_after(timeout):
        async with anyio.create_task_group() as tg:
            tg.start_soon(api.app, scope, receive, send)
            await done.wait()
            tg.cancel_scope.cancel()
    assert status == [200]
    return messages


async def test_channel_stream_carries_a_tickets_runs_with_seed_names(
    sqlite_api: Api, git_repo: Path, tmp_path: Path
) -> None:
    api = sqlite_api
    await make_project(api, git_repo)
    other = make_repo(tmp_path / "other")
    await api.post(
        "/api/projects", json={"name": "Other", "slug": "other", "repos": [{"path": str(other)}]}
    )
    writer = await profile(
        api, "writer", {"say": "On it."}, {"write": {"path": "n.txt", "content": "n\n"}}
    )
    made = await ticket(api, "shop", title="Notes")
    await ticket(api, "other", title="Elsewhere")
    await assign(api, 1, writer)
    run = (await api.post("/api/projects/shop/tickets/1/agent/start")).json()
    noise = await api.post(
        "/api/runs",
        json={
            "prompt": "noise",
            "project_id": "other",
            "provider": "script",
            "agent_options": {"scenario": {"steps": [{"say": "x"}]}},
        },
    )
    assert noise.status_code == 201, noise.text
    await api.wait_status(run["id"], "review")
    await api.wait_status(noise.json()["id"], "review")

    frames = await read_sse(api, f"channel=ticket:{made['id']}&after=0", until="agent:stopped")
    names = [f["event"] for f in frames]
    assert {"agent:started", "agent:tool_call", "agent:tool_result", "ticket:updated"} <= set(names)
    assert {f["run_id"] for f in frames} == {run["id"]}
    assert {f["ticket_id"] for f in frames} == {made["id"]}
    project = await read_sse(api, "channel=project:other&after=0", until="agent:stopped")
    assert {f["run_id"] for f in project} == {noise.json()["id"]}
    bad = await api.get("/api/events", params={"channel": "team:1"})
    assert bad.status_code == 400 and "ticket:" in bad.json()["detail"]
