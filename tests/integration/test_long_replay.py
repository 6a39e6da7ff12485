"""A replay longer than one page: every event once, in order, in bounded pieces.

Long replays free the connection's SQLite page cache after each full page, and a stream writes
at most ``WRITE_EVENTS`` events at a time (both keep the server's memory flat while many clients
read a big run: bench/stream_memory.py). These check that neither loses, repeats or reorders an
event, on the real app over httpx (``until_idle`` ends the stream of an idle run, so the ASGI
transport, which buffers whole responses, can read it).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from codeyard.api.streams import WRITE_EVENTS
from codeyard.domain.events import AgentDelta
from codeyard.events.hub import EventFilter
from codeyard.events.stream import REPLAY_PAGE, follow
from tests.conftest import Api

pytestmark = pytest.mark.anyio

EXTRA = 2 * REPLAY_PAGE + 7  # two full pages and a part


async def long_run(api: Api, repo: Path) -> tuple[str, list[int]]:
    body = {
        "prompt": "long",
        "repo_path": str(repo),
        "provider": "script",
        "draft": True,
        "agent_options": {"scenario": {"steps": [{"say": "hi"}]}},
    }
    resp = await api.post("/api/runs", json=body)
    assert resp.status_code == 201, resp.text
    run = resp.json()["id"]
    writer = api.services.writer
    for start in range(0, EXTRA, 300):
        n = min(300, EXTRA - start)
        await writer.append(
            run, [AgentDelta(message_id="m", text=f"{start + k}") for k in range(n)]
        )
    ids: list[int] = []
    after = 0
    while True:
        page = (await api.get(f"/api/runs/{run}/events", params={"after": after})).json()
        ids += [e["id"] for e in page["data"]]
        if page["next_cursor"] is None:
            return run, ids
        after = int(page["next_cursor"])


async def test_follow_replays_pages_of_at_most_a_page(sqlite_api: Api, git_repo: Path) -> None:
    run, ids = await long_run(sqlite_api, git_repo)
    assert len(ids) == EXTRA + 1  # and run.created
    svc = sqlite_api.services
    batches = [
        [e.id for e in batch]
        async for batch in follow(svc.engine, svc.hub, EventFilter(run_id=run), 0, until_idle=True)
    ]
    assert max(len(b) for b in batches) == REPLAY_PAGE
    assert [i for b in batches for i in b] == ids
    # From the middle of a page, too: nothing before it, nothing missing after it.
    middle = ids[REPLAY_PAGE + 3]
    rest = [
        e.id
        async for batch in follow(
            svc.engine, svc.hub, EventFilter(run_id=run), middle, until_idle=True
        )
        for e in batch
    ]
    assert rest == ids[REPLAY_PAGE + 4 :]


async def test_sse_writes_a_long_replay_whole_and_in_order(sqlite_api: Api, git_repo: Path) -> None:
    assert REPLAY_PAGE > WRITE_EVENTS  # a replay page is written in several pieces
    run, ids = await long_run(sqlite_api, git_repo)
    resp = await sqlite_api.get(f"/api/runs/{run}/events/stream", params={"until_idle": 1})
    assert resp.status_code == 200
    sent = [int(line[4:]) for line in resp.text.splitlines() if line.startswith("id: ")]
    assert sent == ids
    texts = [line for line in resp.text.splitlines() if line.startswith("data: ")]
    assert len(texts) == len(ids) and f'"text":"{EXTRA - 1}"' in texts[-1]
