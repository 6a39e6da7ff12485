"""Restart safety with a real server process: ``kill -9`` while runs are active, then start again.

Runs that were working become ``interrupted`` (with a ``run.status`` event), ``resume`` continues
the script agent from its next step (nothing said or run twice), queued runs stay queued and
start, and an SSE client that was connected during the crash reconnects with its last id and
ends up with exactly the event log.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from tests.support.server import (
    Following,
    Frame,
    ServerProcess,
    event_log,
    follow_with_reconnects,
    wait_for_event,
    wait_status,
)

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

SAY_A1 = {"say": "a1"}
BASH_A1 = {"bash": "echo a1 >> a1.txt"}


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[ServerProcess]:
    """One executor slot, so a second run waits in ``queued``; SQLite and PostgreSQL."""
    srv = ServerProcess(
        tmp_path / "data", database_url=database_url, env={"CODEYARD_MAX_CONCURRENT_RUNS": "1"}
    )
    try:
        srv.start()
        yield srv
    finally:
        srv.stop()


async def create_run(
    client: httpx.AsyncClient, repo: Path, *steps: dict[str, Any]
) -> dict[str, Any]:
    resp = await client.post(
        "/api/runs",
        json={
            "prompt": "Survive a crash",
            "repo_path": str(repo),
            "provider": "script",
            "agent_options": {"scenario": {"steps": list(steps)}},
        },
    )
    assert resp.status_code == 201, resp.text
    return resp.json()


def statuses(log: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["data"]["from"], e["data"]["to"]) for e in log if e["type"] == "run.status"]


def is_bash_result(event: dict[str, Any]) -> bool:
    return event["type"] == "tool.result" and event["data"]["call_id"] == "call_1_1"


async def test_kill_9_interrupts_active_runs_and_resume_continues_them(
    server: ServerProcess, git_repo: Path
) -> None:
    with anyio.fail_after(60):
        async with server.client() as client:
            a = await create_run(client, git_repo, SAY_A1, BASH_A1, {"sleep": 3}, {"say": "a2"})
            b = await create_run(client, git_repo, {"say": "b1"}, {"bash": "echo b1"})

            # An SSE client follows A across the crash like a browser's EventSource would.
            follower = Following()
            seen_bash = anyio.Event()

            def stop(frame: Frame) -> bool:
                event = frame.json()
                if is_bash_result(event):
                    seen_bash.set()
                return event["type"] == "run.status" and event["data"]["to"] == "review"

            async with anyio.create_task_group() as tg:
                tg.start_soon(
                    lambda: follow_with_reconnects(
                        client,
                        f"/api/runs/{a['id']}/events/stream",
                        stop=stop,
                        pause=lambda: 0.1,
                        result=follower,
                    )
                )

                # A is in its sleep step once its bash step's result is out; B waits for the slot.
                await wait_for_event(client, a["id"], is_bash_result)
                await seen_bash.wait()
                # No wait for the step's progress (agent_state): the sink commits a step's last
                # event with the progress that follows it, so a visible result means both are in.
                assert (await client.get(f"/api/runs/{a['id']}")).json()["status"] == "running"
                assert (await client.get(f"/api/runs/{b['id']}")).json()["status"] == "queued"
                seen_before_kill = list(follower.ids)

                server.kill()
                await server.start_async()

                interrupted = await wait_status(client, a["id"], "interrupted", timeout=30)
                assert "restart" in (interrupted["status_reason"] or "")
                log_a = await event_log(client, a["id"])
                last_status = [e for e in log_a if e["type"] == "run.status"][-1]
                assert last_status["data"]["from"] == "running"
                assert last_status["data"]["to"] == "interrupted"
                assert "restart" in last_status["data"]["reason"]

                # The queued run was not interrupted: it starts on its own and finishes.
                await wait_status(client, b["id"], "review")
                assert statuses(await event_log(client, b["id"])) == [
                    ("queued", "preparing"),
                    ("preparing", "running"),
                    ("running", "review"),
                ]
                assert (await client.get(f"/api/runs/{a['id']}")).json()["status"] == "interrupted"

                resp = await client.post(f"/api/runs/{a['id']}/resume", json={})
                assert resp.status_code == 200, resp.text
                assert resp.json()["status"] == "queued"
                done = await wait_status(client, a["id"], "review")
            # (the follower ends at A's review)

            assert done["turns"] == 2
            items = (await client.get(f"/api/runs/{a['id']}/transcript")).json()["items"]
            assert [i["text"] for i in items if i["kind"] == "assistant"] == ["a1", "a2"]
            commands = (await client.get(f"/api/runs/{a['id']}/commands")).json()["data"]
            assert [c["command"] for c in commands] == [BASH_A1["bash"]]
            worktree_files = list((server.data_dir / "worktrees").rglob("a1.txt"))
            assert [f.read_text() for f in worktree_files] == ["a1\n"]

            log_a = await event_log(client, a["id"])
            assert [e["seq"] for e in log_a] == list(range(1, len(log_a) + 1))
            ids = [e["id"] for e in log_a]
            assert ids == sorted(set(ids))
            assert statuses(log_a) == [
                ("queued", "preparing"),
                ("preparing", "running"),
                ("running", "interrupted"),
                ("interrupted", "queued"),
                ("queued", "running"),
                ("running", "review"),
            ]
            turns = [
                (e["data"]["turn"], e["data"]["source"])
                for e in log_a
                if e["type"] == "turn.started"
            ]
            assert turns == [(1, "create"), (2, "resume")]
            said = [e["data"]["text"] for e in log_a if e["type"] == "agent.message"]
            assert said == ["a1", "a2"]

            # The SSE client lost its connection in the crash, reconnected with its last id, and
            # has exactly the log: everything it saw before the kill is still there, nothing twice.
            assert follower.errors, "the follower never noticed the crash"
            assert follower.connections >= 2
            assert seen_before_kill == ids[: len(seen_before_kill)]
            assert follower.ids == ids
            assert [f.json() for f in follower.frames] == log_a

            # Every id the server hands out after the restart is new (no id reused from A's log).
            log_b = await event_log(client, b["id"])
            all_ids = ids + [e["id"] for e in log_b]
            assert len(all_ids) == len(set(all_ids))
