"""Against ``codeyard serve`` in a subprocess (issue 11 §2): proxy headers trusted only when
configured, the Host allowlist against DNS rebinding, the per-user cap on open event streams
(httpx's ASGI transport cannot hold a stream open, so these need a real server), and how long
an idle keep-alive connection is kept."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from codeyard.config import KEEP_ALIVE_SECONDS
from tests.support.server import ServerProcess

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {"CODEYARD_MAX_STREAMS_PER_USER": "2"}
    srv = ServerProcess(tmp_path_factory.mktemp("limits") / "data", env=env)
    try:
        srv.start()
        yield srv
    finally:
        srv.stop()


async def _guesses(url: str, count: int) -> list[int]:
    """``count`` wrong sign-ins, each claiming another client address and username."""
    codes = []
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        for n in range(count):
            resp = await client.post(
                "/api/auth/login",
                json={"username": f"nobody{n}", "password": "wrong"},
                headers={"X-Forwarded-For": f"203.0.113.{n}"},
            )
            codes.append(resp.status_code)
    return codes


async def test_forwarded_for_is_ignored_unless_a_proxy_is_configured(
    server: ServerProcess, tmp_path: Path
) -> None:
    assert await _guesses(server.url, 6) == [401] * 5 + [429]
    proxied = ServerProcess(tmp_path / "data", env={"CODEYARD_FORWARDED_ALLOW_IPS": "127.0.0.1"})
    proxied.start()
    try:
        # Behind a configured proxy each forwarded address is its own client.
        assert await _guesses(proxied.url, 6) == [401] * 6
    finally:
        proxied.stop()


async def test_unknown_host_names_are_refused(server: ServerProcess) -> None:
    auth = {"Authorization": f"Bearer {server.token}"}
    async with httpx.AsyncClient(base_url=server.url, timeout=30, headers=auth) as client:
        resp = await client.get("/api/runs", headers={"Host": "rebind.attacker.example"})
        assert resp.status_code == 421
        problem = resp.json()
        assert "CODEYARD_ALLOWED_HOSTS" in problem["detail"]
        assert resp.headers["content-type"].startswith("application/problem+json")
        for host in (f"127.0.0.1:{server.port}", f"localhost:{server.port}", "localhost"):
            assert (await client.get("/api/runs", headers={"Host": host})).status_code == 200
        assert (await client.get("/", headers={"Host": "evil.example"})).status_code == 421
        # A WebSocket handshake under a foreign name is refused before it is accepted.
        upgrade = {
            "Host": "evil.example",
            "Connection": "Upgrade",
            "Upgrade": "websocket",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        }
        resp = await client.get("/api/ws", headers=upgrade)
        assert resp.status_code == 403
        upgrade["Host"] = f"127.0.0.1:{server.port}"
        assert (await client.get("/api/ws", headers=upgrade)).status_code == 101


async def test_open_event_streams_are_capped_per_user(server: ServerProcess) -> None:
    auth = {"Authorization": f"Bearer {server.token}"}
    async with httpx.AsyncClient(base_url=server.url, timeout=30, headers=auth) as client:
        async with (
            client.stream("GET", "/api/events/stream") as first,
            client.stream("GET", "/api/events/stream") as second,
        ):
            assert first.status_code == second.status_code == 200
            third = await client.get("/api/events/stream")
            assert third.status_code == 429
            assert "at most 2 per user" in third.json()["detail"]
            url = f"{server.ws_url}/api/ws?access_token={server.token}"
            async with ws_connect(url) as ws:
                with pytest.raises(ConnectionClosed) as closed:
                    await ws.recv()
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 4429
        # Closing the streams gives the slots back, once the server has seen the disconnects
        # (it may serve the next request first: a 429 then says to retry after 1 s).
        statuses = []
        for _ in range(50):
            async with client.stream("GET", "/api/events/stream") as again:
                statuses.append(again.status_code)
                if again.status_code != 429:
                    break
                assert again.headers["retry-after"] == "1"
            await anyio.sleep(0.1)
        assert statuses[-1] == 200, statuses


async def _health_on(stream: anyio.abc.SocketStream) -> bytes:
    """One ``GET /api/health`` on an open connection; the status line, or b"" when closed."""
    await stream.send(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    received = b""
    with anyio.fail_after(10):
        while b"\r\n\r\n" not in received:
            try:
                received += await stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                return b""
    head, _, body = received.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += await stream.receive()
    return head.split(b"\r\n")[0]


async def test_an_idle_keep_alive_connection_outlives_a_clients_own_expiry(
    server: ServerProcess,
) -> None:
    """Uvicorn's default closes an idle connection after 5 s, httpx's own expiry: a request on
    a connection idle just under 5 s then met a closing server ("Server disconnected without
    sending a response", seen in CI). Past that, the same connection still answers."""
    assert KEEP_ALIVE_SECONDS > 60
    async with await anyio.connect_tcp("127.0.0.1", server.port) as stream:
        assert await _health_on(stream) == b"HTTP/1.1 200 OK"
        await anyio.sleep(6)  # > uvicorn's default 5 s
        assert await _health_on(stream) == b"HTTP/1.1 200 OK"
