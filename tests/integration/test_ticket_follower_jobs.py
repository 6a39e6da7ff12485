"""The ticket follower queues no writer job for a run that works no ticket, and reads it in one
statement (issue 15).

At every turn end the follower moves the ticket the run works; a writer job that only looked
for that ticket was queued behind every run's appends for each turn end of every run, though
most runs work none. Real git, the script agent, the API over ASGI, SQLite and PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from codeyard.store.writer import Writer
from codeyard.tickets import follower
from tests.conftest import Api
from tests.integration.test_ticket_work import assign, profile, wait_for
from tests.integration.test_tickets import make_project, ticket
from tests.support.sql import statements

pytestmark = pytest.mark.anyio


async def test_a_turn_end_queues_a_writer_job_only_for_a_run_that_works_a_ticket(
    api: Api, git_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await make_project(api, git_repo)
    steps: list[dict[str, Any]] = [{"write": {"path": "notes.txt", "content": "one\n"}}]
    body = {
        "prompt": "Write notes",
        "repo_path": str(git_repo),
        "provider": "script",
        "agent_options": {"scenario": {"steps": steps}, "permission_mode": "auto"},
    }
    plain = (await api.post("/api/runs", json=body)).json()
    await api.wait_status(plain["id"], "review")
    writer_agent = await profile(api, "writer", *steps)
    await ticket(api, "shop", title="Write notes")
    await assign(api, 1, writer_agent)
    worked = (await api.post("/api/projects/shop/tickets/1/agent/start")).json()
    await api.wait_status(worked["id"], "review")
    await wait_for(api, "/api/projects/shop/tickets/1", "status", "in_review")

    jobs: list[str] = []
    run_job = Writer.run

    async def counted(self: Writer, job: Any, *args: Any, **kw: Any) -> Any:
        jobs.append(getattr(job, "__qualname__", repr(job)))
        return await run_job(self, job, *args, **kw)

    monkeypatch.setattr(Writer, "run", counted)
    svc = api.services
    # Reads only: the writer may still be storing the runs' usage meanwhile (it queues no job
    # for the follower: ``jobs`` says so).
    with statements(svc.engine, keep=lambda sql: sql.lstrip().upper().startswith("SELECT")) as sent:
        await follower._on_status(svc, plain["id"])
    assert jobs == []  # it used to queue sync_ticket's job, which found no ticket
    # The run, whether it works a ticket and whether a queue of its project runs: one read
    # (it was three: the run, its ticket, every running queue).
    assert len(sent) == 1, sent

    # A run that works a ticket still has it moved, by a job: send the ticket back, and the
    # run's (settled) status brings it to review again.
    moved = await api.request("PATCH", "/api/projects/shop/tickets/1", json={"status": "backlog"})
    assert moved.status_code == 200, moved.text
    jobs.clear()
    await follower._on_status(svc, worked["id"])
    assert any("sync_ticket" in name for name in jobs), jobs
    after = (await api.get("/api/projects/shop/tickets/1")).json()
    assert after["status"] == "in_review"
