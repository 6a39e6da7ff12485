"""Utility-model use cases: its setting, natural language → shell, run names.

The setting is stored under its own key (``utility_model``) and edited through its own route.
Every call is recorded (tokens, cost, whether the answer was usable) in ``utility_calls``.
"""

from __future__ import annotations

import os
import platform
from typing import Any

from pydantic import BaseModel, Field

from codeyard.auth.principal import Principal
from codeyard.crypto import secret_box
from codeyard.domain.errors import BadRequest, Conflict, Forbidden
from codeyard.domain.events import utc_now
from codeyard.domain.ids import new_id
from codeyard.domain.policy.engine import PolicyContext, evaluate
from codeyard.domain.tools import ToolRequest
from codeyard.policy import context as policy_context
from codeyard.services import endpoint_settings
from codeyard.services import terminals as terminal_service
from codeyard.services.context import Services
from codeyard.store import env_sets, runs, utility_calls
from codeyard.terminals.manager import TerminalManager
from codeyard.utility_model import Answer, UtilityModelConfig, UtilityModelError, structured
from codeyard.utility_model.backends import Raw
from codeyard.utility_model.call import M
from codeyard.utility_model.prompts import prompt

KEY = "utility_model"
SCREEN_LINES = 15


class ShellSuggestion(BaseModel):
    command: str = Field(min_length=1, max_length=2000)
    explanation: str = Field(max_length=2000)


class NameSuggestion(BaseModel):
    title: str = Field(min_length=1, max_length=80)
    branch: str = Field(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$", max_length=40)


async def get_config(svc: Services) -> UtilityModelConfig | None:
    return await endpoint_settings.load(svc, KEY, UtilityModelConfig)


async def set_config(svc: Services, cfg: UtilityModelConfig | None) -> UtilityModelConfig | None:
    env_set_id = cfg.env_set_id if cfg is not None else None
    return await endpoint_settings.save(svc, KEY, cfg, env_set_id)


async def usage(svc: Services) -> dict[str, Any]:
    async with svc.engine.connect() as conn:
        return await utility_calls.totals(conn)


async def _call(
    svc: Services,
    principal: Principal,
    purpose: str,
    run_id: str | None,
    system: str,
    user: str,
    schema: type[M],
) -> Answer[M]:
    cfg = await get_config(svc)
    if cfg is None:
        raise Conflict(
            "No utility model is configured: set one with PUT /api/settings/utility-model "
            '(e.g. {"backend": "openai", "model": "gpt-4.1-mini", "env_set_id": "…"}).'
        )
    secrets: dict[str, str] = {}
    if cfg.env_set_id:
        async with svc.engine.connect() as conn:
            secrets = await env_sets.environment_for(
                conn, secret_box(svc.settings.secret_key_path), [cfg.env_set_id]
            )

    async def record(raw: Raw, *, ok: bool) -> None:
        row = {
            "id": new_id("ucall"),
            "purpose": purpose,
            "run_id": run_id,
            "created_by": principal.user_id,
            "backend": cfg.backend,
            "model": raw.model[:200],
            "input_tokens": raw.input_tokens,
            "output_tokens": raw.output_tokens,
            "cost_usd": raw.cost_usd,
            "ok": ok,
            "created_at": utc_now(),
        }
        await svc.writer.run(lambda tx: utility_calls.insert(tx, row))

    try:
        return await structured(cfg, secrets, system, user, schema, record)
    except UtilityModelError as exc:
        raise Conflict(str(exc)) from exc


async def ask(
    svc: Services,
    principal: Principal,
    purpose: str,
    run_id: str | None,
    system: str,
    user: str,
    schema: type[M],
) -> Answer[M]:
    """A validated answer of the configured model for another feature (workflow extraction
    and judging), recorded like every call; 409 when none is configured or it fails."""
    return await _call(svc, principal, purpose, run_id, system, user, schema)


async def _policy(svc: Services, run: dict[str, Any] | None, cwd: str) -> PolicyContext:
    if run is None:  # an admin's ephemeral terminal: the server's default mode, no rule sets
        return PolicyContext(
            worktree=cwd,
            permission_mode=policy_context.permission_mode(
                {"agent_options": {}}, None, svc.settings.default_permission_mode
            ),
            private=(str(svc.settings.data_dir),),
        )
    async with svc.engine.connect() as conn:
        return await policy_context.build(
            conn, run, svc.settings.default_permission_mode, (str(svc.settings.data_dir),)
        )


async def ask_shell(
    svc: Services,
    manager: TerminalManager,
    principal: Principal,
    *,
    terminal_id: str | None,
    run_ref: str | None,
    text: str,
) -> dict[str, Any]:
    """A command for ``text``, judged by the run's policies; pasted (never run) when a live
    terminal was named and the policy does not deny it."""
    if (terminal_id is None) == (run_ref is None):
        raise BadRequest("Give either 'terminal_id' or 'run_id'.")
    term = None
    run: dict[str, Any] | None = None
    if terminal_id is not None:
        term = await terminal_service.owned(svc, manager, principal, terminal_id)
        cwd = term.info.cwd
        if term.info.run_id is not None:
            run = await terminal_service.runs_get(svc, term.info.run_id)
        screen = term.screen.text(term.log)
    else:
        run = await terminal_service.runs_get(svc, str(run_ref))
        if not principal.is_admin and not principal.owns(run["created_by"]):
            raise Forbidden(
                "This run belongs to another user; only its creator or an admin may ask here."
            )
        cwd = next(iter((run["worktrees"] or {}).values()), os.getcwd())
        screen = []
    recent = "\n".join(line for line in screen if line.strip())
    recent = "\n".join(recent.splitlines()[-SCREEN_LINES:])
    user = (
        f"Request: {text}\n\nWorking directory: {cwd}\nShell: {os.environ.get('SHELL', 'bash')}"
        f"\nOS: {platform.system()} {platform.release()}\n"
        + (f"Last lines of the terminal:\n{recent}\n" if recent else "")
    )
    answer = await _call(
        svc,
        principal,
        "nl_shell",
        run["id"] if run else None,
        prompt("shell"),
        user,
        ShellSuggestion,
    )
    command = answer.value.command.strip()
    ctx = await _policy(svc, run, cwd)
    verdict = evaluate(ToolRequest(new_id("ask"), "Bash", "bash", {"command": command}), ctx)
    inserted = False
    if term is not None and term.live and verdict.action != "deny":
        term.write(term.paste(command))
        inserted = True
    return {
        "command": command,
        "explanation": answer.value.explanation,
        "verdict": {"action": verdict.action, "rule": verdict.rule, "reason": verdict.reason},
        "inserted": inserted,
        "terminal_id": term.info.id if term is not None else None,
        "attempts": answer.attempts,
    }


async def suggest_names(svc: Services, principal: Principal, run_ref: str) -> dict[str, Any]:
    async with svc.engine.connect() as conn:
        run = await runs.get(conn, run_ref)
    listed = (run.get("diff_stats") or {}).get("files")
    files = (
        [str(f.get("path")) for f in listed if isinstance(f, dict)][:50]
        if isinstance(listed, list)
        else []
    )
    user = f"Task prompt:\n{run['prompt'][:4000]}\n" + (
        "\nChanged files:\n" + "\n".join(files) if files else ""
    )
    answer = await _call(
        svc, principal, "run_names", run["id"], prompt("names"), user, NameSuggestion
    )
    return {"run_id": run["id"], **answer.value.model_dump(), "attempts": answer.attempts}
