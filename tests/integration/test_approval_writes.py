"""What an agent's ask writes to its run (issue 15): a running run that opens an approval is
shown ``waiting`` with its count of pending approvals in one write of the run row (it was two:
the count, then the status with the count again). A run already waiting is recounted. Through
the writer, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from codeyard.domain.events import utc_now
from codeyard.store import approvals as approval_door
from codeyard.store import projects, runs
from codeyard.store.db import create_engine
from codeyard.store.writer import Tx, Writer
from tests.support.sql import statements
from tests.support.writer_runs import PROJECT, run_row

pytestmark = pytest.mark.anyio


@pytest.fixture
async def writer(database_url: str) -> AsyncIterator[Writer]:
    engine = create_engine(database_url)
    w = Writer(engine, lambda _batch: None)
    await w.start()
    try:

        async def add(tx: Tx) -> None:
            now = utc_now()
            await projects.insert_project(
                tx, {"id": PROJECT, "name": "p", "slug": "p", "created_at": now, "updated_at": now}
            )
            row = run_row("run_a", 1)
            row.update(status="running", started_at=now)
            await runs.insert(tx, row)

        await w.run(add)
        yield w
    finally:
        await w.stop()
        await engine.dispose()


def _approval(n: int) -> dict[str, Any]:
    return {
        "id": f"apr_{n}",
        "run_id": "run_a",
        "call_id": f"call_{n}",
        "tool": "Write",
        "kind": "edit",
        "input": {"file_path": f"{n}.txt"},
        "title": f"Write {n}.txt",
        "rule": "mode:default",
        "reason": "asks",
        "status": "pending",
        "decided_by": None,
        "remember": None,
        "created_at": utc_now(),
        "resolved_at": None,
        "expires_at": "2099-01-01T00:00:00.000Z",
        "fingerprint": f"fp_{n}",
        "used_at": None,
    }


async def _open(writer: Writer, n: int) -> tuple[dict[str, Any], list[str]]:
    def run_writes(sql: str) -> bool:  # (not the writer's own touch of the events' numbering)
        return sql.lstrip().upper().startswith("UPDATE RUNS") and "SET last_seq" not in sql

    with statements(writer.engine, run_writes) as sent:
        run = await writer.run(
            lambda tx: approval_door.open_approval(
                tx, _approval(n), gate=False, status_reason="approval"
            )
        )
    return run, sent


async def test_an_ask_writes_its_run_once(writer: Writer) -> None:
    run, sent = await _open(writer, 1)
    assert (run["status"], run["status_reason"], run["pending_approvals"]) == (
        "waiting",
        "approval",
        1,
    )
    assert len(sent) == 1, sent

    # A second ask while the run waits: the count only (the status stays).
    run, sent = await _open(writer, 2)
    assert (run["status"], run["pending_approvals"]) == ("waiting", 2)
    assert len(sent) == 1, sent
    async with writer.engine.connect() as conn:
        stored = await runs.get(conn, "run_a")
    assert (stored["status"], stored["pending_approvals"]) == ("waiting", 2)

    # Both answered: running again, with no approval pending.
    for n in (1, 2):
        await writer.run(
            lambda tx, n=n: approval_door.resolve(
                tx, f"apr_{n}", "approved", decided_by="operator", reason=None
            )
        )
    async with writer.engine.connect() as conn:
        stored = await runs.get(conn, "run_a")
    assert (stored["status"], stored["pending_approvals"]) == ("running", 0)
