"""Forwarding HTTP and WebSocket traffic to a run's dev server on a loopback port.

Pure ASGI on both sides, so bodies stream in both directions (no buffering of a large upload or
an event stream). The upstream HTTP client is aiohttp: its C parser and socket-level read-ahead
(it keeps reading while a chunk waits for the browser) cost a third of httpx's CPU per byte,
which is what a relay spends all its time on (bench/RESULTS.md, issue 18).
Hop-by-hop headers are dropped; Codeyard's own credentials (bearer token,
session and preview cookies) never reach the previewed program, which is code an agent wrote.
WebSockets keep their path, query and subprotocols (Vite HMR uses ``vite-hmr``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass

import aiohttp
from starlette.types import Message, Receive, Scope, Send
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.typing import Subprotocol

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "authorization",
        "x-csrf-token",
    }
)
#: Cookies that belong to Codeyard, not to the previewed app.
OWN_COOKIES = ("codeyard_",)
_OWN_COOKIE_BYTES = tuple(c.encode() for c in OWN_COOKIES)
FRAME_HEADERS = frozenset({"x-frame-options", "content-security-policy"})
#: Path mode serves the preview on Codeyard's own origin: its documents get an opaque origin
#: (CSP sandbox without ``allow-same-origin``), so its scripts cannot use the user's session.
PATH_MODE_CSP = b"sandbox allow-scripts allow-forms allow-popups allow-modals allow-downloads"


@dataclass(frozen=True, slots=True)
class Target:
    port: int
    path: str
    query: str
    #: Host header the app sees (host mode keeps the browser's, so absolute URLs work).
    host: str
    #: Host mode: the preview has its own origin, so framing headers are dropped.
    own_origin: bool


def _strip_cookies(value: str) -> str:
    kept = [
        part.strip()
        for part in value.split(";")
        if part.strip() and not part.strip().startswith(OWN_COOKIES)
    ]
    return "; ".join(kept)


def request_headers(scope: Scope, target: Target) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for raw_name, raw_value in scope["headers"]:
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        if name in HOP_BY_HOP or name.startswith("sec-websocket-"):
            continue
        if name == "cookie":
            value = _strip_cookies(value)
            if not value:
                continue
        out.append((name, value))
    out.append(("host", target.host))
    client = scope.get("client")
    if client:
        out.append(("x-forwarded-for", str(client[0])))
    out.append(("x-forwarded-proto", scope.get("scheme", "http").replace("ws", "http")))
    return out


def response_headers(
    headers: Iterable[tuple[bytes, bytes]], target: Target
) -> list[tuple[bytes, bytes]]:
    """The upstream's raw headers as the browser may see them."""
    out = []
    for raw_name, value in headers:
        lower = raw_name.decode("latin-1").lower()
        if lower in HOP_BY_HOP:
            continue
        if lower in FRAME_HEADERS and target.own_origin:
            continue
        if lower == "set-cookie" and value.lstrip().startswith(_OWN_COOKIE_BYTES):
            continue  # the app may not set (or clear) Codeyard's cookies
        out.append((lower.encode("latin-1"), value))
    if not target.own_origin:
        out = [(n, v) for n, v in out if n != b"content-security-policy"]
        out.append((b"content-security-policy", PATH_MODE_CSP))
    return out


def _url(target: Target, scheme: str) -> str:
    path = target.path if target.path.startswith("/") else "/" + target.path
    return f"{scheme}://127.0.0.1:{target.port}{path}" + (
        f"?{target.query}" if target.query else ""
    )


async def _body(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


async def _error(send: Send, status: int, text: str) -> None:
    body = text.encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


#: Headers aiohttp would add on its own; the previewed app sees only what the browser sent.
_NO_AUTO_HEADERS = frozenset({"User-Agent", "Accept", "Accept-Encoding"})


def upstream_session() -> aiohttp.ClientSession:
    """One pooled client for every preview (keep-alive to each dev server).

    No redirects followed, no environment proxies, bodies passed through still encoded, and no
    cookie jar: cookies belong to the browser, never shared between the users of a preview.
    Reads up to 256 KiB at a time, so a large download moves in few, large chunks.
    """
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=200, limit_per_host=50, keepalive_timeout=30),
        timeout=aiohttp.ClientTimeout(total=None, connect=30.0, sock_read=None),
        auto_decompress=False,
        trust_env=False,
        cookie_jar=aiohttp.DummyCookieJar(),
        skip_auto_headers=_NO_AUTO_HEADERS,
        read_bufsize=256 * 1024,
    )


async def forward_http(
    client: aiohttp.ClientSession, scope: Scope, receive: Receive, send: Send, target: Target
) -> None:
    has_body = scope["method"] not in ("GET", "HEAD", "OPTIONS") or any(
        n in (b"content-length", b"transfer-encoding") for n, _ in scope["headers"]
    )
    try:
        response = await client.request(
            scope["method"],
            _url(target, "http"),
            headers=request_headers(scope, target),
            data=_body(receive) if has_body else None,
            allow_redirects=False,
        )
    except aiohttp.ClientConnectorError:
        await _error(
            send, 502, f"Nothing answers on port {target.port} yet: start the dev server on it."
        )
        return
    except TimeoutError:
        await _error(send, 504, f"The program on port {target.port} did not answer in time.")
        return
    except aiohttp.ClientError as exc:
        await _error(send, 502, f"The program on port {target.port} broke the request: {exc}.")
        return
    try:
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": response_headers(response.raw_headers, target),
            }
        )
        # aiohttp keeps reading the socket while a chunk waits for the browser (bounded by
        # ``read_bufsize``), so upstream and downstream stay busy at once.
        async for chunk in response.content.iter_any():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    finally:
        response.release()


async def forward_websocket(scope: Scope, receive: Receive, send: Send, target: Target) -> None:
    """Connect upstream first (with the client's subprotocols), then accept and relay."""
    first = await receive()
    if first["type"] != "websocket.connect":
        return
    protocols = [
        p.strip()
        for n, v in scope["headers"]
        if n == b"sec-websocket-protocol"
        for p in v.decode("latin-1").split(",")
        if p.strip()
    ]
    headers = [(n, v) for n, v in request_headers(scope, target) if n not in ("host",)]
    try:
        upstream = await ws_connect(
            _url(target, "ws"),
            subprotocols=[Subprotocol(p) for p in protocols] or None,
            additional_headers=headers,
            max_size=None,
            open_timeout=10,
            proxy=None,
        )
    except (OSError, InvalidHandshake, InvalidStatus, TimeoutError):
        await send({"type": "websocket.close", "code": 1011, "reason": "preview unreachable"})
        return
    await send({"type": "websocket.accept", "subprotocol": upstream.subprotocol})

    async def client_to_upstream() -> None:
        while True:
            message: Message = await receive()
            if message["type"] == "websocket.disconnect":
                await upstream.close()
                return
            if message.get("bytes") is not None:
                await upstream.send(message["bytes"])
            elif message.get("text") is not None:
                await upstream.send(message["text"])

    async def upstream_to_client() -> None:
        try:
            async for data in upstream:
                if isinstance(data, bytes):
                    await send({"type": "websocket.send", "bytes": data})
                else:
                    await send({"type": "websocket.send", "text": data})
        except ConnectionClosed:
            pass
        code = upstream.close_code or 1000
        with contextlib.suppress(Exception):
            await send({"type": "websocket.close", "code": code if code != 1006 else 1011})

    tasks = [asyncio.create_task(client_to_upstream()), asyncio.create_task(upstream_to_client())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await upstream.close()
