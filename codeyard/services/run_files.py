"""A run's changed files (each with its diff) and its shell commands in full, with short-lived
download links for their output.

The download link is for what cannot send a bearer header (a browser's download, ``curl`` in a
script, a phone's share sheet): the URL carries a token sealed with the data dir's key (AES-GCM)
that names the run, the command, the stream and the expiry, so it cannot be altered or reused
for anything else, and it stops working after ``LINK_SECONDS``.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

from codeyard.crypto import SecretsUnavailable, secret_box
from codeyard.domain.errors import Forbidden, NotFound
from codeyard.services import review as review_service
from codeyard.services.context import Services
from codeyard.store import events, runs

LINK_SECONDS = 300
_AAD = "codeyard-command-output"
_URL_SAFE = str.maketrans("+/", "-_")
_FROM_URL = str.maketrans("-_", "+/")
STREAMS = ("output", "error")


async def files(svc: Services, run_ref: str) -> dict[str, Any]:
    """Changed files against the run's base (no hunks: ask for one file for its diff)."""
    async with svc.engine.connect() as conn:
        run = await runs.get(conn, run_ref)
    listed = await review_service.diff(svc, run["id"], "json", None, None)
    assert isinstance(listed, list)
    data = [{k: v for k, v in f.items() if k != "hunks"} for f in listed]
    return {"run_id": run["id"], "data": data}


async def file(svc: Services, run_ref: str, path: str, repo_id: str | None) -> dict[str, Any]:
    """One changed file with its hunks and its unified diff; 404 when it did not change."""
    async with svc.engine.connect() as conn:
        run = await runs.get(conn, run_ref)
    found = await review_service.diff(svc, run["id"], "json", [path], repo_id)
    assert isinstance(found, list)
    match = [f for f in found if f["path"] == path or f.get("old_path") == path]
    if not match:
        raise NotFound(
            f"'{path}' did not change in run {run['number']}; GET /api/runs/{run['id']}/files "
            "lists the files that did."
        )
    patch = await review_service.diff(svc, run["id"], "text", [path], repo_id)
    return {"run_id": run["id"], **match[0], "patch": patch}


async def _command_events(svc: Services, run_ref: str, call_id: str) -> tuple[Any, Any, Any]:
    async with svc.engine.connect() as conn:
        run = await runs.get(conn, run_ref)
        rows = await events.read_all(conn, run["id"], frozenset({"tool.call", "tool.result"}))
    call = next(
        (
            e
            for e in rows
            if e.type == "tool.call"
            and e.data.get("call_id") == call_id
            and e.data.get("kind") == "bash"
        ),
        None,
    )
    if call is None:
        raise NotFound(
            f"Run {run['number']} has no shell command '{call_id}'; GET "
            f"/api/runs/{run['id']}/commands lists them."
        )
    result = next(
        (e for e in rows if e.type == "tool.result" and e.data.get("call_id") == call_id), None
    )
    return run, call, result


def _sign(svc: Services, run_id: str, call_id: str, stream: str, expires: int) -> str:
    box = secret_box(svc.settings.secret_key_path)
    sealed = box.encrypt(f"{run_id}\n{call_id}\n{stream}\n{expires}".encode(), _AAD)
    return sealed.translate(_URL_SAFE)  # one path segment: no '/' (nor '+')


def download_path(svc: Services, run_id: str, call_id: str, stream: str, now: float) -> str:
    expires = int(now) + LINK_SECONDS
    token = quote(_sign(svc, run_id, call_id, stream, expires), safe="=")
    return f"/api/command-output/{token}"


async def command(svc: Services, run_ref: str, call_id: str) -> dict[str, Any]:
    """The command, its whole output and error text, exit code, duration and download links."""
    run, call, result = await _command_events(svc, run_ref, call_id)
    data = result.data if result is not None else {}
    now = time.time()
    tool_input = call.data.get("input") or {}
    return {
        "run_id": run["id"],
        "call_id": call_id,
        "command": tool_input.get("command") if isinstance(tool_input, dict) else None,
        "title": call.data.get("title"),
        "started_at": call.ts,
        "finished_at": result.ts if result is not None else None,
        "exit_code": data.get("exit_code"),
        "duration_ms": data.get("duration_ms"),
        "ok": data.get("ok"),
        "output": data.get("output"),
        "error": data.get("error"),
        # The event log keeps each stream's last OUTPUT_LIMIT characters (an ellipsis marks the
        # cut); the whole output is in the run's raw log (GET /api/runs/{id}/logs).
        "output_truncated": str(data.get("output") or "").startswith("…"),
        "downloads": {
            stream: download_path(svc, run["id"], call_id, stream, now) for stream in STREAMS
        },
        "downloads_expire_in": LINK_SECONDS,
    }


async def download(svc: Services, token: str) -> tuple[str, str]:
    """(file name, text) for a download token; 403 when forged, altered or expired."""
    box = secret_box(svc.settings.secret_key_path)
    try:
        sealed = token.translate(_FROM_URL)
        run_id, call_id, stream, expires = box.decrypt(sealed, _AAD).decode().split("\n")
    except (SecretsUnavailable, UnicodeDecodeError, ValueError):
        raise Forbidden(
            "This download link is not valid; get a new one from the command."
        ) from None
    if int(expires) < time.time():
        raise Forbidden(
            "This download link expired; open the command again "
            "(GET /api/runs/{run}/commands/{call_id}) for a fresh one."
        )
    _, _, result = await _command_events(svc, run_id, call_id)
    text = (result.data.get(stream) if result is not None else None) or ""
    return f"{call_id}-{stream}.txt", str(text)
