"""Event numbering when appends and jobs share a batch (SQLite and PostgreSQL, issue 16).

Within a run, ``id`` must grow with ``seq``: replay pages walk ``seq`` and skip ids already
sent. On PostgreSQL ids come from a sequence, drawn once per batch for the appends and again
when a job needs more, which is where an order mix-up would show.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import select

from codeyard.domain import events as ev
from codeyard.events.hub import EventFilter
from codeyard.events.stream import follow
from codeyard.store import schema
from codeyard.store.writer import Tx
from tests.conftest import Api

pytestmark = pytest.mark.anyio


async def test_ids_grow_with_seq_when_jobs_and_appends_interleave(api: Api, git_repo: Path) -> None:
    body = {"prompt": "n", "repo_path": str(git_repo), "provider": "script", "draft": True}
    resp = await api.post("/api/runs", json=body)
    assert resp.status_code == 201, resp.text
    run_id = resp.json()["id"]
    writer = api.services.writer

    async def job(tx: Tx, k: int) -> None:
        await tx.emit(run_id, [ev.ErrorEvent(message=f"job {k}.{i}") for i in range(3)])

    calls = []
    for k in range(30):  # submitted together: they share batches
        calls.append(writer.append(run_id, [ev.ErrorEvent(message=f"append {k}")]))
        calls.append(writer.run(lambda tx, k=k: job(tx, k)))
    await asyncio.wait_for(asyncio.gather(*calls), 60)

    E = schema.events
    async with api.services.engine.connect() as conn:
        rows = (
            await conn.execute(
                select(E.c.id, E.c.seq).where(E.c.run_id == run_id).order_by(E.c.seq)
            )
        ).all()
    seqs = [r.seq for r in rows]
    ids = [r.id for r in rows]
    assert seqs == list(range(1, len(rows) + 1))
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert len(rows) >= 30 * 4


async def test_batches_of_every_size_get_their_ids_in_seq_order(api: Api, git_repo: Path) -> None:
    """PostgreSQL numbers, inserts and announces a batch of up to 300 events in one statement
    and a larger one in two (its announcement in several ``NOTIFY`` chunks): either way the
    events returned carry the ids stored, ascending with ``seq``, and a live subscriber gets
    every one once, in order."""
    body = {"prompt": "n", "repo_path": str(git_repo), "provider": "script", "draft": True}
    resp = await api.post("/api/runs", json=body)
    assert resp.status_code == 201, resp.text
    run_id = resp.json()["id"]
    sizes = [1, 300, 301, 2000]
    ready = asyncio.Event()

    async def collect() -> list[int]:
        got: list[int] = []
        flt = EventFilter(run_id=run_id, types=frozenset({"error"}))
        stream = follow(api.services.engine, api.services.hub, flt, 0, on_replay_done=ready.set)
        async for batch in stream:
            got += [e.id for e in batch]
            if len(got) >= sum(sizes):
                break
        await stream.aclose()
        return got

    reader = asyncio.create_task(collect())
    await asyncio.wait_for(ready.wait(), 10)
    returned: list[int] = []
    for size in sizes:
        stored = await api.services.writer.append(
            run_id, [ev.ErrorEvent(message=f"{size}.{i}") for i in range(size)]
        )
        assert [e.seq for e in stored] == list(range(stored[0].seq, stored[0].seq + size))
        returned += [e.id for e in stored]
    assert await asyncio.wait_for(reader, 30) == returned
    E = schema.events
    async with api.services.engine.connect() as conn:
        rows = (
            await conn.execute(
                select(E.c.id, E.c.seq).where(E.c.run_id == run_id).order_by(E.c.seq)
            )
        ).all()
    assert [r.id for r in rows[-len(returned) :]] == returned
    assert returned == sorted(returned) and len(set(returned)) == len(returned)
    assert [r.seq for r in rows] == list(range(1, len(rows) + 1))
