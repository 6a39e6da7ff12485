"""Background readers that send one statement give it the engine, not a connection of their own:
no transaction begun, none to roll back (on SQLite that rollback was a trip to a driver
thread, and the read itself now runs on the event loop's own connection: ``store.inline_reads``).
The ticket follower's turn-end read, a run stream's first replay page, the port watcher's
lease read and the GitHub inbox's look for deliveries (issue 15). Real parts: the app over
ASGI with the script agent and real git, SQLite and PostgreSQL; transactions counted with
SQLAlchemy's own ``begin`` event.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from codeyard.events.hub import EventFilter
from codeyard.events.stream import _replay_page
from codeyard.preview.detect import PortWatcher
from codeyard.services.github import Inbox
from codeyard.tickets import follower
from tests.conftest import Api

pytestmark = pytest.mark.anyio


@contextmanager
def transactions(engine: AsyncEngine) -> Iterator[list[int]]:
    """Transactions this task begins on ``engine`` (the server's own background tasks use it
    meanwhile)."""
    begun: list[int] = []
    me = asyncio.current_task()

    def note(_conn: Any) -> None:
        if asyncio.current_task() is me:
            begun.append(1)

    event.listen(engine.sync_engine, "begin", note)
    try:
        yield begun
    finally:
        event.remove(engine.sync_engine, "begin", note)


async def _report(*_args: Any) -> None:
    """The watcher's report of a port (none listens here)."""


async def test_one_statement_readers_begin_no_transaction(api: Api, git_repo: Path) -> None:
    body = {
        "prompt": "Write notes",
        "repo_path": str(git_repo),
        "provider": "script",
        "agent_options": {
            "scenario": {"steps": [{"write": {"path": "notes.txt", "content": "one\n"}}]},
            "permission_mode": "auto",
        },
    }
    run = (await api.post("/api/runs", json=body)).json()
    await api.wait_status(run["id"], "review")
    svc = api.services
    watcher = PortWatcher(svc.engine, _report)
    with transactions(svc.engine) as begun:
        await follower._on_status(svc, run["id"])
        page, last_seq = await _replay_page(svc.engine, EventFilter(run_id=run["id"]), 0, None)
        held = await watcher._leases()
        processed = await Inbox(svc).drain()
    assert begun == []
    assert page[0].type == "run.created" and page[-1].seq == last_seq == len(page)
    assert watcher.reads == 1 and [lease.run_id for lease in held] == [run["id"]]
    assert processed == 0
