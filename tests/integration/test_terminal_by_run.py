"""``WS /api/terminal?run_id=…`` on a real server: the run's shell, opened in its worktree on
first use (once, even for two attaches at once) and the newest live terminal on every later
attach; refused with the by-terminal route's close codes for the same reasons: 4401 for a bad
token, 4404 for an unknown run, 4403 for a token without ``runs:control`` and another user's
run, 4409 for a run without a worktree."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from tests.conftest import make_repo
from tests.support.auth import PASSWORD
from tests.support.server import TOKEN, ServerProcess, wait_status

pytestmark = [pytest.mark.anyio, pytest.mark.slow]
CONTROL = ["runs:read", "runs:write", "runs:control"]


class Shell:
    """One attach: the hello it got and every output byte since (control frames kept apart)."""

    def __init__(self, ws: ClientConnection, hello: dict[str, Any]) -> None:
        self.ws = ws
        self.hello = hello
        self.data = bytearray()
        self.control: list[dict[str, Any]] = []

    async def read_until(self, needle: bytes, timeout: float = 30) -> None:
        with anyio.fail_after(timeout):
            while needle not in self.data:
                frame = await self.ws.recv()
                if isinstance(frame, bytes):
                    self.data += frame
                else:
                    self.control.append(json.loads(frame))


def url(server: ServerProcess, run_ref: str, token: str = TOKEN) -> str:
    return f"{server.ws_url}/api/terminal?run_id={run_ref}&access_token={token}"


@asynccontextmanager
async def attached(server: ServerProcess, run_ref: str, token: str = TOKEN) -> AsyncIterator[Shell]:
    async with ws_connect(url(server, run_ref, token), max_size=None) as ws:
        with anyio.fail_after(30):
            hello = json.loads(await ws.recv())
        assert hello["type"] == "hello", hello
        yield Shell(ws, hello)


async def close_code(server: ServerProcess, run_ref: str, token: str = TOKEN) -> int:
    """The code the route closes with; fails if it sends anything first (a hello)."""
    return await refused_with(url(server, run_ref, token))


async def refused_with(ws_url: str) -> int:
    """The code a terminal socket at ``ws_url`` closes with; fails if it sends a hello first."""
    with anyio.fail_after(30), pytest.raises(ConnectionClosed) as caught:
        async with ws_connect(ws_url) as ws:
            frame = await ws.recv()
            raise AssertionError(f"attached where it should be refused: {frame!r}")
    assert caught.value.rcvd is not None, caught.value
    return caught.value.rcvd.code


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = ServerProcess(tmp_path_factory.mktemp("terminal-by-run") / "data")
    try:
        srv.start()
        yield srv
    finally:
        srv.stop()


@pytest.fixture
async def admin(server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with server.client() as client:
        yield client


async def ready_run(client: httpx.AsyncClient, repo: Path) -> dict[str, Any]:
    """A run in review: its worktree is there, with the file its script wrote."""
    body = {
        "prompt": "Make a file",
        "repo_path": str(repo),
        "provider": "script",
        "agent_options": {"scenario": {"steps": [{"write": {"path": "made.txt", "content": "x"}}]}},
    }
    resp = await client.post("/api/runs", json=body)
    assert resp.status_code == 201, resp.text
    return await wait_status(client, resp.json()["id"], "review", timeout=60)


async def terminals_of(client: httpx.AsyncClient, run_id: str) -> list[dict[str, Any]]:
    resp = await client.get(f"/api/runs/{run_id}/terminals")
    assert resp.status_code == 200, resp.text
    data: list[dict[str, Any]] = resp.json()["data"]
    return data


async def member_token(server: ServerProcess, admin: httpx.AsyncClient, username: str) -> str:
    """A member's personal access token with ``runs:control`` (made through their session)."""
    body = {"username": username, "password": PASSWORD, "role": "member"}
    made = await admin.post("/api/users", json=body)
    assert made.status_code == 201, made.text
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as browser:
        login = await browser.post(
            "/api/auth/login", json={"username": username, "password": PASSWORD}
        )
        assert login.status_code == 200, login.text
        browser.headers["X-CSRF-Token"] = login.json()["csrf_token"]
        resp = await browser.post("/api/tokens", json={"name": "ws", "scopes": CONTROL})
    assert resp.status_code == 201, resp.text
    token: str = resp.json()["token"]
    return token


async def test_first_attach_opens_the_worktree_shell_and_later_ones_share_it(
    server: ServerProcess, admin: httpx.AsyncClient, tmp_path: Path
) -> None:
    run = await ready_run(admin, make_repo(tmp_path / "site"))
    assert await terminals_of(admin, run["id"]) == []

    async with attached(server, str(run["number"])) as first:
        term = first.hello
        assert term["status"] == "live" and term["run_id"] == run["id"]
        assert first.hello["read_only"] is False
        worktree = Path(term["cwd"])
        assert (worktree / "made.txt").is_file()  # the run's worktree, with its change
        # The marker is split so the echoed command line never matches, only the output.
        await first.ws.send(b'echo "AT""=$(pwd)"\r')
        await first.read_until(f"AT={worktree}\r\n".encode())

        async with attached(server, run["id"]) as second:  # by id this time, not by number
            assert second.hello["id"] == term["id"]
            await second.ws.send(b"echo SEEN-$((40+2))\r")
            await first.read_until(b"SEEN-42")  # typed in one attach, shown in the other
            await second.read_until(b"SEEN-42")

    # Both detached: the shell still runs, and a third attach comes back to it.
    listed = await terminals_of(admin, run["id"])
    assert [(t["id"], t["status"]) for t in listed] == [(term["id"], "live")]
    async with attached(server, run["id"]) as third:
        assert third.hello["id"] == term["id"]

    # Once it is closed, the next attach opens a new one (the newest live terminal, not any).
    closed = await admin.delete(f"/api/terminals/{term['id']}")
    assert closed.status_code == 200, closed.text
    async with attached(server, run["id"]) as fresh:
        assert fresh.hello["id"] != term["id"] and fresh.hello["status"] == "live"

    # With two live terminals, the newest one is attached to.
    made = await admin.post("/api/terminals", json={"run_id": run["id"]})
    assert made.status_code == 201, made.text
    newer = made.json()
    assert newer["created_at"] > fresh.hello["created_at"]  # the order is not a tie
    async with attached(server, run["id"]) as again:
        assert again.hello["id"] == newer["id"]
    for term_id in (fresh.hello["id"], newer["id"]):
        assert (await admin.delete(f"/api/terminals/{term_id}")).status_code == 200


async def test_two_first_attaches_at_once_share_one_shell(
    server: ServerProcess, admin: httpx.AsyncClient, tmp_path: Path
) -> None:
    """Two tabs opening the run's terminal together: one shell, not one each (each used to
    look, find none and open its own)."""
    run = await ready_run(admin, make_repo(tmp_path / "site"))
    both = asyncio.Event()
    seen: list[str] = []

    async def tab() -> None:
        async with attached(server, run["id"]) as shell:
            seen.append(shell.hello["id"])
            if len(seen) == 2:
                both.set()
            with anyio.fail_after(30):
                await both.wait()  # both attached before either leaves

    async with asyncio.TaskGroup() as tabs:
        tabs.create_task(tab())
        tabs.create_task(tab())
    listed = await terminals_of(admin, run["id"])
    assert len(set(seen)) == 1 and [t["id"] for t in listed] == seen[:1], (seen, listed)
    assert (await admin.delete(f"/api/terminals/{seen[0]}")).status_code == 200


async def test_an_unknown_run_is_refused_as_not_found(server: ServerProcess) -> None:
    assert await close_code(server, "run_doesnotexist") == 4404
    assert await close_code(server, "999999") == 4404


async def test_a_bad_token_is_refused_as_not_authenticated(
    server: ServerProcess, admin: httpx.AsyncClient, tmp_path: Path
) -> None:
    run = await ready_run(admin, make_repo(tmp_path / "site"))
    assert await close_code(server, run["id"], "cy_pat_not-a-real-token") == 4401
    assert await close_code(server, "run_doesnotexist", "cy_pat_not-a-real-token") == 4401
    assert await terminals_of(admin, run["id"]) == []


async def test_a_run_without_a_worktree_is_refused_as_a_conflict(
    server: ServerProcess, admin: httpx.AsyncClient, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "site")
    body = {"prompt": "Not yet", "repo_path": str(repo), "provider": "script", "draft": True}
    made = await admin.post("/api/runs", json=body)
    assert made.status_code == 201, made.text
    assert made.json()["worktrees"] in (None, {})
    assert await close_code(server, made.json()["id"]) == 4409


async def test_a_token_without_runs_control_is_refused(
    server: ServerProcess, admin: httpx.AsyncClient, tmp_path: Path
) -> None:
    run = await ready_run(admin, make_repo(tmp_path / "site"))
    made = await admin.post(
        "/api/tokens", json={"name": "narrow", "scopes": ["runs:read", "runs:write"]}
    )
    assert made.status_code == 201, made.text
    narrow = made.json()["token"]
    async with server.client(token=narrow) as client:  # the run is visible to this token
        assert (await client.get(f"/api/runs/{run['id']}")).status_code == 200
    assert await close_code(server, run["id"], narrow) == 4403
    assert await terminals_of(admin, run["id"]) == []  # and nothing was started for it


async def test_both_routes_refuse_a_token_without_their_scope_as_forbidden(
    server: ServerProcess, admin: httpx.AsyncClient, tmp_path: Path
) -> None:
    """A missing scope is 4403 by terminal too (it was 4401, "not authenticated")."""
    run = await ready_run(admin, make_repo(tmp_path / "site"))
    made = await admin.post("/api/tokens", json={"name": "settings", "scopes": ["settings:read"]})
    assert made.status_code == 201, made.text
    token = made.json()["token"]
    opened = await admin.post("/api/terminals", json={"run_id": run["id"]})
    assert opened.status_code == 201, opened.text
    term_id = opened.json()["id"]
    by_terminal = f"{server.ws_url}/api/terminals/{term_id}/ws?access_token={token}"
    try:
        assert await close_code(server, run["id"], token) == 4403
        assert await refused_with(by_terminal) == 4403
        gone = f"{server.ws_url}/api/terminals/term_doesnotexist/ws?access_token={TOKEN}"
        assert await refused_with(gone) == 4404
    finally:
        await admin.delete(f"/api/terminals/{term_id}")


async def test_another_users_run_is_refused(
    server: ServerProcess, admin: httpx.AsyncClient, tmp_path: Path
) -> None:
    ann = await member_token(server, admin, "ann")
    repo = make_repo(tmp_path / "site")  # registered by the admin's run, then ann's too
    admins_run = await ready_run(admin, repo)

    # No terminal yet: ann may not open one on it.
    assert await close_code(server, admins_run["id"], ann) == 4403
    assert await terminals_of(admin, admins_run["id"]) == []
    # A live one opened by its owner: ann may not attach to it either.
    async with attached(server, admins_run["id"]) as owners:
        assert await close_code(server, admins_run["id"], ann) == 4403
        await admin.delete(f"/api/terminals/{owners.hello['id']}")

    # Her own run is hers to use (the refusals above are about ownership, not her token).
    async with server.client(token=ann) as client:
        own_run = await ready_run(client, repo)
        async with attached(server, own_run["id"], ann) as mine:
            assert mine.hello["run_id"] == own_run["id"]
            await mine.ws.send(b"echo ANN-$((1+1))\r")
            await mine.read_until(b"ANN-2")
        await client.delete(f"/api/terminals/{mine.hello['id']}")
