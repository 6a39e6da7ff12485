"""Terminals: open, list and drive them (text, keys, resize, screen); read a share link's.

Attaching over a WebSocket (output and input as they happen) is ``terminal_ws``.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Request, WebSocket
from pydantic import BaseModel, ConfigDict, Field

from codeyard.api.auth import Caller, require_scope
from codeyard.api.deps import Svc
from codeyard.services import shares as share_service
from codeyard.services import terminals as service
from codeyard.terminals import keys
from codeyard.terminals.manager import TerminalManager
from codeyard.terminals.session import Terminal

router = APIRouter(tags=["terminals"])

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


def terminal_out(term: Terminal) -> TerminalOut:
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
    return terminal_out(term)


@router.get("/terminals", response_model=TerminalList, dependencies=[require_scope("runs:read")])
async def list_terminals(
    caller: Caller, request: Request, svc: Svc, run_id: str | None = None
) -> TerminalList:
    """Terminals, newest first: an admin sees all, others the ones they opened."""
    rows = await service.listing(svc, manager(request), caller, run_id)
    return TerminalList(data=[TerminalOut.model_validate(r) for r in rows])


@router.get(
    "/runs/{run_ref}/terminals",
    response_model=TerminalList,
    dependencies=[require_scope("runs:read")],
)
async def run_terminals(run_ref: str, caller: Caller, request: Request, svc: Svc) -> TerminalList:
    """The run's terminals (live and closed), newest first."""
    rows = await service.of_run(svc, manager(request), caller, run_ref)
    return TerminalList(data=[TerminalOut.model_validate(r) for r in rows])


@router.get(
    "/terminals/{terminal_id}",
    response_model=TerminalOut,
    dependencies=[require_scope("runs:read")],
)
async def get_terminal(terminal_id: str, caller: Caller, request: Request, svc: Svc) -> TerminalOut:
    return terminal_out(await service.owned(svc, manager(request), caller, terminal_id))


@router.delete(
    "/terminals/{terminal_id}",
    response_model=TerminalOut,
    dependencies=[require_scope("runs:control")],
)
async def close_terminal(
    terminal_id: str, caller: Caller, request: Request, svc: Svc
) -> TerminalOut:
    """Stop the program (its process tree); the scrollback stays readable."""
    return terminal_out(await service.close(svc, manager(request), caller, terminal_id))


@router.post(
    "/terminals/{terminal_id}/text",
    response_model=TerminalOut,
    dependencies=[require_scope("runs:control")],
)
async def send_text(
    terminal_id: str, body: TextIn, caller: Caller, request: Request, svc: Svc
) -> TerminalOut:
    """Type text (no Enter is added: send the ``enter`` key for that)."""
    term = await service.live(svc, manager(request), caller, terminal_id)
    term.write(term.paste(body.text) if body.paste else body.text.encode())
    return terminal_out(term)


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
    term = await service.live(svc, manager(request), caller, terminal_id)
    term.write(encoded)
    return terminal_out(term)


@router.post(
    "/terminals/{terminal_id}/resize",
    response_model=TerminalOut,
    dependencies=[require_scope("runs:control")],
)
async def resize(
    terminal_id: str, body: ResizeIn, caller: Caller, request: Request, svc: Svc
) -> TerminalOut:
    term = await service.live(svc, manager(request), caller, terminal_id)
    term.resize(body.cols, body.rows)
    return terminal_out(term)


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


# --- share links: read-only viewers ---------------------------------------------------------

shared = APIRouter(prefix="/share", tags=["share links"])


@shared.get("/{token}/terminals", response_model=TerminalList)
async def shared_terminals(token: str, request: Request, svc: Svc) -> TerminalList:
    """Public by design (the link is the credential): the shared run's terminals."""
    run = await share_service.shared_run(svc, request.app.state.auth, token)
    rows = await manager(request).listing(run_id=run["id"])
    return TerminalList(data=[TerminalOut.model_validate(r) for r in rows])
