"""The preview proxy's HTTP relay against a real upstream on a loopback port.

The upstream is an aiohttp web server in the test's loop; the relay is
``codeyard.preview.proxy.forward_http`` as an ASGI app, driven over ``httpx.ASGITransport``.
The end-to-end preview test (test_preview.py) covers the routes, auth and WebSockets; this one
covers what the relay itself promises: bodies pass both ways intact, Codeyard's credentials
never reach the previewed program, hop-by-hop headers go, encodings stay as the app sent them,
redirects are not followed, and a port with nothing on it answers 502.
"""

from __future__ import annotations

import gzip
import hashlib
import socket
from collections.abc import AsyncIterator

import aiohttp
import httpx
import pytest
from aiohttp import web
from starlette.types import Receive, Scope, Send

from codeyard.preview.proxy import Target, forward_http, upstream_session

pytestmark = pytest.mark.anyio
BIG = bytes(range(256)) * 20_000  # 5 MB, streamed in 64 KiB pieces by the upstream


async def _echo(request: web.Request) -> web.Response:
    body = await request.read()
    seen = {
        "headers": {k.lower(): v for k, v in request.headers.items()},
        "sha256": hashlib.sha256(body).hexdigest(),
        "length": len(body),
        "path": request.path_qs,
    }
    return web.json_response(seen)


async def _big(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
    resp.headers.add("Set-Cookie", "app=1; Path=/")
    resp.headers.add("Set-Cookie", "codeyard_session=stolen; Path=/")
    resp.headers.add("Set-Cookie", "theme=dark; Path=/")
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    for i in range(0, len(BIG), 65536):
        await resp.write(BIG[i : i + 65536])
    await resp.write_eof()
    return resp


async def _gz(request: web.Request) -> web.Response:
    return web.Response(
        body=gzip.compress(b"compressed page"),
        headers={"Content-Encoding": "gzip", "Content-Type": "text/plain"},
    )


async def _moved(request: web.Request) -> web.Response:
    raise web.HTTPFound("/elsewhere")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
async def upstream() -> AsyncIterator[int]:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_route("*", "/echo", _echo)
    app.router.add_get("/big", _big)
    app.router.add_get("/gz", _gz)
    app.router.add_get("/moved", _moved)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield port
    finally:
        await runner.cleanup()


@pytest.fixture
async def relay() -> AsyncIterator[aiohttp.ClientSession]:
    session = upstream_session()
    try:
        yield session
    finally:
        await session.close()


def _client(session: aiohttp.ClientSession, port: int) -> httpx.AsyncClient:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        query = scope.get("query_string", b"").decode()
        target = Target(port, scope["path"], query, f"127.0.0.1:{port}", own_origin=False)
        await forward_http(session, scope, receive, send, target)

    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=("10.0.0.7", 5000)), base_url="http://cy"
    )


async def test_bodies_pass_intact_and_credentials_stay_behind(
    upstream: int, relay: aiohttp.ClientSession
) -> None:
    session = relay
    upload = hashlib.sha512(b"seed").digest() * 50_000  # 3.2 MB
    async with _client(session, upstream) as http:
        sent = await http.post(
            "/echo?q=1",
            content=upload,
            headers={
                "authorization": "Bearer cy_secret",
                "x-csrf-token": "csrf",
                "cookie": "codeyard_session=s1; app=1; codeyard_preview=p1",
            },
        )
        assert sent.status_code == 200, sent.text
        seen = sent.json()
        assert seen["length"] == len(upload)
        assert seen["sha256"] == hashlib.sha256(upload).hexdigest()
        assert seen["path"] == "/echo?q=1"
        headers = seen["headers"]
        assert "authorization" not in headers and "x-csrf-token" not in headers
        assert headers["cookie"] == "app=1"
        assert headers["host"] == f"127.0.0.1:{upstream}"
        assert headers["x-forwarded-for"] == "10.0.0.7"
        # Only what the browser sent: the relay adds no client identity of its own.
        assert headers["user-agent"].startswith("python-httpx")

        big = await http.get("/big")
        assert big.status_code == 200 and big.content == BIG
        assert "transfer-encoding" not in big.headers
        cookies = big.headers.get_list("set-cookie")
        assert cookies == ["app=1; Path=/", "theme=dark; Path=/"]
        assert big.headers["content-security-policy"].startswith("sandbox")  # path mode

        raw = await http.get("/gz", headers={"accept-encoding": "gzip"})
        assert raw.headers["content-encoding"] == "gzip"
        assert raw.text == "compressed page"  # httpx decodes what the relay passed through

        moved = await http.get("/moved")
        assert moved.status_code == 302 and moved.headers["location"] == "/elsewhere"


async def test_nothing_listening_is_a_502_naming_the_port(
    relay: aiohttp.ClientSession,
) -> None:
    session = relay
    port = _free_port()
    async with _client(session, port) as http:
        answer = await http.get("/")
    assert answer.status_code == 502
    assert f"Nothing answers on port {port}" in answer.text
