"""Terminals over the WebSocket of a real server: exact replay with ``since=``, tracked modes,
several viewers, and scrollback that survives ``kill -9`` of the server."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.support.server import TOKEN, ServerProcess, wait_status
from tests.support.waits import eventually, scrollback_saved

pytestmark = [pytest.mark.anyio, pytest.mark.slow]
BASH = ["bash", "--norc", "--noprofile", "-i"]


class Viewer:
    """A WebSocket viewer that counts bytes the way a browser client does."""

    def __init__(self, ws: ClientConnection, hello: dict[str, Any]) -> None:
        self.ws = ws
        self.hello = hello
        self.data = bytearray()
        self.offset = int(hello["start"])
        self.control: list[dict[str, Any]] = []

    async def read_until(self, needle: bytes, timeout: float = 30) -> None:
        async with asyncio.timeout(timeout):
            while needle not in self.data:
                frame = await self.ws.recv()
                if isinstance(frame, bytes):
                    self.data += frame
                    self.offset += len(frame)
                else:
                    self.control.append(json.loads(frame))


async def attach(server: ServerProcess, term_id: str, since: int | None = None) -> Viewer:
    query = f"?access_token={TOKEN}" + (f"&since={since}" if since is not None else "")
    ws = await connect(f"{server.ws_url}/api/terminals/{term_id}/ws{query}", max_size=None)
    hello = json.loads(await ws.recv())
    assert hello["type"] == "hello", hello
    return Viewer(ws, hello)


@pytest.fixture
async def server(tmp_path: Path) -> Any:
    srv = ServerProcess(tmp_path / "data")
    await srv.start_async()
    yield srv
    srv.stop()


async def test_replay_modes_viewers_and_a_restart(server: ServerProcess, tmp_path: Path) -> None:
    async with server.client() as http:
        resp = await http.post(
            "/api/terminals", json={"cwd": str(tmp_path), "command": BASH, "cols": 90, "rows": 20}
        )
        assert resp.status_code == 201, resp.text
        term_id = resp.json()["id"]

        first = await attach(server, term_id)
        await first.ws.send(b"echo ONE-$((40+2))\r")
        await first.read_until(b"ONE-42")
        await first.ws.close()

        # Output while nobody watches is kept; since= replays exactly that, no more, no less.
        seen = first.offset
        await http.post(f"/api/terminals/{term_id}/text", json={"text": "echo TWO-$((1+1))\r"})
        await asyncio.sleep(0.5)
        second = await attach(server, term_id, since=seen)
        assert second.hello["start"] == seen and second.hello["gap"] is False
        await second.read_until(b"TWO-2")
        assert b"ONE-42" not in second.data

        # Two viewers see the same live bytes; bash's bracketed-paste mode is tracked.
        third = await attach(server, term_id, since=second.offset)
        await third.ws.send(b"printf 'BOTH\\n'\r")
        await second.read_until(b"BOTH\r\n")
        await third.read_until(b"BOTH\r\n")
        assert 2004 in third.hello["modes"]
        fresh = await attach(server, term_id)  # from the start: modes re-sent first
        await fresh.read_until(b"BOTH")
        assert fresh.data.startswith(b"\x1b[?2004h")
        for v in (second, third, fresh):
            await v.ws.close()

        # Resize through a viewer reaches the program (SIGWINCH; stty sees it).
        sizer = await attach(server, term_id, since=fresh.offset)
        await sizer.ws.send(json.dumps({"type": "resize", "cols": 132, "rows": 41}))
        await asyncio.sleep(0.2)
        await sizer.ws.send(b"stty size\r")
        await sizer.read_until(b"41 132")
        await sizer.ws.close()
        full = await attach(server, term_id, since=0)
        await full.read_until(b"41 132")
        await full.ws.close()

    # Killed once the scrollback file holds the size (a fixed 0.6 s for "one flush" was not
    # always one under load).
    assert await eventually(
        lambda: scrollback_saved(server.data_dir / "terminals", b"41 132"), timeout=30
    ), "the scrollback was never saved"
    server.kill()
    await server.start_async()
    async with server.client() as http:
        body = (await http.get(f"/api/terminals/{term_id}")).json()
        assert body["status"] == "lost" and "restarted" in body["close_reason"]
        after = await attach(server, term_id, since=0)
        await after.read_until(b"41 132")
        # The same bytes, in order (either may hold the prompt bash printed after the size).
        both = min(len(after.data), len(full.data))
        assert after.data[:both] == full.data[:both] and b"41 132" in after.data[:both]
        async with asyncio.timeout(30):
            while not any(c.get("type") == "exit" for c in after.control):
                after.control.append(json.loads(await after.ws.recv()))
        await after.ws.close()
        gone = await http.post(f"/api/terminals/{term_id}/text", json={"text": "ls\r"})
        assert gone.status_code == 409 and "restarted" in gone.json()["detail"]


async def test_the_websocket_refuses_strangers(server: ServerProcess, tmp_path: Path) -> None:
    async with server.client() as http:
        term_id = (
            await http.post("/api/terminals", json={"cwd": str(tmp_path), "command": BASH})
        ).json()["id"]
    ws = await connect(f"{server.ws_url}/api/terminals/{term_id}/ws")
    with pytest.raises(Exception) as closed:
        await ws.recv()
    assert "4401" in str(closed.value)
    async with server.client() as http:
        await http.delete(f"/api/terminals/{term_id}")


async def test_a_share_link_watches_read_only(server: ServerProcess, tmp_path: Path) -> None:
    from tests.conftest import make_repo

    repo = make_repo(tmp_path / "site")
    async with server.client() as http:
        body = {
            "prompt": "x",
            "repo_path": str(repo),
            "provider": "script",
            "agent_options": {"scenario": {"steps": []}},
        }
        run = (await http.post("/api/runs", json=body)).json()
        await wait_status(http, run["id"], "review", timeout=60)
        term = (
            await http.post("/api/terminals", json={"run_id": run["id"], "command": BASH})
        ).json()
        share = (await http.post(f"/api/runs/{run['id']}/share", json={})).json()
        listed = await http.get(
            f"/api/share/{share['token']}/terminals", headers={"authorization": ""}
        )
        assert [t["id"] for t in listed.json()["data"]] == [term["id"]]
        await http.post(f"/api/terminals/{term['id']}/text", json={"text": "echo SHOWN-$((2+3))\r"})
        url = f"{server.ws_url}/api/share/{share['token']}/terminals/{term['id']}/ws"
        async with connect(url) as ws:
            hello = json.loads(await ws.recv())
            assert hello["read_only"] is True
            viewer = Viewer(ws, hello)
            await viewer.read_until(b"SHOWN-5")
            await ws.send(b"touch SHOULD-NOT-EXIST\r")
            await ws.send(json.dumps({"type": "resize", "cols": 20, "rows": 5}))
            await asyncio.sleep(0.5)
        shown = (await http.get(f"/api/terminals/{term['id']}")).json()
        assert (shown["cols"], shown["rows"]) == (80, 24)
        assert not (Path(shown["cwd"]) / "SHOULD-NOT-EXIST").exists()
        bad = await connect(f"{server.ws_url}/api/share/cy_share_nope/terminals/{term['id']}/ws")
        with pytest.raises(Exception, match="4404"):
            await bad.recv()
        await http.delete(f"/api/terminals/{term['id']}")
