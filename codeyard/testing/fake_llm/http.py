"""HTTP plumbing the dialect modules share: recording a request, SSE framing, delays."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from codeyard.testing.fake_llm.core import FakeState, RecordedRequest
from codeyard.testing.fake_llm.script import Reply

__all__ = ["error_response", "record", "sse", "sse_response"]


async def record(state: FakeState, request: Request, api: str) -> RecordedRequest:
    """Read the body (JSON when it parses) and log the request before anything is answered."""
    raw = await request.body()
    body: Any = None
    if raw:
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw.decode(errors="replace")
    entry = RecordedRequest(
        api=api,
        method=request.method,
        path=request.url.path,
        query=request.url.query,
        headers=dict(request.headers),
        body=body,
    )
    state.record(entry)
    return entry


def sse(data: Any, event: str | None = None) -> str:
    """One server-sent-event frame (``event:`` line only when the dialect uses them)."""
    head = f"event: {event}\n" if event else ""
    payload = data if isinstance(data, str) else json.dumps(data)
    return f"{head}data: {payload}\n\n"


def sse_response(frames: Iterable[str], delay: float) -> StreamingResponse:
    """Stream ``frames`` after ``delay`` seconds; a client that hangs up cancels the wait."""

    async def body() -> AsyncIterator[str]:
        if delay:
            await asyncio.sleep(delay)
        for frame in frames:
            yield frame

    headers = {"cache-control": "no-cache", "x-fake-llm": "1"}
    return StreamingResponse(body(), media_type="text/event-stream", headers=headers)


async def error_response(reply: Reply, default_body: Any) -> Response:
    """The scripted HTTP error, after the reply's delay."""
    assert reply.http_error is not None
    if reply.delay:
        await asyncio.sleep(reply.delay)
    body = reply.http_error.body if reply.http_error.body is not None else default_body
    return JSONResponse(body, status_code=reply.http_error.status, headers=reply.http_error.headers)
