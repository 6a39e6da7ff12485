"""BodyLimitMiddleware: what it counts, and the requests it leaves alone (issue 15).

A request without a body (HTTP/1.x: neither ``Content-Length`` nor ``Transfer-Encoding``) goes
to the app with the server's own ``receive`` and ``send``, so a streamed response (SSE) passes
its frames on without the layer in between; every request that may carry a body is counted.
"""

from __future__ import annotations

import pytest
from starlette.types import Message, Receive, Scope, Send

from codeyard.api.middleware import BodyLimitMiddleware

LIMIT = 10


def _scope(
    headers: list[tuple[bytes, bytes]], http_version: str = "1.1", method: str = "POST"
) -> Scope:
    return {
        "type": "http",
        "http_version": http_version,
        "method": method,
        "path": "/api/runs",
        "headers": headers,
    }


class Seen:
    def __init__(self) -> None:
        self.receive: Receive | None = None
        self.send: Send | None = None
        self.body = b""

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.receive, self.send = receive, send
        more = True
        while more:
            message = await receive()
            self.body += message.get("body", b"")
            more = message.get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


async def _call(scope: Scope, chunks: list[bytes]) -> tuple[Seen, list[Message], Receive, Send]:
    seen = Seen()
    sent: list[Message] = []
    pending = list(chunks)

    async def receive() -> Message:
        body = pending.pop(0) if pending else b""
        return {"type": "http.request", "body": body, "more_body": bool(pending)}

    async def send(message: Message) -> None:
        sent.append(message)

    await BodyLimitMiddleware(seen.app, LIMIT)(scope, receive, send)
    return seen, sent, receive, send


@pytest.mark.anyio
@pytest.mark.parametrize("headers", [[], [(b"content-length", b"0")]])
@pytest.mark.parametrize("http_version", ["1.0", "1.1"])
async def test_a_request_without_a_body_gets_the_servers_receive_and_send(
    headers: list[tuple[bytes, bytes]], http_version: str
) -> None:
    seen, sent, receive, send = await _call(_scope(headers, http_version, "GET"), [])
    assert seen.receive is receive and seen.send is send
    assert sent[0]["status"] == 200


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("headers", "http_version"),
    [
        ([(b"transfer-encoding", b"chunked")], "1.1"),  # counted while read
        ([], "2"),  # an HTTP/2 body needs no framing header
        ([(b"content-length", b"0"), (b"transfer-encoding", b"chunked")], "1.1"),
    ],
)
async def test_a_body_that_may_come_is_counted(
    headers: list[tuple[bytes, bytes]], http_version: str
) -> None:
    seen, sent, receive, _ = await _call(_scope(headers, http_version), [b"x" * 6, b"x" * 6])
    assert seen.receive is not receive
    assert sent[0]["status"] == 413
    assert sent[0]["headers"][0] == (b"content-type", b"application/problem+json")


@pytest.mark.anyio
async def test_a_body_within_the_limit_reaches_the_app() -> None:
    seen, sent, _, _ = await _call(_scope([(b"content-length", b"8")]), [b"x" * 8])
    assert seen.body == b"x" * 8 and sent[0]["status"] == 200


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("length", "status"), [(b"11", 413), (b"1x", 400), (b"-1", 400), (b"\xb2", 400)]
)
async def test_content_length_over_the_limit_or_invalid_is_refused_before_the_app(
    length: bytes, status: int
) -> None:
    seen, sent, _, _ = await _call(_scope([(b"content-length", length)]), [b"x"])
    assert seen.receive is None
    assert sent[0]["status"] == status
