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
