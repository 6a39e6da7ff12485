"""The ``claude-code`` provider: Claude Code driven through ``claude-agent-sdk``.

Options (``agent_options``, merged over the agent profile's ``provider_config``):

* ``instructions`` — appended to Claude Code's own system prompt;
* ``allowed_tools`` / ``disallowed_tools`` — Claude Code tool rules (allowed tools run without
  asking Codeyard);
* ``max_turns`` — model round-trips per turn;
* ``permission_mode`` — ``default`` (every tool call Claude Code would ask about goes to
  Codeyard's decision function), ``auto`` (the same: Codeyard decides), or one of Claude Code's
  own modes ``acceptEdits``, ``plan``, ``dontAsk``, ``bypassPermissions``;
* ``env`` — extra environment, e.g. ``ANTHROPIC_BASE_URL`` and ``ANTHROPIC_API_KEY`` (by
  default Claude Code uses the user's own login);
* ``cli_path`` — another ``claude`` binary than the one the SDK wheel bundles;
* ``mcp_servers`` — MCP servers for Claude Code (``{name: {"type": "http", "url": …}}``); with
  ``codeyard_mcp: true`` Codeyard adds its own server with a run token (``mcp_server.offer``);
* ``deny_tools`` — tool names Codeyard's decision function denies: a test and operations knob
  until the policy engine lands.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from codeyard.agents.base import AdapterItem, AgentFailure, Capabilities, TurnContext
from codeyard.agents.claude.normalize import PROVIDER
from codeyard.agents.claude.process import CLAUDE, find_cli
from codeyard.agents.claude.settings import TurnSettings
from codeyard.domain.errors import ValidationFailed

__all__ = ["CLAUDE_MODES", "ClaudeCodeProvider"]

#: Claude Code's own permission modes; Codeyard's ``auto`` means "Codeyard decides" (default).
CLAUDE_MODES = ("default", "acceptEdits", "plan", "dontAsk", "bypassPermissions")
_MODES = (*CLAUDE_MODES, "auto")
_LIST_OPTIONS = ("allowed_tools", "disallowed_tools", "deny_tools")
_STRING_OPTIONS = ("instructions", "cli_path")


def _errors(options: dict[str, Any]) -> list[dict[str, Any]]:
    errors: list[dict[str, Any]] = []

    def bad(key: str, msg: str) -> None:
        errors.append({"loc": ["agent_options", key], "msg": msg})

    for key in _LIST_OPTIONS:
        value = options.get(key)
        if value is not None and not (
            isinstance(value, list) and all(isinstance(v, str) for v in value)
        ):
            bad(key, "must be a list of tool names")
    for key in _STRING_OPTIONS:
        if options.get(key) is not None and not isinstance(options[key], str):
            bad(key, "must be a string")
    turns = options.get("max_turns")
    if turns is not None and (isinstance(turns, bool) or not isinstance(turns, int) or turns < 1):
        bad("max_turns", "must be a positive integer")
    mode = options.get("permission_mode")
    if mode is not None and mode not in _MODES:
        bad("permission_mode", f"must be one of: {', '.join(_MODES)}")
    servers = options.get("mcp_servers")
    if servers is not None and not (
        isinstance(servers, dict) and all(isinstance(v, dict) for v in servers.values())
    ):
        bad("mcp_servers", "must be an object of MCP server configurations")
    if options.get("codeyard_mcp") not in (None, True, False):
        bad("codeyard_mcp", 'must be true or false ("stdio" is for ACP agents)')
    env = options.get("env")
    if env is not None and not (
        isinstance(env, dict) and all(isinstance(v, str | int | float) for v in env.values())
    ):
        bad("env", "must be an object of environment variables (string values)")
    return errors


def settings_for(options: dict[str, Any], cli: Path) -> TurnSettings:
    """The turn settings from validated options."""
    mode = options.get("permission_mode")
    return TurnSettings(
        cli=cli,
        env={str(k): str(v) for k, v in (options.get("env") or {}).items()},
        permission_mode=None if mode in (None, "auto") else mode,
        instructions=options.get("instructions") or None,
        allowed_tools=list(options.get("allowed_tools") or []),
        disallowed_tools=list(options.get("disallowed_tools") or []),
        max_turns=options.get("max_turns"),
        deny_tools=frozenset(options.get("deny_tools") or []),
        mcp_servers=dict(options.get("mcp_servers") or {}),
    )


class ClaudeCodeProvider:
    """Claude Code: approvals via ``can_use_tool``, resume by session id, control interrupt,
    operator messages written to its stream-json input mid-turn."""

    name = PROVIDER
    capabilities = Capabilities(
        approvals=True,
        resume=True,
        interrupt=True,
        mid_turn_input=True,
        usage=True,
        cost=True,
        mid_turn_model=True,
        images=True,
    )

    def __init__(self, cli_path: str | None = None) -> None:
        self._cli_path = cli_path

    def _cli(self, options: dict[str, Any] | None = None) -> Path | None:
        return find_cli((options or {}).get("cli_path") or self._cli_path)

    def version(self) -> str | None:
        return CLAUDE.version_of(self._cli_path)

    def path(self) -> str | None:
        """The binary this provider runs (``GET /api/providers``)."""
        return CLAUDE.path(self._cli_path)

    def problem(self) -> str | None:
        return CLAUDE.problem(self._cli_path)

    def validate_options(self, options: dict[str, Any]) -> None:
        errors = _errors(options)
        if errors:
            raise ValidationFailed(
                "The claude-code options are not valid: "
                + "; ".join(f"{e['loc'][-1]} {e['msg']}" for e in errors),
                errors=errors,
            )

    def run_turn(self, ctx: TurnContext) -> AsyncIterator[AdapterItem]:
        """The turn's own generator, not one wrapping it: each of the CLI's messages resumes
        every generator between the SDK and the executor (issue 15). A missing CLI raises
        here, at the call (the executor's ``AgentFailure`` either way)."""
        cli = self._cli(ctx.options)
        if cli is None or not cli.exists():
            raise AgentFailure(self.problem() or f"Claude Code was not found at {cli}.")
        # Imported on first use: the SDK takes ~1 s to import, which `codeyard serve` would
        # otherwise pay at every start whether or not anyone runs Claude Code.
        from codeyard.agents.claude.turn import run_claude_turn

        # Closed by the executor (its ``aclose``): the turn's stop runs then.
        return run_claude_turn(ctx, settings_for(ctx.options, cli))
