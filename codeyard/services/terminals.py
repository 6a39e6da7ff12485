"""Terminals as a use case: who may open one where, with which environment, and cleanup.

A run's terminal starts in the run's worktree with the run's environment (its ``env`` option,
its env sets, its port lease); a terminal anywhere else is an admin's ephemeral shell. Every
terminal is owned: its creator, the run's creator or an admin may use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path
from typing import Any

from codeyard.auth.principal import Principal
from codeyard.crypto import secret_box
from codeyard.domain.errors import BadRequest, Conflict, Forbidden
from codeyard.events.stream import follow_types
from codeyard.preview import leases
from codeyard.sandbox import contain
from codeyard.services import sandbox as sandbox_service
from codeyard.services.context import Services
from codeyard.store import env_sets, runs
from codeyard.store.writer import Tx
from codeyard.terminals.manager import TerminalManager
from codeyard.terminals.pty_process import contained_shell
from codeyard.terminals.session import Terminal

log = logging.getLogger(__name__)

#: Variables that would point git at the server's repository instead of the worktree.
_DROPPED = frozenset(
    {"GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR", "GIT_OBJECT_DIRECTORY"}
)


def _argv(command: str | list[str] | None) -> list[str]:
    if command is None or command == "" or command == []:
        shell = os.environ.get("SHELL") or "/bin/bash"
        return [shell, "-i"] if Path(shell).name in ("bash", "zsh", "sh", "dash") else [shell]
    if isinstance(command, str):
        return ["/bin/sh", "-c", command]
    return [str(part) for part in command]


def _host_env() -> dict[str, str]:
    """An admin's ephemeral shell: the server's environment without its own secrets."""
    env = {k: v for k, v in os.environ.items() if k not in _DROPPED}
    env = {k: v for k, v in env.items() if not k.startswith("CODEYARD_")}
    env.update(TERM="xterm-256color", COLORTERM="truecolor")
    return env


async def run_environment(svc: Services, run: dict[str, Any]) -> dict[str, str]:
    """What the run sets for its processes (its env sets, its ``env`` option, its port
    lease); the sandbox adds its allowlisted base (``codeyard.sandbox.contain``)."""
    options = run["agent_options"] or {}
    env = {"TERM": "xterm-256color", "COLORTERM": "truecolor"}
    ids = list(options.get("env_set_ids") or [])
    if ids:
        box = secret_box(svc.settings.secret_key_path)
        async with svc.engine.connect() as conn:
            env.update(await env_sets.environment_for(conn, box, ids))
    env.update({str(k): str(v) for k, v in (options.get("env") or {}).items()})
    env.update((await leases.ensure(svc.writer, run["id"])).env())
    env.update(CODEYARD_RUN_ID=run["id"], CODEYARD_RUN_NUMBER=str(run["number"]))
    return env


def may_use(principal: Principal, term: Terminal, run_owner: str | object | None) -> bool:
    if principal.is_admin:
        return True
    if term.info.created_by is not None and principal.owns(term.info.created_by):
        return True
    return (
        term.info.run_id is not None
        and isinstance(run_owner, (str, type(None)))
        and (principal.owns(run_owner))
    )


async def owned(
    svc: Services, manager: TerminalManager, principal: Principal, term_id: str
) -> Terminal:
    """The terminal if ``principal`` may use it, else 404 (its existence is not revealed)."""
    term = await manager.get(term_id)
    owner: str | object | None = object()
    if term.info.run_id is not None:
        async with svc.engine.connect() as conn:
            run = await runs.find(conn, term.info.run_id)
        owner = run["created_by"] if run is not None else object()
    if not may_use(principal, term, owner):
        raise Forbidden(
            "This terminal belongs to another user's run; only its owner or an admin may use it."
        )
    return term


async def open_terminal(
    svc: Services,
    manager: TerminalManager,
    principal: Principal,
    *,
    run_ref: str | None,
    cwd: str | None,
    cols: int,
    rows: int,
    command: str | list[str] | None,
) -> Terminal:
    if (run_ref is None) == (cwd is None):
        raise BadRequest(
            "Give either 'run_id' (a terminal in the run's worktree) or 'cwd' (admin only), "
            "not both."
        )
    argv = _argv(command)
    if run_ref is None:
        if not principal.is_admin:
            raise Forbidden(
                "Terminals outside a run ('cwd') are for admins; open one on a run with 'run_id'."
            )
        try:
            where = Path(str(cwd)).expanduser()
        except RuntimeError:  # "~someone" for a user this host does not have
            where = Path(str(cwd))
        if not where.is_absolute() or not await asyncio.to_thread(where.is_dir):
            raise BadRequest(
                f"'cwd' must be an existing absolute directory; '{cwd}' is not.", cwd=cwd
            )
        return await manager.create(
            run_id=None,
            created_by=principal.user_id,
            argv=argv,
            cwd=where,
            env=_host_env(),
            cols=cols,
            rows=rows,
        )
    async with svc.engine.connect() as conn:
        run = await runs.get(conn, run_ref)
    if not principal.is_admin and not principal.owns(run["created_by"]):
        raise Forbidden(
            "This run belongs to another user; only its creator or an admin may open a "
            "terminal on it."
        )
    worktrees = run["worktrees"] or {}
    path = next((Path(p) for p in worktrees.values()), None)
    if path is None or not await asyncio.to_thread(path.is_dir):
        raise Conflict(
            f"Run {run['number']} has no worktree yet (or any more); a terminal opens in the "
            "worktree.",
            current_status=run["status"],
        )
    env = await run_environment(svc, run)
    env["CODEYARD_WORKTREE"] = str(path)
    sandbox = (await sandbox_service.current(svc)).for_run(
        [Path(p) for p in worktrees.values()], (run["agent_options"] or {}).get("network")
    )
    inner = contained_shell(argv) if sandbox.enabled else argv
    jail = await asyncio.to_thread(contain, sandbox, "terminal", inner, env, cwd=path)
    return await manager.create(
        run_id=run["id"],
        created_by=principal.user_id,
        argv=jail.argv,
        cwd=path,
        env=jail.env,
        take_ctty=not jail.contained,
        shown=argv,
        cols=cols,
        rows=rows,
    )


async def live(
    svc: Services, manager: TerminalManager, principal: Principal, term_id: str
) -> Terminal:
    """The terminal if ``principal`` may use it and its program still runs (409 if not)."""
    term = await owned(svc, manager, principal, term_id)
    if not term.live:
        raise Conflict(
            f"Terminal {term_id} is {term.info.status}: "
            f"{term.info.close_reason or 'no program'}. Open a new terminal.",
            current_status=term.info.status,
        )
    return term


async def close(
    svc: Services, manager: TerminalManager, principal: Principal, term_id: str
) -> Terminal:
    """Stop the program (its process tree); the scrollback stays readable."""
    await owned(svc, manager, principal, term_id)
    return await manager.close(term_id, "closed by the user")


async def listing(
    svc: Services, manager: TerminalManager, principal: Principal, run_ref: str | None
) -> list[dict[str, Any]]:
    """Terminals (of one run, or all), newest first: an admin sees all, others the ones they
    opened."""
    run_id = None
    if run_ref is not None:
        run_id = (await runs_get(svc, run_ref))["id"]
    return await manager.listing(
        run_id=run_id, created_by=principal.user_id, only_mine=not principal.is_admin
    )


async def of_run(
    svc: Services, manager: TerminalManager, principal: Principal, run_ref: str
) -> list[dict[str, Any]]:
    """The run's terminals (live and closed), newest first; none unless the run is
    ``principal``'s or ``principal`` is an admin."""
    run = await runs_get(svc, run_ref)
    if not principal.is_admin and not principal.owns(run["created_by"]):
        return []
    return await manager.listing(run_id=run["id"])


async def run_shell(
    svc: Services, manager: TerminalManager, principal: Principal, run_ref: str
) -> Terminal:
    """The run's newest live terminal, opened (80x24, the user's shell) if it has none."""
    run_id = (await runs_get(svc, run_ref))["id"]
    async with manager.opening(run_id):
        found = await manager.listing(run_id=run_id)
        live_ones = [t for t in found if t["status"] == "live"]
        if live_ones:
            return await owned(svc, manager, principal, live_ones[0]["id"])
        return await open_terminal(
            svc, manager, principal, run_ref=run_id, cwd=None, cols=80, rows=24, command=None
        )


async def runs_get(svc: Services, run_ref: str) -> dict[str, Any]:
    async with svc.engine.connect() as conn:
        return await runs.get(conn, run_ref)


async def _finished(svc: Services, manager: TerminalManager, run_id: str, reason: str) -> None:
    await manager.close_for_run(run_id, reason)

    async def release(tx: Tx) -> None:
        await leases.release(tx, run_id)

    await svc.writer.run(release)


async def follow_runs(svc: Services, manager: TerminalManager) -> None:
    """Close a run's terminals and end its port lease when its worktree goes away.

    Fed by ``follow_types``: a dropped subscription is made good from the log, so no finished
    run keeps its shells and its port lease."""
    types = frozenset({"run.status", "workspace.removed"})
    async with contextlib.aclosing(follow_types(svc.engine, svc.hub, types)) as feed:
        async for batch in feed:
            for event in batch:
                data = event.data if isinstance(event.data, dict) else {}
                if event.type == "run.status" and data.get("to") != "completed":
                    continue
                reason = (
                    "the run was discarded"
                    if data.get("reason") == "discarded"
                    else "the run's worktree is gone"
                    if event.type == "workspace.removed"
                    else "the run was completed"
                )
                try:
                    await _finished(svc, manager, event.run_id, reason)
                except Exception:  # the next run's cleanup must still happen
                    log.exception("cleanup of run %s's terminals failed", event.run_id)
