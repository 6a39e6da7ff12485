"""Port previews against a real server: a dev server started from the run's terminal on its
leased port, detected, reached through path mode and host mode; a WebSocket echo through the
proxy with its subprotocol; and the refusals (another user's run, a port outside any lease)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.conftest import make_repo
from tests.support.server import TOKEN, ServerProcess, event_log, wait_status

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

ECHO = """
import asyncio, json, sys
from websockets.asyncio.server import serve
async def echo(ws):
    headers = ws.request.headers
    await ws.send(json.dumps({"authorization": headers.get("authorization"),
                              "cookie": headers.get("cookie"), "path": ws.request.path}))
    async for message in ws:
        await ws.send(message)
async def main():
    async with serve(echo, "127.0.0.1", int(sys.argv[1]), subprotocols=["vite-hmr"]):
        print("ready", flush=True)
        await asyncio.Future()
asyncio.run(main())
"""


@pytest.fixture
async def server(tmp_path: Path) -> Any:
    srv = ServerProcess(tmp_path / "data")
    await srv.start_async()
    yield srv
    srv.stop()


@pytest.fixture
def echo_servers() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


async def make_run(http: httpx.AsyncClient, repo: Path) -> dict[str, Any]:
    body = {
        "prompt": "nothing",
        "repo_path": str(repo),
        "provider": "script",
        "agent_options": {
            "scenario": {"steps": [{"write": {"path": "hello.html", "content": "<p>hi</p>"}}]}
        },
    }
    resp = await http.post("/api/runs", json=body)
    assert resp.status_code == 201, resp.text
    return await wait_status(http, resp.json()["id"], "review")


async def test_preview_both_modes_websocket_and_refusals(
    server: ServerProcess, tmp_path: Path, echo_servers: list[subprocess.Popen[bytes]]
) -> None:
    repo = make_repo(tmp_path / "site", {"README.md": "# preview me\n"})
    async with server.client() as http:
        run = await make_run(http, repo)
        lease = (await http.get(f"/api/runs/{run['number']}/preview")).json()
        port, ws_port = lease["ports"][0], lease["ports"][1]
        assert lease["env"]["PORT"] == str(port) and lease["size"] == 10

        # The dev server is started from the run's terminal on $PORT.
        term = (await http.post("/api/terminals", json={"run_id": run["id"]})).json()
        await http.post(
            f"/api/terminals/{term['id']}/text",
            json={"text": "exec python3 -m http.server $PORT --bind 127.0.0.1\r"},
        )
        opened: list[dict[str, Any]] = []
        deadline = asyncio.get_running_loop().time() + 60  # python starts, the watcher polls
        while not opened and asyncio.get_running_loop().time() < deadline:
            events = await event_log(http, run["id"])
            opened = [e for e in events if e["type"] == "preview.port_opened"]
            if not opened:
                await asyncio.sleep(0.1)
        assert opened and opened[0]["data"]["port"] == port and opened[0]["data"]["index"] == 0

        # Path mode: authenticated like the API; the page gets an opaque origin (sandbox CSP).
        page = await http.get(f"/api/preview/{port}/hello.html")
        assert page.status_code == 200 and page.text == "<p>hi</p>"
        assert page.headers["content-security-policy"].startswith("sandbox")
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as nobody:
            anonymous = await nobody.get(f"/api/preview/{port}/")
        assert anonymous.status_code == 401

        # Host mode: a one-time link, traded for a cookie of the preview host only.
        link = (await http.post(f"/api/runs/{run['number']}/preview/0/link")).json()
        host = f"{run['number']}-0.preview.localhost:{server.port}"
        assert link["origin"].endswith(host) and link["port"] == port
        async with httpx.AsyncClient(
            base_url=server.url, headers={"host": host}, timeout=30
        ) as browser:
            assert (await browser.get("/README.md")).status_code == 401
            auth_path = link["url"].split(host, 1)[1]
            entered = await browser.get(auth_path)
            assert (
                entered.status_code == 303 and "codeyard_preview=" in entered.headers["set-cookie"]
            )
            readme = await browser.get("/README.md")
            assert readme.status_code == 200 and readme.text == "# preview me\n"
            assert "x-frame-options" not in readme.headers  # framing allowed on preview origins
            again = await browser.get(auth_path)
            assert again.status_code == 403  # the token was single-use
            cookie = browser.cookies.get("codeyard_preview")
        async with httpx.AsyncClient(
            base_url=server.url,
            headers={"host": f"{run['number']}-1.preview.localhost:{server.port}"},
            cookies={"codeyard_preview": cookie or ""},
            timeout=30,
        ) as elsewhere:
            other = await elsewhere.get("/")
        assert other.status_code == 401  # the cookie is for port index 0 only

        # WebSocket echo through the proxy, subprotocol kept, Codeyard's credentials not leaked.
        echo = subprocess.Popen(  # noqa: ASYNC220 - a fixture server, started once
            [sys.executable, "-c", ECHO, str(ws_port)], stdout=subprocess.PIPE
        )
        echo_servers.append(echo)
        assert echo.stdout is not None and echo.stdout.readline().strip() == b"ready"
        url = f"{server.ws_url}/api/preview/{ws_port}/hmr?x=1&access_token={TOKEN}"
        async with connect(url, subprotocols=["vite-hmr"]) as ws:  # type: ignore[list-item]
            assert ws.subprotocol == "vite-hmr"
            seen = json.loads(await ws.recv())
            assert (
                seen["authorization"] is None and seen["path"] == "/hmr?x=1&access_token=" + TOKEN
            )
            await ws.send("ping")
            assert await ws.recv() == "ping"
            await ws.send(b"\x00\x01binary")
            assert await ws.recv() == b"\x00\x01binary"

        # Refusals: ports outside any lease (the server itself), privileged ports.
        own = await http.get(f"/api/preview/{server.port}/api/health")
        assert own.status_code == 403 and "port lease" in own.json()["detail"]
        assert (await http.get("/api/preview/80/")).status_code == 400

        # A member cannot reach the admin's run's port.
        await http.post(
            "/api/users",
            json={"username": "mo", "password": "correct horse battery", "role": "member"},
        )
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as door:
            login = await door.post(
                "/api/auth/login", json={"username": "mo", "password": "correct horse battery"}
            )
        assert login.status_code == 200, login.text
        member_cookies = login.cookies
        async with httpx.AsyncClient(base_url=server.url, cookies=member_cookies, timeout=30) as mo:
            refused = await mo.get(f"/api/preview/{port}/hello.html")
            assert refused.status_code == 403, refused.text
            no_link = await mo.post(
                f"/api/runs/{run['number']}/preview/0/link",
                headers={"x-csrf-token": member_cookies.get("codeyard_csrf") or ""},
            )
            assert no_link.status_code == 403
        await http.delete(f"/api/terminals/{term['id']}")
