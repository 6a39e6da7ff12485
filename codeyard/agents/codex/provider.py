"""The ``codex`` provider: OpenAI Codex driven through ``codex app-server`` (JSON-RPC, stdio).

Options (``agent_options``, merged over the agent profile's ``provider_config``):

* ``instructions`` — developer instructions added to Codex's own (``developerInstructions``);
* ``base_instructions`` — replaces Codex's base instructions altogether;
* ``sandbox`` — ``workspace-write`` (default: writes only inside the worktree) or ``read-only``;
* ``approval_policy`` — ``untrusted`` (default: every command and every patch goes to
  Codeyard's decision function, unless a rule of the user's own Codex exec policy allows it;
  observed with Codex 0.163 for ``ls``, ``cat``, ``git status`` too), or Codex's own
  ``on-request``, ``on-failure``, ``never``, which let Codex run more without asking;
* ``effort`` — reasoning effort (``minimal``, ``low``, ``medium``, ``high``, ``xhigh``);
* ``config`` — Codex configuration overrides, ``{"dotted.key": value}`` (``-c key=value``),
  e.g. a ``model_providers.<name>`` table with ``base_url`` for a local model server; over
  Codeyard's own defaults (``DEFAULT_CONFIG``), which turn Codex's plugins off: at every start
  the app-server syncs the curated plugin marketplace (``git ls-remote`` and HTTP requests to
  GitHub and chatgpt.com) and warms its featured-plugins list: ~50 ms of CPU and up to ~40 ms
  before the first model request (Codex 0.163, paired runs of the bare app-server on a shared
  2-core machine), paid by every turn since each turn is a new process. A run's tools come from
  its worktree, its MCP servers (``mcp_servers``) and Codex's built-in tools;
  ``{"features.plugins": true}`` in ``config`` brings the plugins back;
* ``env`` — extra environment, e.g. ``CODEX_HOME`` or the API key a model provider reads;
* ``cli_path`` — another ``codex`` binary than the one the ``openai-codex`` SDK pins;
* ``mcp_servers`` — HTTP MCP servers (``{name: {"type": "http", "url": …, "headers": {…}}}``),
  written as Codex's ``mcp_servers`` configuration (``agents.mcp_servers``); with
  ``codeyard_mcp: true`` Codeyard adds its own server with a run token (``mcp_server.offer``).

Why not the SDK's client: it answers approval requests from a synchronous callback on its
reader thread (a decision that waits for a person would stall every notification), its async
client exposes no approval hook at all, and it starts Codex in Codeyard's own process group,
which cancellation must not signal. Codeyard speaks the app-server protocol directly and uses the
SDK's pinned binary.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from pathlib import Path
from typing import Any

from codeyard.agents.base import AdapterItem, AgentFailure, Capabilities, TurnContext
from codeyard.agents.codex.normalize import PROVIDER
from codeyard.agents.codex.process import CODEX, find_cli
from codeyard.agents.codex.settings import TurnSettings
from codeyard.agents.codex.turn import run_codex_turn, toml_value
from codeyard.agents.mcp_servers import codex_config
from codeyard.agents.mcp_servers import errors as mcp_errors
from codeyard.domain.errors import ValidationFailed

__all__ = ["DEFAULT_CONFIG", "CodexProvider", "settings_for"]

SANDBOXES = ("workspace-write", "read-only")
APPROVAL_POLICIES = ("untrusted", "on-request", "on-failure", "never")
EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")
_STRING_OPTIONS = ("instructions", "base_instructions", "cli_path")
#: Codex configuration every turn gets unless the run's ``config`` says otherwise (module
#: docstring: why plugins are off).
DEFAULT_CONFIG: dict[str, Any] = {"features.plugins": False}


def _errors(options: dict[str, Any]) -> list[dict[str, Any]]:
    errors: list[dict[str, Any]] = []

    def bad(key: str, msg: str) -> None:
        errors.append({"loc": ["agent_options", key], "msg": msg})

    for key in _STRING_OPTIONS:
        if options.get(key) is not None and not isinstance(options[key], str):
            bad(key, "must be a string")
    for key, allowed in (
        ("sandbox", SANDBOXES),
        ("approval_policy", APPROVAL_POLICIES),
        ("effort", EFFORTS),
    ):
        if options.get(key) is not None and options[key] not in allowed:
            bad(key, f"must be one of: {', '.join(allowed)}")
    env = options.get("env")
    if env is not None and not (
        isinstance(env, dict) and all(isinstance(v, str | int | float) for v in env.values())
    ):
        bad("env", "must be an object of environment variables (string values)")
    config = options.get("config")
    if config is not None:
        if not isinstance(config, dict):
            bad("config", "must be an object of Codex configuration keys and values")
        else:
            for key, value in config.items():
                try:
                    toml_value(value)
                except ValueError:
                    bad("config", f"'{key}' has a value Codex configuration cannot hold")
    return errors + mcp_errors(options)


def settings_for(options: dict[str, Any], cli: Path) -> TurnSettings:
    """The turn settings from validated options (the profile's own ``config`` wins over the
    MCP servers' entries, and both over ``DEFAULT_CONFIG``)."""
    mcp_config, mcp_env = codex_config(options)
    return TurnSettings(
        cli=cli,
        env={**{str(k): str(v) for k, v in (options.get("env") or {}).items()}, **mcp_env},
        config={**DEFAULT_CONFIG, **mcp_config, **dict(options.get("config") or {})},
        instructions=options.get("instructions") or None,
        base_instructions=options.get("base_instructions") or None,
        sandbox=options.get("sandbox") or "workspace-write",
        approval_policy=options.get("approval_policy") or "untrusted",
        effort=options.get("effort") or None,
    )


class CodexProvider:
    """Codex: command/patch approval requests, resume by thread id, ``turn/interrupt``, operator
    messages steered into the running turn (``turn/steer``)."""

    name = PROVIDER
    #: No cost: Codex reports tokens only (Codeyard prices them centrally, by model).
    capabilities = Capabilities(
        approvals=True,
        resume=True,
        interrupt=True,
        mid_turn_input=True,
        usage=True,
        cost=False,
        images=True,
    )

    def __init__(self, cli_path: str | None = None) -> None:
        self._cli_path = cli_path

    def _cli(self, options: dict[str, Any] | None = None) -> Path | None:
        return find_cli((options or {}).get("cli_path") or self._cli_path)

    def version(self) -> str | None:
        return CODEX.version_of(self._cli_path)

    def path(self) -> str | None:
        """The binary this provider runs (``GET /api/providers``)."""
        return CODEX.path(self._cli_path)

    def problem(self) -> str | None:
        return CODEX.problem(self._cli_path)

    def validate_options(self, options: dict[str, Any]) -> None:
        errors = _errors(options)
        if errors:
            raise ValidationFailed(
                "The codex options are not valid: "
                + "; ".join(f"{e['loc'][-1]} {e['msg']}" for e in errors),
                errors=errors,
            )

    async def run_turn(self, ctx: TurnContext) -> AsyncIterator[AdapterItem]:
        cli = self._cli(ctx.options)
        if cli is None or not cli.exists():
            raise AgentFailure(self.problem() or f"Codex was not found at {cli}.")
        # Closed with this generator (the executor's ``aclose``): the turn's stop runs now.
        async with aclosing(run_codex_turn(ctx, settings_for(ctx.options, cli))) as items:
            async for item in items:
                yield item
