"""Live event streams against a real server: SSE per run and global, and the WebSocket.

httpx's ASGI transport does not stream, so these tests talk to ``codeyard serve`` in a
subprocess (SQLite; the streams do not depend on the database beyond the replay query, which the
backfill tests cover on both databases).
"""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.conftest import make_repo
from tests.support.server import (
    Frame,
    ServerProcess,
    event_log,
    follow_with_reconnects,
    open_sse,
    read_frames,
    wait_status,
)

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the module: every test works on its own repositories and runs."""
    srv = ServerProcess(tmp_path_factory.mktemp("streams") / "data")
    try:
        srv.start()
        yield srv
    finally:
        srv.stop()


@pytest.fixture
async def client(server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with server.client() as c:
        yield c


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


async def create_run(
    client: httpx.AsyncClient, *steps: dict[str, Any], **body: Any
) -> dict[str, Any]:
    payload = {
        "prompt": "Stream things",
        "provider": "script",
        "agent_options": {"scenario": {"steps": list(steps)}},
        **body,
    }
    resp = await client.post("/api/runs", json=payload)
    assert resp.status_code == 201, resp.text
    return resp.json()


async def create_project(client: httpx.AsyncClient, repo: Path, name: str) -> dict[str, Any]:
    resp = await client.post("/api/projects", json={"name": name, "repos": [{"path": str(repo)}]})
    assert resp.status_code == 201, resp.text
    return resp.json()


def to_review(run_id: str) -> Any:
    def match(frame: Frame) -> bool:
        event = frame.json()
        return (
            event["run_id"] == run_id
            and event["type"] == "run.status"
            and event["data"]["to"] == "review"
        )

    return match


async def test_sse_frames_live_until_idle_and_replay_after_last_event_id(
    client: httpx.AsyncClient, repo: Path
) -> None:
    run = await create_run(
        client,
        {"say": "hello"},
        {"sleep": 0.3},
        {"bash": "echo hi"},
        {"tasks": [{"content": "x", "status": "completed"}]},
        {"say": "bye"},
        repo_path=str(repo),
    )
    path = f"/api/runs/{run['id']}/events/stream"
    # Connected while the run is queued: replay, then live, then the stream ends at review.
    frames = await read_frames(client, path, params={"until_idle": 1})
    assert (await client.get(f"/api/runs/{run['id']}")).json()["status"] == "review"
    log = await event_log(client, run["id"])
    assert [f.json() for f in frames] == log
    for frame, event in zip(frames, log, strict=True):
        assert frame.lines == (
            f"id: {event['id']}",
            f"event: {event['type']}",
            f"data: {json.dumps(event, separators=(',', ':'))}",
        )
        assert frame.event == event["type"] and frame.event_id == event["id"]
    assert frames[-1].json()["data"]["to"] == "review"
    assert log[0]["type"] == "run.created"
    assert {"tool.call", "tool.result"} <= {e["type"] for e in log}

    # Replay after Last-Event-ID: exactly the events after it, and (idle) the stream ends.
    middle = log[len(log) // 2]["id"]
    after_middle = [e for e in log if e["id"] > middle]
    again = await read_frames(client, path, last_event_id=middle, params={"until_idle": 1})
    assert [f.json() for f in again] == after_middle
    by_query = await read_frames(client, path, params={"until_idle": 1, "after": middle})
    assert [f.json() for f in by_query] == after_middle
    # The header wins over ?after=, as for a browser reconnecting to a URL with ?after= in it.
    idle = {"until_idle": 1}
    both = await read_frames(client, path, last_event_id=middle, params={**idle, "after": 0})
    assert [f.json() for f in both] == after_middle
    assert await read_frames(client, path, last_event_id=log[-1]["id"], params=idle) == []
    # The run number works as well as the id.
    by_number = await read_frames(
        client,
        f"/api/runs/{run['number']}/events/stream",
        last_event_id=middle,
        params={"until_idle": "1"},
    )
    assert [f.json() for f in by_number] == after_middle

    # Without until_idle the stream stays open after the replay (live), until the client leaves.
    with anyio.move_on_after(0.5) as scope:
        await read_frames(client, path, last_event_id=log[-1]["id"], timeout=5)
    assert scope.cancelled_caught


async def test_run_stream_types_filter(client: httpx.AsyncClient, repo: Path) -> None:
    run = await create_run(
        client, {"say": "one"}, {"bash": "true"}, {"say": "two"}, repo_path=str(repo)
    )
    path = f"/api/runs/{run['id']}/events/stream"
    frames = await read_frames(
        client, path, params={"types": "agent.message,run.status", "until_idle": 1}
    )
    log = await event_log(client, run["id"], types="agent.message,run.status")
    assert [f.json() for f in frames] == log
    assert [e["data"]["text"] for e in log if e["type"] == "agent.message"] == ["one", "two"]


async def test_until_idle_ends_even_when_types_exclude_run_status(
    client: httpx.AsyncClient, repo: Path
) -> None:
    """``until_idle`` is about the run, not about the frames the client asked to see."""
    run = await create_run(client, {"sleep": 0.3}, {"say": "one"}, repo_path=str(repo))
    path = f"/api/runs/{run['id']}/events/stream"
    frames = await read_frames(
        client, path, params={"types": "agent.message", "until_idle": 1}, timeout=30
    )
    assert [f.json()["data"]["text"] for f in frames] == ["one"]


async def test_random_disconnects_and_reconnects_lose_and_repeat_nothing(
    client: httpx.AsyncClient, repo: Path
) -> None:
    steps: list[dict[str, Any]] = []
    for i in range(150):
        steps += [{"say": f"line {i}"}, {"sleep": 0.015}]
        if i % 30 == 0:
            steps.append({"bash": f"echo step {i}"})
    run = await create_run(client, *steps, repo_path=str(repo))
    path = f"/api/runs/{run['id']}/events/stream"
    results = []

    async def reader(seed: int) -> None:
        rng = random.Random(seed)
        got = await follow_with_reconnects(
            client,
            path,
            params={"until_idle": 1},
            per_connection=lambda: rng.choice([0, 1, rng.randint(1, 40), rng.randint(1, 40)]),
            pause=lambda: rng.uniform(0, 0.03),
        )
        results.append((seed, got))

    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            for seed in range(5):
                tg.start_soon(reader, seed)
    assert (await wait_status(client, run["id"], "review"))["status"] == "review"
    log = await event_log(client, run["id"])
    assert len(log) > 150
    expected = [e["id"] for e in log]
    for seed, got in results:
        assert got.errors == [], (seed, got.errors)
        assert got.connections >= 10, f"client {seed} hardly disconnected: {got.connections}"
        assert got.ids == expected, f"client {seed}: {len(got.ids)} ids vs {len(expected)}"
        assert all(a < b for a, b in zip(got.ids, got.ids[1:], strict=False))
        assert [f.json() for f in got.frames] == log


async def test_global_stream_filters_by_project_types_and_run(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    p1 = await create_project(client, make_repo(tmp_path / "one"), "One")
    p2 = await create_project(client, make_repo(tmp_path / "two"), "Two")
    steps = ({"say": "a"}, {"sleep": 0.2}, {"bash": "echo x"}, {"say": "b"})
    types = "run.status,agent.message"
    streams: dict[str, list[Frame]] = {}
    runs: dict[str, dict[str, Any]] = {}
    ready = anyio.Event()

    async def watch(name: str, params: dict[str, Any], stop: str) -> None:
        await ready.wait()
        streams[name] = await read_frames(
            client, "/api/events/stream", params=params, until=to_review(runs[stop]["id"])
        )

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            # Connected before the runs exist: these frames are live, not replayed.
            tg.start_soon(watch, "p1", {"project_id": p1["id"]}, "a")
            tg.start_soon(watch, "p1_types", {"project_id": p1["id"], "types": types}, "a")
            tg.start_soon(watch, "p2", {"project_id": p2["id"]}, "b")
            runs["a"] = await create_run(client, *steps, project_id=p1["id"])
            runs["b"] = await create_run(client, *steps, project_id=p2["id"])
            ready.set()
    a, b = runs["a"]["id"], runs["b"]["id"]
    log_a, log_b = await event_log(client, a), await event_log(client, b)
    assert [f.json() for f in streams["p1"]] == log_a
    assert [f.json() for f in streams["p2"]] == log_b
    assert [f.json() for f in streams["p1_types"]] == await event_log(client, a, types=types)
    assert {f.event for f in streams["p1_types"]} == {"run.status", "agent.message"}

    # run_id filter, replayed from the database.
    frames = await read_frames(client, "/api/events/stream", params={"run_id": b}, count=len(log_b))
    assert [f.json() for f in frames] == log_b
    replay_types = await read_frames(
        client,
        "/api/events/stream",
        params={"run_id": a, "types": types},
        count=len(streams["p1_types"]),
    )
    assert replay_types == streams["p1_types"]

    # run_id filter, live: a new turn on run A is not shown on run B's stream.
    opened = anyio.Event()

    async def live_b() -> list[Frame]:
        frames: list[Frame] = []
        params = {"run_id": b}
        async with open_sse(
            client, "/api/events/stream", params=params, last_event_id=log_b[-1]["id"]
        ) as stream:
            opened.set()
            async for frame in stream.frames():
                frames.append(frame)
                if to_review(b)(frame):
                    break
        return frames

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            result: list[list[Frame]] = []

            async def collect() -> None:
                result.append(await live_b())

            tg.start_soon(collect)
            await opened.wait()  # the stream is open (and replays from Last-Event-ID anyway)
            resp = await client.post(f"/api/runs/{a}/messages", json={"text": "hi"})
            assert resp.status_code == 202
            await wait_status(client, a, "review")
            resp = await client.post(f"/api/runs/{b}/messages", json={"text": "yo"})
            assert resp.status_code == 202
    new_b = [e for e in await event_log(client, b) if e["id"] > log_b[-1]["id"]]
    assert [f.json() for f in result[0]] == new_b
    assert any(e["type"] == "user.message" for e in new_b)


async def test_streams_require_credentials(
    server: ServerProcess, client: httpx.AsyncClient, repo: Path
) -> None:
    run = await create_run(client, {"say": "x"}, repo_path=str(repo))
    await wait_status(client, run["id"], "review")
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as anon:
        for path in (f"/api/runs/{run['id']}/events/stream", "/api/events/stream"):
            for headers in ({}, {"Authorization": "Bearer wrong"}):
                resp = await anon.get(path, headers=headers)
                assert resp.status_code == 401, (path, resp.text)
                assert resp.headers["content-type"].startswith("application/problem+json")
                problem = resp.json()
                assert problem["status"] == 401 and problem["title"] and problem["detail"]
        # ?access_token= is for WebSockets only (issue 11): on HTTP a URL ends up in logs.
        params = {"access_token": server.token, "until_idle": "1"}
        resp = await anon.get(f"/api/runs/{run['id']}/events/stream", params=params)
        assert resp.status_code == 401, resp.text
        headers = {"Authorization": f"Bearer {server.token}"}
        frames = await read_frames(
            anon, f"/api/runs/{run['id']}/events/stream", params={"until_idle": 1}, headers=headers
        )
        assert [f.json() for f in frames] == await event_log(client, run["id"])
    resp = await client.get("/api/runs/run_doesnotexist/events/stream")
    assert resp.status_code == 404
    assert resp.headers["content-type"].startswith("application/problem+json")


async def test_websocket_carries_the_same_events(
    server: ServerProcess, client: httpx.AsyncClient, repo: Path
) -> None:
    run = await create_run(
        client,
        {"say": "one"},
        {"sleep": 0.3},
        {"bash": "echo two"},
        {"say": "three"},
        repo_path=str(repo),
    )
    received: list[dict[str, Any]] = []
    url = f"{server.ws_url}/api/ws?access_token={server.token}"
    with anyio.fail_after(20):
        async with ws_connect(url) as ws:
            await ws.send(json.dumps({"subscribe": {"run_id": run["id"], "after": 0}}))
            while not received or not (
                received[-1]["type"] == "run.status" and received[-1]["data"]["to"] == "review"
            ):
                received.append(json.loads(await ws.recv()))
            log = await event_log(client, run["id"])
            assert received == log

            # A new subscription replaces the old one: replay with a types filter from an id.
            middle = log[len(log) // 2]["id"]
            kinds = ["agent.message", "run.status"]
            spec = {"run_id": run["id"], "after": middle, "types": kinds}
            await ws.send(json.dumps({"subscribe": spec}))
            want = [e for e in log if e["id"] > middle and e["type"] in kinds]
            assert [json.loads(await ws.recv()) for _ in want] == want
            with anyio.move_on_after(0.3) as scope:
                extra = await ws.recv()
            assert scope.cancelled_caught, f"unexpected frame {extra!r}"


@pytest.mark.parametrize(
    ("message", "named"),
    [
        ('{"subscribe": {"after": "abc"}}', "subscribe.after"),
        ('{"subscribe": {"after": -1}}', "subscribe.after"),
        ('{"subscribe": {"run_id": 5}}', "subscribe.run_id"),
        ('{"subscribe": {"colour": "red"}}', "subscribe.colour"),
        ('{"bogus": 1}', "subscribe"),
        ("not json", "Invalid JSON"),
        ("[1, 2]", "message"),
    ],
)
async def test_websocket_bad_subscription_closes_with_a_reason(
    server: ServerProcess, message: str, named: str
) -> None:
    """Bad input closes the socket (4400) with a reason naming the field, never a server error
    (``"after": "abc"`` used to raise ``ValueError`` in the handler)."""
    url = f"{server.ws_url}/api/ws?access_token={server.token}"
    with anyio.fail_after(30):
        async with ws_connect(url) as ws:
            await ws.send(message)
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4400
        assert named in closed.value.rcvd.reason and "subscribe" in closed.value.rcvd.reason
    assert "Traceback" not in server.log_tail(200)


async def test_websocket_without_token_is_closed_with_4401(server: ServerProcess) -> None:
    for url in (f"{server.ws_url}/api/ws", f"{server.ws_url}/api/ws?access_token=wrong"):
        with anyio.fail_after(30):
            try:
                async with ws_connect(url) as ws:
                    await ws.recv()
            except ConnectionClosed as exc:
                assert exc.rcvd is not None and exc.rcvd.code == 4401, exc
            except InvalidStatus as exc:  # rejected at the handshake instead of closed
                pytest.fail(
                    f"expected close code 4401, the handshake got HTTP {exc.response.status_code}"
                )
            else:
                pytest.fail("the connection was not closed")
