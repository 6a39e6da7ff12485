"""Auth on a real server: start-up notices, and streams (SSE, WebSocket) with session cookies
and share links — httpx's ASGI transport cannot stream, so these need a real port."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from tests.conftest import make_repo
from tests.support.server import TOKEN, ServerProcess, event_log, read_frames, wait_status

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = ServerProcess(tmp_path_factory.mktemp("auth-live") / "data")
    try:
        srv.start()
        yield srv
    finally:
        srv.stop()


@pytest.fixture
async def admin(server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with server.client() as client:
        yield client


async def finished_run(client: httpx.AsyncClient, repo: Path) -> dict[str, Any]:
    body = {
        "prompt": "hello",
        "repo_path": str(repo),
        "provider": "script",
        "agent_options": {"scenario": {"steps": [{"say": "hi"}]}},
    }
    run: dict[str, Any] = (await client.post("/api/runs", json=body)).json()
    await wait_status(client, run["id"], "review")
    return run


@asynccontextmanager
async def token_session(server: ServerProcess, token: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        resp = await client.post("/api/auth/token-login", json={"token": token})
        assert resp.status_code == 200, resp.text
        yield client


def test_start_prints_the_login_url_and_the_setup_code(server: ServerProcess) -> None:
    log = server.log_tail(200)
    assert f"Sign in: {server.url}/login#token={TOKEN}" in log
    assert "create the first admin with setup code" in log


async def test_streams_accept_the_session_cookie(
    server: ServerProcess, admin: httpx.AsyncClient, tmp_path: Path
) -> None:
    run = await finished_run(admin, make_repo(tmp_path / "repo"))
    log = await event_log(admin, run["id"])
    async with token_session(server, TOKEN) as browser:
        path = f"/api/runs/{run['id']}/events/stream"
        frames = await read_frames(browser, path, params={"until_idle": 1})
        assert [f.json() for f in frames] == log

        session = browser.cookies["codeyard_session"]
        headers = {"Cookie": f"codeyard_session={session}"}
        received: list[dict[str, Any]] = []
        with anyio.fail_after(20):
            async with ws_connect(f"{server.ws_url}/api/ws", additional_headers=headers) as ws:
                await ws.send(json.dumps({"subscribe": {"run_id": run["id"], "after": 0}}))
                while len(received) < len(log):
                    received.append(json.loads(await ws.recv()))
        assert received == log


async def test_websocket_needs_runs_read(server: ServerProcess, admin: httpx.AsyncClient) -> None:
    resp = await admin.post("/api/tokens", json={"name": "s", "scopes": ["settings:read"]})
    url = f"{server.ws_url}/api/ws?access_token={resp.json()['token']}"
    with anyio.fail_after(30), pytest.raises(ConnectionClosed) as caught:
        async with ws_connect(url) as ws:
            await ws.recv()
    assert caught.value.rcvd is not None and caught.value.rcvd.code == 4401


async def test_share_link_stream(
    server: ServerProcess, admin: httpx.AsyncClient, tmp_path: Path
) -> None:
    run = await finished_run(admin, make_repo(tmp_path / "repo"))
    other = await finished_run(admin, make_repo(tmp_path / "other"))
    token = (await admin.post(f"/api/runs/{run['id']}/share")).json()["token"]
    log = await event_log(admin, run["id"])
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as anonymous:
        path = f"/api/share/{token}/events/stream"
        frames = await read_frames(anonymous, path, count=len(log))
        assert [f.json() for f in frames] == log
        assert all(f.json()["run_id"] != other["id"] for f in frames)
        resp = await anonymous.get("/api/share/cy_shr_nope/events/stream")
        assert resp.status_code == 404
