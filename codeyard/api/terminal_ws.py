"""Terminals over a WebSocket: attach as a viewer, by terminal, by run, or through a share link.

WebSocket ``/api/terminals/{id}/ws?since=<offset>``: binary frames carry output (server →
client) and input (client → server); text frames carry JSON control messages. The server
first sends ``{"type": "hello", "start": …, "end": …, "status": …}`` where ``start`` is the
offset of the first byte that follows, so a client counting bytes always knows what to send as
``since`` when it reconnects. Clients send ``{"type": "resize", "cols": …, "rows": …}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

from fastapi import APIRouter, Query, WebSocket, WebSocketDisconnect

from codeyard.api.auth import authenticate
from codeyard.api.problems import status_for
from codeyard.api.terminals import manager, terminal_out
from codeyard.domain.errors import CodeyardError
from codeyard.services import shares as share_service
from codeyard.services import terminals as service
from codeyard.services.context import Services
from codeyard.terminals.session import Terminal, Viewer

ws_router = APIRouter()


def _close_code(exc: Exception) -> int:
    """WebSocket close codes mirroring HTTP (4000 + the status a route would answer): 4401 no
    or bad credentials, 4403 a missing scope or another user's run or terminal, 4404 an unknown
    terminal or run, 4409 a run without a worktree to open a shell in."""
    if isinstance(exc, CodeyardError):
        return 4000 + status_for(exc)
    return 4403  # PermissionError: the token lacks the route's scope


async def _refuse(ws: WebSocket, code: int, reason: str) -> None:
    await ws.accept()  # a close code needs an open socket
    await ws.close(code=code, reason=reason[:120])


@ws_router.websocket("/terminals/{terminal_id}/ws")
async def attach(
    ws: WebSocket, terminal_id: str, since: int | None = Query(default=None, ge=0)
) -> None:
    """Attach as a viewer (read-only without ``runs:control``); see the module docstring."""
    svc: Services = ws.app.state.services
    try:
        caller = await authenticate(ws)
        if "runs:read" not in caller.scopes:
            raise PermissionError("this token lacks the runs:read scope")
        term = await service.owned(svc, manager(ws), caller, terminal_id)
    except (CodeyardError, PermissionError) as exc:
        await _refuse(ws, _close_code(exc), str(exc) or "not allowed")
        return
    await ws.accept()
    read_only = "runs:control" not in caller.scopes
    owner = caller.is_admin or caller.owns(term.info.created_by)
    await _serve(ws, term, since, owner=owner, read_only=read_only)


@ws_router.websocket("/terminal")
async def attach_run(
    ws: WebSocket, run_id: str, since: int | None = Query(default=None, ge=0)
) -> None:
    """Abbado's shape: the run's newest live terminal, opened on first use."""
    svc: Services = ws.app.state.services
    try:
        caller = await authenticate(ws)
        if "runs:control" not in caller.scopes:
            raise PermissionError("this token lacks the runs:control scope")
        term = await service.run_shell(svc, manager(ws), caller, run_id)
    except (CodeyardError, PermissionError) as exc:
        await _refuse(ws, _close_code(exc), str(exc) or "not allowed")
        return
    await ws.accept()
    await _serve(ws, term, since, owner=True, read_only=False)


async def _serve(
    ws: WebSocket, term: Terminal, since: int | None, *, owner: bool, read_only: bool
) -> None:
    viewer = term.attach(owner=owner, read_only=read_only)
    replay, prefix = term.replay(since)
    pump: asyncio.Task[None] | None = None
    try:
        await ws.send_json(
            {
                "type": "hello",
                **terminal_out(term).model_dump(),
                "start": replay.start,
                "gap": replay.gap,
                "read_only": read_only,
            }
        )
        if prefix or replay.data:
            await ws.send_bytes(prefix + replay.data)
        pump = asyncio.create_task(_pump(ws, term, viewer))
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                break
            if read_only:
                continue
            if message.get("bytes"):
                with contextlib.suppress(ProcessLookupError):
                    term.write(message["bytes"])
            elif message.get("text"):
                _control(term, viewer, message["text"])
    except WebSocketDisconnect:
        pass
    finally:
        term.detach(viewer)
        if pump is not None:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pump


def _control(term: Terminal, viewer: Viewer, text: str) -> None:
    try:
        msg = json.loads(text)
    except ValueError:
        return
    if isinstance(msg, dict) and msg.get("type") == "resize":
        cols, rows = msg.get("cols"), msg.get("rows")
        if (
            isinstance(cols, int)
            and isinstance(rows, int)
            and 2 <= cols <= 1000
            and 1 <= rows <= 500
        ):
            term.viewer_size(viewer, cols, rows)
    elif isinstance(msg, dict) and msg.get("type") == "input" and isinstance(msg.get("data"), str):
        with contextlib.suppress(ProcessLookupError):
            term.write(msg["data"].encode())


async def _pump(ws: WebSocket, term: Terminal, viewer: Viewer) -> None:
    """Live output to this viewer, coalescing what queued up into one frame."""
    while True:
        if not term.live and viewer.queue.empty():
            break
        chunk = await viewer.queue.get()
        if chunk is None:
            break
        parts = [chunk]
        while not viewer.queue.empty():
            nxt = viewer.queue.get_nowait()
            if nxt is None:
                viewer.queue.put_nowait(None)
                break
            parts.append(nxt)
        data = b"".join(parts)
        viewer.backlog -= len(data)
        await ws.send_bytes(data)
    if viewer.dropped:
        await ws.send_json({"type": "resync", "end": term.log.end})
        await ws.close(code=4000, reason="fell behind: reconnect with since=")
        return
    await term.exited.wait()
    await ws.send_json(
        {
            "type": "exit",
            "status": term.info.status,
            "exit_code": term.info.exit_code,
            "reason": term.info.close_reason,
            "end": term.log.end,
        }
    )


@ws_router.websocket("/share/{token}/terminals/{terminal_id}/ws")
async def shared_attach(
    ws: WebSocket, token: str, terminal_id: str, since: int | None = Query(default=None, ge=0)
) -> None:
    """A share link's read-only view of one of the run's terminals (input is ignored, and the
    viewer's size never resizes the terminal)."""
    svc: Services = ws.app.state.services
    try:
        run = await share_service.shared_run(svc, ws.app.state.auth, token)
        term = await manager(ws).get(terminal_id)
        if term.info.run_id != run["id"]:
            raise PermissionError
    except (CodeyardError, PermissionError):
        await _refuse(ws, 4404, "no such shared terminal")
        return
    await ws.accept()
    await _serve(ws, term, since, owner=False, read_only=True)
