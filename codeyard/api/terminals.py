"""Terminals: open, list, drive (text, keys, resize, screen) and attach over a WebSocket.

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
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, ConfigDict, Field

from codeyard.api.auth import Caller, authenticate, require_scope
from codeyard.api.deps import Svc
from codeyard.domain.errors import CodeyardError, Conflict, Forbidden, NotFound
from codeyard.services import shares as share_service
from codeyard.services import terminals as service
from codeyard.services.context import Services
from codeyard.terminals import keys
from codeyard.terminals.manager import TerminalManager
from codeyard.terminals.session import Terminal, Viewer

router = APIRouter(tags=["terminals"])
ws_router = APIRouter()

Cols = Annotated[int, Field(ge=2, le=1000)]
Rows = Annotated[int, Field(ge=1, le=500)]


def manager(request: Request | WebSocket) -> TerminalManager:
    found: TerminalManager = request.app.state.terminals
    return found


class TerminalCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    run_id: str | None = Field(default=None, description="Open in this run's worktree.")
    cwd: str | None = Field(default=None, description="Admins only: an ephemeral shell here.")
    cols: Cols = 80
    rows: Rows = 24
    command: str | list[str] | None = Field(
        default=None, description="Program to run (default: the user's shell)."
    )


class TerminalOut(BaseModel):
    id: str
    run_id: str | None
    created_by: str | None
    cwd: str
    command: list[str]
    cols: int
    rows: int
    status: str = Field(description="live, exited, closed or lost (the server restarted).")
    exit_code: int | None = None
    close_reason: str | None = None
    created_at: str
    closed_at: str | None = None
    start_offset: int | None = Field(default=None, description="Oldest output offset held.")
    end_offset: int
    modes: list[int] = Field(default_factory=list)
    viewers: int = 0


class TerminalList(BaseModel):
    data: list[TerminalOut]


class TextIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(max_length=65536)
    paste: bool = Field(default=False, description="As a bracketed paste (never runs it).")


class KeysIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    keys: list[str] = Field(min_length=1, max_length=100, examples=[["ctrl+c"], ["enter"]])


class ResizeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cols: Cols
    rows: Rows


class ScreenOut(BaseModel):
    id: str
    status: str
    cols: int
    rows: int
    lines: list[str]
    cursor: list[int] = Field(description="[x, y] of the cursor.")
    end_offset: int


def _out(term: Terminal) -> TerminalOut:
    return TerminalOut.model_validate(term.snapshot())


@router.post(
    "/terminals",
    status_code=201,
    response_model=TerminalOut,
    dependencies=[require_scope("runs:control")],
)
async def create_terminal(
    body: TerminalCreate, svc: Svc, caller: Caller, request: Request
) -> TerminalOut:
    """A terminal in a run's worktree (run owner or admin), or anywhere (admin only)."""
    term = await service.open_terminal(
        svc,
        manager(request),
        caller,
        run_ref=body.run_id,
        cwd=body.cwd,
        cols=body.cols,
        rows=body.rows,
        command=body.command,
    )
    return _out(term)


@router.get("/terminals", response_model=TerminalList, dependencies=[require_scope("runs:read")])
async def list_terminals(
    caller: Caller, request: Request, svc: Svc, run_id: str | None = None
) -> TerminalList:
    """Terminals, newest first: an admin sees all, others the ones they opened."""
    if run_id is not None:
        run = await service.runs_get(svc, run_id)
        run_id = run["id"]
    rows = await manager(request).listing(
        run_id=run_id, created_by=caller.user_id, only_mine=not caller.is_admin
    )
    return TerminalList(data=[TerminalOut.model_validate(r) for r in rows])


@router.get(
    "/runs/{run_ref}/terminals",
    response_model=TerminalList,
    dependencies=[require_scope("runs:read")],
)
async def run_terminals(run_ref: str, caller: Caller, request: Request, svc: Svc) -> TerminalList:
    """The run's terminals (live and closed), newest first."""
    run = await service.runs_get(svc, run_ref)
    if not caller.is_admin and not caller.owns(run["created_by"]):
        return TerminalList(data=[])
    rows = await manager(request).listing(run_id=run["id"])
    return TerminalList(data=[TerminalOut.model_validate(r) for r in rows])


@router.get(
    "/terminals/{terminal_id}",
    response_model=TerminalOut,
    dependencies=[require_scope("runs:read")],
)
async def get_terminal(terminal_id: str, caller: Caller, request: Request, svc: Svc) -> TerminalOut:
    return _out(await service.owned(svc, manager(request), caller, terminal_id))


@router.delete(
    "/terminals/{terminal_id}",
    response_model=TerminalOut,
    dependencies=[require_scope("runs:control")],
)
async def close_terminal(
    terminal_id: str, caller: Caller, request: Request, svc: Svc
) -> TerminalOut:
    """Stop the program (its process tree); the scrollback stays readable."""
    await service.owned(svc, manager(request), caller, terminal_id)
    return _out(await manager(request).close(terminal_id, "closed by the user"))


async def _live(svc: Services, request: Request, caller: Any, terminal_id: str) -> Terminal:
    term = await service.owned(svc, manager(request), caller, terminal_id)
    if not term.live:
        raise Conflict(
            f"Terminal {terminal_id} is {term.info.status}: "
            f"{term.info.close_reason or 'no program'}. Open a new terminal.",
            current_status=term.info.status,
        )
    return term


@router.post(
    "/terminals/{terminal_id}/text",
    response_model=TerminalOut,
    dependencies=[require_scope("runs:control")],
)
async def send_text(
    terminal_id: str, body: TextIn, caller: Caller, request: Request, svc: Svc
) -> TerminalOut:
    """Type text (no Enter is added: send the ``enter`` key for that)."""
    term = await _live(svc, request, caller, terminal_id)
    term.write(term.paste(body.text) if body.paste else body.text.encode())
    return _out(term)


@router.post(
    "/terminals/{terminal_id}/keys",
    response_model=TerminalOut,
    dependencies=[require_scope("runs:control")],
)
async def send_keys(
    terminal_id: str, body: KeysIn, caller: Caller, request: Request, svc: Svc
) -> TerminalOut:
    """Press named keys in order: ``ctrl+c``, ``enter``, ``up``, ``tab``, ``alt+b``…"""
    encoded = b"".join(keys.encode(k) for k in body.keys)  # all valid, or nothing is sent
    term = await _live(svc, request, caller, terminal_id)
    term.write(encoded)
    return _out(term)


@router.post(
    "/terminals/{terminal_id}/resize",
    response_model=TerminalOut,
    dependencies=[require_scope("runs:control")],
)
async def resize(
    terminal_id: str, body: ResizeIn, caller: Caller, request: Request, svc: Svc
) -> TerminalOut:
    term = await _live(svc, request, caller, terminal_id)
    term.resize(body.cols, body.rows)
    return _out(term)


@router.get(
    "/terminals/{terminal_id}/output",
    response_model=ScreenOut,
    dependencies=[require_scope("runs:read")],
)
async def screen(terminal_id: str, caller: Caller, request: Request, svc: Svc) -> ScreenOut:
    """The current screen as text lines (a server-side terminal emulator keeps it)."""
    term = await service.owned(svc, manager(request), caller, terminal_id)
    lines = await asyncio.to_thread(term.screen.text, term.log)
    x, y = term.screen.cursor()
    return ScreenOut(
        id=term.info.id,
        status=term.info.status,
        cols=term.info.cols,
        rows=term.info.rows,
        lines=lines,
        cursor=[x, y],
        end_offset=term.log.end,
    )


# --- WebSocket ------------------------------------------------------------------------------


def _close_code(exc: Exception) -> int:
    """WebSocket close codes mirroring HTTP: 4404 unknown, 4403 not yours, 4401 credentials."""
    if isinstance(exc, NotFound):
        return 4404
    if isinstance(exc, Forbidden):
        return 4403
    return 4401


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
            raise PermissionError
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
            raise PermissionError
        found = await manager(ws).listing(run_id=(await service.runs_get(svc, run_id))["id"])
        live = [t for t in found if t["status"] == "live"]
        if live:
            term = await service.owned(svc, manager(ws), caller, live[0]["id"])
        else:
            term = await service.open_terminal(
                svc, manager(ws), caller, run_ref=run_id, cwd=None, cols=80, rows=24, command=None
            )
    except (CodeyardError, PermissionError) as exc:
        await _refuse(ws, 4403, str(exc) or "not allowed")
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
                **_out(term).model_dump(),
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


# --- share links: read-only viewers ---------------------------------------------------------

shared = APIRouter(prefix="/share", tags=["share links"])


@shared.get("/{token}/terminals", response_model=TerminalList)
async def shared_terminals(token: str, request: Request, svc: Svc) -> TerminalList:
    """Public by design (the link is the credential): the shared run's terminals."""
    run = await share_service.shared_run(svc, request.app.state.auth, token)
    rows = await manager(request).listing(run_id=run["id"])
    return TerminalList(data=[TerminalOut.model_validate(r) for r in rows])


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
