"""Live streams: SSE per run and global, and a WebSocket carrying the same events."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Annotated

from fastapi import APIRouter, Header, Query, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sse_starlette import EventSourceResponse
from starlette.background import BackgroundTask
from starlette.types import Message, Send

from codeyard.api.auth import Caller, authenticate, require_scope
from codeyard.api.deps import Svc
from codeyard.domain.caps import caller_key
from codeyard.domain.errors import CodeyardError, TooManyRequests
from codeyard.events.hub import EventFilter
from codeyard.events.stream import follow
from codeyard.services.context import Services
from codeyard.store import runs

router = APIRouter(tags=["streams"])
ws_router = APIRouter()

PING_SECONDS = 15


def _types(types: str | None) -> frozenset[str] | None:
    return frozenset(t for t in types.split(",") if t) if types else None


def _after(last_event_id: str | None, after: int | None) -> int:
    for value in (last_event_id, after):
        text = str(value).strip() if value is not None else ""
        if text.isascii() and text.isdigit() and len(text) <= 18:  # fits a BIGINT
            return int(text)
    return 0


#: What the per-user cap on open streams (``max_streams_per_user``) counts, SSE and WebSocket.
STREAM = "event stream"


def stream_slot(svc: Services, key: str) -> Callable[[], None]:
    """One of ``key``'s open-stream slots (429 beyond ``max_streams_per_user``); ``key``: the
    caller (``caller_key``), or ``share:<run>`` for the anonymous viewers of a share link."""
    return svc.caps.acquire(
        STREAM,
        key,
        svc.settings.max_streams_per_user,
        "Close other tabs or streams (CODEYARD_MAX_STREAMS_PER_USER).",
    )


def released(release: Callable[[], None]) -> BackgroundTask:
    """A stream response's background task giving its slot back, on the event loop: Starlette
    runs a plain function's task in its thread pool (a trip to a worker thread per stream, and
    the slot count changed from that thread)."""

    async def give_back() -> None:
        release()

    return BackgroundTask(give_back)


#: Events per write to a client. A client that fell behind gets everything pending at once
#: (up to the hub's 10,000): joined whole, that was megabytes per client, and ten slow clients
#: of a busy run grew the server by ~30 MB (bench/stream_memory.py). Each write waits for the
#: socket, so a client holds at most this many events' frames.
WRITE_EVENTS = 256


async def _frames(
    svc: Services, flt: EventFilter, after: int, until_idle: bool, release: Callable[[], None]
) -> AsyncIterator[bytes]:
    try:
        async for batch in follow(svc.engine, svc.hub, flt, after, until_idle=until_idle):
            # Frames are encoded once per event and shared by every client of a fan-out.
            if len(batch) == 1:
                yield batch[0].sse_bytes
                continue
            for start in range(0, len(batch), WRITE_EVENTS):
                yield b"".join(e.sse_bytes for e in batch[start : start + WRITE_EVENTS])
    finally:
        release()


class _EventStream(EventSourceResponse):
    """``EventSourceResponse`` without a cancel scope around each send when no send timeout
    is set (the default): entering and leaving that scope was ~8% of the server's CPU per
    delivered event when fanning out to 100 clients."""

    async def _send_with_timeout(self, send: Send, message: Message) -> None:
        if self.send_timeout is None:
            await send(message)
        else:
            await super()._send_with_timeout(send, message)


def _sse(
    svc: Services,
    flt: EventFilter,
    after: int,
    until_idle: bool,
    cap_key: str,
) -> EventSourceResponse:
    """The stream, holding one of ``cap_key``'s stream slots until it ends."""
    release = stream_slot(svc, cap_key)
    return _EventStream(
        _frames(svc, flt, after, until_idle, release),
        ping=PING_SECONDS,
        headers={"X-Accel-Buffering": "no"},
        background=released(release),  # also when the body never started
    )


def event_stream(
    svc: Services, run_id: str, last_event_id: str | None, after: int | None
) -> EventSourceResponse:
    """SSE of one run's events for a share link's viewers (replay after ``Last-Event-ID`` or
    ``after``, then live); all of one run's share-link streams share one cap."""
    flt = EventFilter(run_id=run_id)
    return _sse(svc, flt, _after(last_event_id, after), False, f"share:{run_id}")


@router.get(
    "/runs/{run_ref}/events/stream",
    dependencies=[require_scope("runs:read")],
    response_class=EventSourceResponse,
)
async def run_stream(
    run_ref: str,
    svc: Svc,
    principal: Caller,
    last_event_id: Annotated[str | None, Header()] = None,
    after: Annotated[int | None, Query(ge=0, le=2**63 - 1)] = None,
    types: str | None = None,
    until_idle: bool = False,
) -> EventSourceResponse:
    """SSE: replay after ``Last-Event-ID`` (or ``?after=``), then live. At most
    ``max_streams_per_user`` open streams per user (429)."""
    run = await runs.get(svc.engine, run_ref)
    flt = EventFilter(run_id=run["id"], types=_types(types))
    key = caller_key(principal.user_id, principal.name)
    return _sse(svc, flt, _after(last_event_id, after), until_idle, key)


@router.get(
    "/events/stream", dependencies=[require_scope("runs:read")], response_class=EventSourceResponse
)
async def global_stream(
    svc: Svc,
    principal: Caller,
    last_event_id: Annotated[str | None, Header()] = None,
    after: Annotated[int | None, Query(ge=0, le=2**63 - 1)] = None,
    run_id: str | None = None,
    project_id: str | None = None,
    types: str | None = None,
) -> EventSourceResponse:
    """SSE over every run (filter by ``run_id``, ``project_id``, ``types``)."""
    flt = EventFilter(run_id=run_id, project_id=project_id, types=_types(types))
    key = caller_key(principal.user_id, principal.name)
    return _sse(svc, flt, _after(last_event_id, after), False, key)


class Subscription(BaseModel):
    """What a WebSocket client follows: the same filter and replay point as the SSE routes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    run_id: str | None = None
    project_id: str | None = None
    types: list[str] | None = None
    after: int = Field(default=0, ge=0, le=2**63 - 1)


class SubscribeMessage(BaseModel):
    """The one message a client sends: ``{"subscribe": {...}}`` (each one replaces the last)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    subscribe: Subscription


#: Close code for a message that is not a valid subscription (4000-4999: the application's).
BAD_MESSAGE = 4400
#: Close code when the caller already holds ``max_streams_per_user`` open streams.
TOO_MANY_STREAMS = 4429


def _why(exc: ValidationError) -> str:
    """The first problem, short enough for a close frame's reason (123 bytes)."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "message"
    text = (
        f'{where}: {first["msg"]}; send {{"subscribe": {{run_id?, project_id?, types?, after?}}}}'
    )
    return text.encode()[:123].decode(errors="ignore")


@ws_router.websocket("/ws")
async def websocket(ws: WebSocket) -> None:
    """Send ``{"subscribe": {run_id?, project_id?, types?, after?}}``; events arrive as JSON.

    Authenticates like HTTP routes (bearer token, ``?access_token=`` or the session cookie) and
    needs ``runs:read``; otherwise the socket is closed with code 4401. A message that is not a
    valid subscription closes it with code 4400 and a reason naming the first problem.
    """
    try:
        principal = await authenticate(ws)
    except CodeyardError:
        principal = None
    if principal is None or "runs:read" not in principal.scopes:
        await ws.accept()  # close codes need an open socket; before accept ASGI answers HTTP 403
        await ws.close(code=4401, reason="authentication required")
        return
    svc: Services = ws.app.state.services
    try:
        release = stream_slot(svc, caller_key(principal.user_id, principal.name))
    except TooManyRequests as exc:
        await ws.accept()
        await ws.close(
            code=TOO_MANY_STREAMS, reason=exc.detail.encode()[:123].decode("ascii", "ignore")
        )
        return
    await ws.accept()
    pump: asyncio.Task[None] | None = None
    try:
        while True:
            frame = await ws.receive()
            if frame["type"] == "websocket.disconnect":
                break
            try:
                spec = SubscribeMessage.model_validate_json(
                    frame.get("text") or frame.get("bytes") or b""
                ).subscribe
            except ValidationError as exc:
                await ws.close(code=BAD_MESSAGE, reason=_why(exc))
                break
            if pump is not None:
                pump.cancel()
            flt = EventFilter(
                run_id=spec.run_id,
                project_id=spec.project_id,
                types=frozenset(spec.types) if spec.types else None,
            )
            pump = asyncio.create_task(_pump(ws, svc, flt, spec.after))
    except WebSocketDisconnect:
        pass
    finally:
        release()
        if pump is not None:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pump


async def _pump(ws: WebSocket, svc: Services, flt: EventFilter, after: int) -> None:
    async for batch in follow(svc.engine, svc.hub, flt, after):
        for event in batch:
            await ws.send_text(event.json)
